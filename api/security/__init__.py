"""API authentication: bearer tokens with roles, the page's session cookie, allowed hosts and
security headers. The wiring decides the policy (:class:`AuthConfig`); the API applies it."""

from .auth import (
    Admin,
    AuthConfig,
    Operator,
    Principal,
    Scrape,
    Viewer,
    require_admin,
    require_operator,
    require_scrape,
    require_viewer,
)
from .tokens import Role, TokenEntry, TokenError, TokenStore, hash_line, new_token

__all__ = [
    "Admin",
    "AuthConfig",
    "Operator",
    "Principal",
    "Role",
    "Scrape",
    "TokenEntry",
    "TokenError",
    "TokenStore",
    "Viewer",
    "hash_line",
    "new_token",
    "require_admin",
    "require_operator",
    "require_scrape",
    "require_viewer",
]
