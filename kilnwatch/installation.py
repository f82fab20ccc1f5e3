"""The installation id: a random suffix kept in the data directory, so that two kilnwatch
installations with the same ``KILNWATCH_INSTANCE_ID`` never share an MQTT client id (and so never
take over each other's persistent broker session)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path

from collector.file_modes import file_mode

#: File in the data directory that holds the installation id.
INSTALLATION_ID_FILE = "installation_id"
_VALID = re.compile(r"^[0-9a-f]{12}$")


def installation_id(data_dir: Path, group_readable: bool = False) -> str:
    """The data directory's installation id (12 hex digits), created on first use.

    Created with a link from a complete temporary file, so two processes starting together on one
    directory agree on one id. A file that is not an id is an error, not replaced: a new id would
    silently leave the broker's queue for the old client id behind."""
    path = data_dir / INSTALLATION_ID_FILE
    if not path.exists():
        tmp = data_dir / f".{INSTALLATION_ID_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, file_mode(group_readable))
        try:
            os.write(fd, f"{secrets.token_hex(6)}\n".encode())
            os.fsync(fd)
            os.close(fd)
            with contextlib.suppress(FileExistsError):  # another process was first: its id stands
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    text = path.read_text(encoding="utf-8").strip()
    if not _VALID.match(text):
        raise ValueError(f"{path} does not hold an installation id (12 hex digits); restore or remove it")
    return text
