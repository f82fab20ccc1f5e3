"""Security headers on every response, and the Host header check."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The page loads its own scripts, styles and catalogues only, and talks to its own server only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
#: Over TLS: browsers keep to https for this host for a year.
HSTS = "max-age=31536000"
#: Always accepted Host names (a browser on the machine itself); IPv6 literals in brackets.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


class SecurityHeaders:
    """Adds the headers above to every response; a route that set its own CSP keeps it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "content-security-policy" not in headers:
                    headers["Content-Security-Policy"] = CSP
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if scope.get("scheme") == "https":
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def host_pattern(host: str) -> str:
    """A bind address or host name as a Host header shows it (IPv6 literals in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host.lower()


def trusted_hosts(app: ASGIApp, allowed: Sequence[str]) -> TrustedHostMiddleware:
    """Starlette's check: any other Host header gets 400 (DNS rebinding, poisoned absolute URLs)."""
    return TrustedHostMiddleware(app, allowed_hosts=[host_pattern(h) for h in allowed], www_redirect=False)
