"""Sign-in for the page (``/api/v1/session``), who am I, the token list (admin), and the API
docs behind a token."""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from .auth import (
    COOKIE,
    OPEN,
    VIEWER,
    Admin,
    Scrape,
    auth_config,
    bearer_scheme,
    check_token,
    cookie_scheme,
    principal,
)
from .headers import CSP
from .tokens import Role

router = APIRouter()


class SessionRequest(BaseModel):
    token: str = Field(min_length=1, max_length=512, description="an API token")


class WhoAmI(BaseModel):
    name: str
    role: Role
    #: False when no tokens are configured (the loopback demo): everyone may do everything.
    auth: bool


class SessionState(BaseModel):
    #: False when no tokens are configured: the page needs no sign-in.
    auth: bool
    signed_in: bool
    name: str | None = None
    role: Role | None = None


class TokenInfo(BaseModel):
    name: str
    role: Role


@router.get("/api/v1/session", response_model=SessionState, tags=["auth"])
async def session(request: Request) -> SessionState:
    """Whether the page must sign in: open to all, never 401 (the page asks this first)."""
    if not auth_config(request).enabled:
        return SessionState(auth=False, signed_in=True, name=OPEN.name, role=OPEN.role)
    try:
        who = await principal(request, await bearer_scheme(request), await cookie_scheme(request))
    except HTTPException:
        return SessionState(auth=True, signed_in=False)
    return SessionState(auth=True, signed_in=True, name=who.name, role=who.role)


@router.post("/api/v1/session", response_model=WhoAmI, tags=["auth"])
async def sign_in(body: SessionRequest, request: Request, response: Response) -> WhoAmI:
    """The page's sign-in: a valid token of a viewer or above is kept in an HttpOnly,
    SameSite=Strict cookie (Secure over TLS) that the page's requests and its stream then carry."""
    config = auth_config(request)
    if not config.enabled:
        return WhoAmI(name=OPEN.name, role=OPEN.role, auth=False)
    entry = check_token(request, body.token.strip())
    if entry is None:
        raise HTTPException(401, detail="not a valid token")
    if not entry.role.allows(Role.VIEWER):
        raise HTTPException(403, detail=f"a {entry.role.value} token cannot read the page")
    response.set_cookie(
        COOKIE,
        body.token.strip(),
        max_age=config.cookie_max_age_s,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return WhoAmI(name=entry.name, role=entry.role, auth=True)


@router.delete("/api/v1/session", status_code=204, tags=["auth"])
async def sign_out(request: Request) -> Response:
    response = Response(status_code=204)
    response.delete_cookie(
        COOKIE, path="/", secure=request.url.scheme == "https", httponly=True, samesite="strict"
    )
    return response


@router.get("/api/v1/auth/whoami", response_model=WhoAmI, tags=["auth"])
async def whoami(request: Request, who: Scrape) -> WhoAmI:
    """The name and role of the token this request carries."""
    return WhoAmI(name=who.name, role=who.role, auth=auth_config(request).enabled)


@router.get("/api/v1/admin/tokens", response_model=list[TokenInfo], tags=["auth"])
async def tokens(request: Request, who: Admin) -> list[TokenInfo]:
    """The configured tokens' names and roles (never their hashes)."""
    return [TokenInfo(name=e.name, role=e.role) for e in auth_config(request).tokens.entries]


@router.get("/openapi.json", include_in_schema=False, dependencies=[VIEWER])
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
_SWAGGER_ORIGIN = "https://cdn.jsdelivr.net"


@router.get("/docs", include_in_schema=False, dependencies=[VIEWER])
async def docs() -> HTMLResponse:
    """Swagger UI. Its CSP allows its own inline start-up script (by hash) and its assets' CDN."""
    page = get_swagger_ui_html(openapi_url="/openapi.json", title="kilnwatch API")
    body = bytes(page.body).decode()
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(body)
    )
    csp = (
        CSP.replace("script-src 'self'", f"script-src 'self' {_SWAGGER_ORIGIN} {hashes}")
        .replace("style-src 'self'", f"style-src 'self' {_SWAGGER_ORIGIN}")
        .replace("img-src 'self' data:", "img-src 'self' data: https://fastapi.tiangolo.com")
    )
    return HTMLResponse(body, headers={"Content-Security-Policy": csp})
