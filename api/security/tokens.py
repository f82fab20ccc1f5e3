"""API tokens: random secrets of 32 bytes, each with a name and a role, configured as hashes only.

A hash line is ``name:role:sha256hex``. Tokens are high-entropy (256 bits), so a plain SHA-256
is enough to keep them from being read back out of the configuration; a slow password hash
would only add work to every request (docs/decisions/0021).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

#: Every token kilnwatch makes starts with this, so that a leaked one is easy to recognise.
TOKEN_PREFIX = "kw_"
TOKEN_BYTES = 32
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")


class Role(StrEnum):
    """Ordered: each role may do what the ones before it may."""

    METRICS = "metrics"  # /metrics and /readyz only (a Prometheus scrape)
    VIEWER = "viewer"  # read everything
    OPERATOR = "operator"  # viewer + operator actions
    ADMIN = "admin"  # everything, including the list of tokens

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class TokenError(ValueError):
    """Hash lines that cannot be used; ``errors`` has one line per problem (never a hash)."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


@dataclass(frozen=True)
class TokenEntry:
    name: str
    role: Role
    digest: bytes  # SHA-256 of the token

    def line(self) -> str:
        return f"{self.name}:{self.role.value}:{self.digest.hex()}"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def hash_line(name: str, role: Role, token: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"token name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-'")
    return TokenEntry(name, role, digest(token)).line()


def parse_lines(text: str, source: str) -> list[TokenEntry]:
    """Hash lines (``name:role:sha256hex``; blank lines and ``#`` comments skipped; in an
    environment variable, lines may also be separated by commas or spaces)."""
    entries: list[TokenEntry] = []
    errors: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        for item in re.split(r"[,\s]+", line) if line else ():
            where = f"{source}:{number}"
            parts = item.split(":")
            if len(parts) != 3:
                errors.append(f"{where}: expected name:role:sha256hex")
                continue
            name, role, hexdigest = parts
            if not _NAME.match(name):
                errors.append(f"{where}: token name {name!r}: 1-64 letters, digits, '_', '.', '@' or '-'")
            elif role not in Role.__members__.values():
                errors.append(f"{where}: {name}: role {role!r} is not one of {[r.value for r in Role]}")
            elif not _HEX.match(hexdigest.lower()):
                errors.append(f"{where}: {name}: the hash must be 64 hex digits (SHA-256), not a token")
            else:
                entries.append(TokenEntry(name, Role(role), bytes.fromhex(hexdigest)))
    if errors:
        raise TokenError(errors)
    return entries


class TokenStore:
    """The configured tokens; ``find`` compares digests in constant time, each one."""

    def __init__(self, entries: Iterable[TokenEntry] = ()) -> None:
        self.entries = tuple(entries)
        errors = []
        names = [e.name for e in self.entries]
        for name in sorted({n for n in names if names.count(n) > 1}):
            errors.append(f"token name {name!r} is configured twice")
        digests = [e.digest for e in self.entries]
        if len(set(digests)) != len(digests):
            errors.append("one token hash is configured twice")
        if errors:
            raise TokenError(errors)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def find(self, token: str) -> TokenEntry | None:
        wanted = digest(token)
        found = None
        for entry in self.entries:  # no early exit: the time does not tell which entry matched
            if hmac.compare_digest(entry.digest, wanted):
                found = entry
        return found
