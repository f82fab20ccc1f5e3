"""Who may reach the API: tokens from the plant file's ``auth.tokens_file`` and
``KILNWATCH_API_TOKENS``, allowed Host names, and the rule that an API without tokens stays on
a loopback address unless ``--insecure-no-auth`` says otherwise."""

from __future__ import annotations

import ipaddress
import logging

from api.security.auth import AuthConfig
from api.security.headers import LOOPBACK_HOSTS
from api.security.settings import AuthSettings
from api.security.tokens import TokenError, TokenStore, parse_lines

from .settings import Settings

log = logging.getLogger("kilnwatch")


class AccessError(Exception):
    """Settings that would leave the API open, or tokens/TLS files that cannot be used."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def load_tokens(auth: AuthSettings, settings: Settings) -> TokenStore:
    entries = []
    errors: list[str] = []
    if auth.tokens_file is not None:
        try:
            text = auth.tokens_file.read_text(encoding="utf-8")
        except OSError as err:
            raise AccessError(f"{auth.tokens_file}: cannot read the tokens file: {err.strerror}") from err
        try:
            entries += parse_lines(text, str(auth.tokens_file))
        except TokenError as err:
            errors += err.errors
    if settings.api_tokens:
        try:
            entries += parse_lines(settings.api_tokens, "KILNWATCH_API_TOKENS")
        except TokenError as err:
            errors += err.errors
    try:
        store = TokenStore(entries)
    except TokenError as err:
        errors += err.errors
    if errors:
        raise AccessError("\n".join(errors))
    return store


def build_auth(auth: AuthSettings, settings: Settings) -> AuthConfig:
    """The API's policy; AccessError with a message for the operator when it may not start."""
    tokens = load_tokens(auth, settings)
    if not tokens and not is_loopback(settings.host) and not settings.insecure_no_auth:
        raise AccessError(
            f"refusing to serve the API on {settings.host} without API tokens: anyone who reaches "
            "the port would read everything. Create one with `kilnwatch token create --role viewer "
            "--name NAME` and put its hash line in the plant file's auth.tokens_file or in "
            "KILNWATCH_API_TOKENS; or bind 127.0.0.1; or pass --insecure-no-auth "
            "(KILNWATCH_INSECURE_NO_AUTH=true) to serve it open."
        )
    for path in (settings.tls_cert, settings.tls_key):
        if path is not None and not path.is_file():
            raise AccessError(f"{path}: no such TLS file")
    hosts = [*LOOPBACK_HOSTS, *auth.allowed_hosts, *settings.allowed_hosts_list]
    if not _wildcard(settings.host):
        hosts.append(settings.host)
    return AuthConfig(
        tokens=tokens,
        allowed_hosts=tuple(dict.fromkeys(hosts)),
        cookie_max_age_s=round(auth.cookie_max_age_days * 86_400),
    )


def _wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "[::]", "")


def log_policy(config: AuthConfig, settings: Settings) -> None:
    if config.enabled:
        log.info(
            "API: %d token(s); allowed hosts %s", len(config.tokens), ", ".join(config.allowed_hosts or ())
        )
    elif is_loopback(settings.host):
        log.info("API: no tokens configured, open on the loopback address %s only", settings.host)
    else:
        log.warning(
            "API: no tokens and --insecure-no-auth: anyone who reaches %s may read everything", settings.host
        )
    if _wildcard(settings.host) and not set(config.allowed_hosts or ()) - set(LOOPBACK_HOSTS):
        log.warning(
            "API on %s: only requests for localhost are accepted until auth.allowed_hosts or "
            "KILNWATCH_ALLOWED_HOSTS names this machine",
            settings.host,
        )
