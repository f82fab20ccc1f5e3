"""Secrets of the configuration: where they come from, and keeping them out of messages.

A secret field ``password`` may instead be given as ``password_file`` (a file holding it; one
trailing newline is dropped) or ``password_env`` (the name of an environment variable holding
it); exactly one of the three. Values that are still a sample file's placeholder are refused.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import SecretStr

#: Text of the sample files' placeholders (deploy/kilnwatch.env.example, deploy/compose.yml).
PLACEHOLDER_MARKERS = ("change-me", "changeme", "change_me", "replace-me", "<your")

#: Field names whose values are never shown in a message.
SECRET_NAME = re.compile(r"password|passwd|secret|token|private_key_password", re.IGNORECASE)

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/@\s'\"]+)@")


def mask_urls(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced: ``opc.tcp://***@plc:4840``."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def is_placeholder(text: str) -> bool:
    return any(m in text.lower() for m in PLACEHOLDER_MARKERS)


def resolve_secret(name: str, value: SecretStr | None, file: str | None, env: str | None) -> SecretStr | None:
    """The secret ``name`` from its value, its ``<name>_file`` or its ``<name>_env``; ValueError
    (naming the file or variable, never the value) when unreadable, unset or a placeholder."""
    given = [n for n, v in ((name, value), (f"{name}_file", file), (f"{name}_env", env)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"give one of {', '.join(given)}, not several")
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
        except OSError as err:
            raise ValueError(f"{name}_file {file}: {err.strerror}") from err
        value, where = SecretStr(text), f"{name}_file {file}"
    elif env is not None:
        text = os.environ.get(env, "")
        if not text:
            raise ValueError(f"{name}_env: environment variable {env} is not set or empty")
        value, where = SecretStr(text), f"{name}_env {env}"
    else:
        where = name
    if value is not None and is_placeholder(value.get_secret_value()):
        raise ValueError(f"{where} is still a sample file's placeholder; set the real value")
    return value
