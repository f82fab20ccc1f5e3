"""Who is asking: the bearer token or the page's cookie, checked against the configured hashes;
FastAPI dependencies that demand a role. With no tokens configured the API is open (the wiring
allows that on a loopback address only)."""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry, Counter

from .tokens import Role, TokenEntry, TokenStore

log = logging.getLogger(__name__)
#: The page's cookie: holds the token (HttpOnly, SameSite=Strict; Secure over TLS).
COOKIE = "kilnwatch_token"
_LOG_EVERY_S = 10.0

bearer_scheme = HTTPBearer(auto_error=False, description="an API token (kilnwatch token create)")
cookie_scheme = APIKeyCookie(name=COOKIE, auto_error=False, description="set by POST /api/v1/session")


@dataclass(frozen=True)
class AuthConfig:
    """What the wiring decided. No tokens: every request is let in (as ``admin``)."""

    tokens: TokenStore = field(default_factory=TokenStore)
    #: Host header values accepted (Starlette patterns); None: any (only where no wiring decided).
    allowed_hosts: tuple[str, ...] | None = None
    cookie_max_age_s: int = 30 * 86_400

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    #: "bearer", "cookie", or "open" (no tokens configured).
    via: str


OPEN = Principal("anonymous", Role.ADMIN, "open")


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.refused = Counter(
            "kilnwatch_api_auth_refused",
            "API requests refused: 401 without a token or with an unknown one, 403 for too small a role",
            ["reason"],
            registry=registry,
        )
        self.last_log: dict[str, float] = {}
        self.unlogged: dict[str, int] = {}


_metrics: weakref.WeakKeyDictionary[CollectorRegistry, _Metrics] = weakref.WeakKeyDictionary()


def _refused(request: Request, reason: str, detail: str) -> None:
    """Counts (``kilnwatch_api_auth_refused_total{reason}``) and logs at most every 10 s per reason."""
    registry: CollectorRegistry = request.app.state.context.registry
    m = _metrics.get(registry)
    if m is None:
        m = _metrics[registry] = _Metrics(registry)
    m.refused.labels(reason).inc()
    if reason == "missing_token":
        return  # a page's first request: normal, counted only
    now = time.monotonic()
    m.unlogged[reason] = m.unlogged.get(reason, 0) + 1
    if now - m.last_log.get(reason, -_LOG_EVERY_S) >= _LOG_EVERY_S:
        client = request.client.host if request.client else "?"
        log.warning(
            "API request refused (%s) from %s: %s %s: %s; %d such since the last report",
            reason,
            client,
            request.method,
            request.url.path,
            detail,
            m.unlogged[reason],
        )
        m.last_log[reason] = now
        m.unlogged[reason] = 0


def auth_config(request: Request) -> AuthConfig:
    config: AuthConfig = request.app.state.context.auth
    return config


def check_token(request: Request, token: str) -> TokenEntry | None:
    entry = auth_config(request).tokens.find(token)
    if entry is None:
        _refused(request, "invalid_token", "not a configured token")
    return entry


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


async def principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    cookie: Annotated[str | None, Depends(cookie_scheme)],
) -> Principal:
    """The token's name and role; 401 without a valid one (a header wins over the cookie)."""
    if not auth_config(request).enabled:
        return OPEN
    if request.headers.get("authorization") and bearer is None:
        _refused(request, "invalid_token", "an Authorization header that is not Bearer")
        raise unauthorized("use Authorization: Bearer <token>")
    token, via = (bearer.credentials, "bearer") if bearer else (cookie, "cookie")
    if not token:
        _refused(request, "missing_token", "")
        raise unauthorized("an API token is needed (Authorization: Bearer <token>)")
    entry = check_token(request, token)
    if entry is None:
        raise unauthorized("not a valid token")
    return Principal(entry.name, entry.role, via)


def _require(role: Role) -> Callable[..., Awaitable[Principal]]:
    async def require(request: Request, who: Annotated[Principal, Depends(principal)]) -> Principal:
        if not who.role.allows(role):
            _refused(request, "forbidden", f"{who.name} is {who.role.value}, needs {role.value}")
            raise HTTPException(403, detail=f"needs the role {role.value} or above; this token is {who.role}")
        return who

    require.__name__ = f"require_{role.value}"
    return require


require_scrape = _require(Role.METRICS)
require_viewer = _require(Role.VIEWER)
require_operator = _require(Role.OPERATOR)
require_admin = _require(Role.ADMIN)

#: Route parameters: ``who: Viewer`` demands a viewer token (or above) and tells whose it is.
Scrape = Annotated[Principal, Depends(require_scrape)]
Viewer = Annotated[Principal, Depends(require_viewer)]
Operator = Annotated[Principal, Depends(require_operator)]
Admin = Annotated[Principal, Depends(require_admin)]

#: For ``dependencies=[...]`` of a router or route.
SCRAPE = Depends(require_scrape)
VIEWER = Depends(require_viewer)
OPERATOR = Depends(require_operator)
ADMIN = Depends(require_admin)
