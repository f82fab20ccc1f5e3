"""Every route of the API against every role, on a real uvicorn server: 401 without a token, 403
with too small a role, 200 with the right one. The routes come from the app itself, so a new route
without a role check fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from analytics.batch import ReadingBatch
from api.app import create_app
from api.context import ApiContext
from api.security.auth import COOKIE, AuthConfig
from api.security.headers import LOOPBACK_HOSTS
from api.security.tokens import Role, TokenStore, new_token, parse_lines
from collector.health import HealthRegistry
from collector.metrics import Metrics
from collector.store.audit import AuditTrail
from collector.store.local import LocalStore
from collector.store.reader import StoreReader
from tests.fixtures.loop_thread import LoopThread
from tests.fixtures.ports import free_port
from tests.unit.engine_helpers import T0, engine, series

pytestmark = pytest.mark.integration

#: Routes anyone may call: liveness, and signing in and out.
OPEN = {
    ("GET", "/healthz"),
    ("GET", "/api/v1/session"),
    ("POST", "/api/v1/session"),
    ("DELETE", "/api/v1/session"),
}
#: The role a route needs, where it is not viewer.
NEEDS = {
    "/readyz": Role.METRICS,
    "/metrics": Role.METRICS,
    "/api/v1/auth/whoami": Role.METRICS,
    "/api/v1/admin/tokens": Role.ADMIN,
    "/api/v1/audit": Role.ADMIN,
    "/api/v1/alarms/{alarm_id:path}/acknowledge": Role.OPERATOR,
    "/api/v1/alarms/{alarm_id:path}/shelve": Role.OPERATOR,
    "/api/v1/alarms/{alarm_id:path}/unshelve": Role.OPERATOR,
}
#: What a route answers once the role check passed, where it is not 200: an action on nothing.
PASSED = {
    "/api/v1/alarms/{alarm_id:path}/acknowledge": 404,  # no alarm "x"
    "/api/v1/alarms/{alarm_id:path}/shelve": 422,  # the body is not a shelve
    "/api/v1/alarms/{alarm_id:path}/unshelve": 404,
}
#: Routes that write (operator) or need an existing id: past the role check they answer for their
#: body or id (422, 404, 415 here), so any status but 401/403 shows the role was let through.
_ANNOTATION = "/api/v1/kilns/{kiln_id}/annotations"
WRITES = {
    ("POST", _ANNOTATION): Role.OPERATOR,
    ("POST", _ANNOTATION + "/{annotation_id}/end"): Role.OPERATOR,
    ("POST", _ANNOTATION + "/{annotation_id}/cancel"): Role.OPERATOR,
    ("GET", _ANNOTATION + "/{annotation_id}/history"): Role.VIEWER,
    ("POST", "/api/v1/kilns/{kiln_id}/manual"): Role.OPERATOR,
    ("POST", "/api/v1/kilns/{kiln_id}/manual/import"): Role.OPERATOR,
    ("POST", "/api/v1/kilns/{kiln_id}/manual/{value_id}/withdraw"): Role.OPERATOR,
}
#: What a route needs to answer 200, besides a token.
PATH_VALUES = {"kiln_id": "k", "plant_id": "p", "alarm_id": "x"}
QUERY = {
    "/api/v1/kilns/{kiln_id}/crosscheck": {"day": "2026-01-01"},
    "/api/v1/kilns/{kiln_id}/hourly": {"start": "2026-01-01T00:00:00Z"},
    "/api/v1/kilns/{kiln_id}/raw": {"signal": "co2"},
}
#: The page's static files: its shell holds no data and must load to show the sign-in form.
STATIC = ("/", "/app.js", "/i18n.js", "/style.css", "/i18n/en.json", "/favicon.svg")


@dataclass
class Server:
    url: str
    app: FastAPI
    tokens: dict[Role, str]
    client: httpx.Client


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    eng, table = engine(lateness_s=0)
    n = 2 * 3600 + 120
    eng.ingest(
        ReadingBatch.concat(
            [
                series(table, "flow", T0, np.full(n, 397_500.0)),
                series(table, "co2", T0, np.full(n, 22.0)),
                series(table, "clinker", T0, np.full(n, 208.0)),
            ]
        )
    )
    out = eng.advance_all()
    store = LocalStore(tmp_path_factory.mktemp("auth") / "s.sqlite3", table.ids)
    store.write_aggregates(out.minutes, out.hours)
    health = HealthRegistry()
    health.source("opcua:sim", "opcua").mark_connected()
    tokens = {role: new_token() for role in Role}
    lines = "\n".join(f"{role.value}-user:{role.value}:{_sha(t)}" for role, t in tokens.items())
    auth = AuthConfig(TokenStore(parse_lines(lines, "test")), allowed_hosts=LOOPBACK_HOSTS)
    ctx = ApiContext(
        table=table,
        kilns=[eng.kilns[k].spec for k in eng.kilns],
        live=eng,
        history=StoreReader(store.path),
        readiness=health,
        registry=Metrics().registry,
        auth=auth,
        audit=AuditTrail(store.path),
    )
    app = create_app(ctx)
    port = free_port()
    uv = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
    )
    loop = LoopThread("auth-api")
    running = loop.spawn(uv.serve())
    try:
        deadline = 100
        while not uv.started and deadline and not running.done():
            loop.run(_sleep(0.05))
            deadline -= 1
        assert uv.started, "uvicorn did not start"
        with httpx.Client(timeout=10) as client:  # one client: no TLS context set up per request
            yield Server(f"http://127.0.0.1:{port}", app, tokens, client)
    finally:
        uv.should_exit = True
        running.result(10)
        loop.close()
        store.close()


async def _sleep(s: float) -> None:
    import asyncio

    await asyncio.sleep(s)


def _sha(token: str) -> str:
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for ctx in iter_route_contexts(app.routes):
        for method in sorted(getattr(ctx, "methods", None) or ()):
            if method != "HEAD":
                found.append((method, str(ctx.path)))
    return found


def _url(server: Server, path: str) -> str:
    return server.url + re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PATH_VALUES.get(m.group(1), "x"), path)


def _call(server: Server, method: str, path: str, token: str | None, body_token: str = "x") -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    server.client.cookies.clear()  # only the token given counts
    url = _url(server, path)
    params = QUERY.get(path, {})
    if path.endswith("/stream"):  # endless: the status line is enough
        with server.client.stream(method, url, headers=headers, params=params) as r:
            return r.status_code
    body = {"token": body_token} if method == "POST" else None
    return server.client.request(method, url, headers=headers, params=params, json=body).status_code


def test_the_app_has_the_routes_this_table_knows(server: Server) -> None:
    routes = _routes(server.app)
    assert len(routes) >= 20
    for path in NEEDS:
        assert any(p == path for _, p in routes), path
    # the only mount is the page's static files
    mounts = [c for c in iter_route_contexts(server.app.routes) if not getattr(c, "methods", None)]
    assert [getattr(c, "path", None) for c in mounts] == [""]


def test_every_route_without_a_token_is_401_unless_open(server: Server) -> None:
    refused = {}
    for method, path in _routes(server.app):
        status = _call(server, method, path, None, body_token=server.tokens[Role.VIEWER])
        if (method, path) in OPEN:
            assert status in (200, 204), (method, path, status)
        else:
            refused[(method, path)] = status
    assert refused and set(refused.values()) == {401}, {k: v for k, v in refused.items() if v != 401}


def test_every_route_with_each_role(server: Server) -> None:
    """403 below the role the route needs, 200 (204 for a sign-out) at it and above."""
    wrong = []
    for method, path in _routes(server.app):
        if (method, path) in OPEN:
            continue
        needed = WRITES.get((method, path), NEEDS.get(path, Role.VIEWER))
        for role, token in server.tokens.items():
            want = PASSED.get(path, 200) if role.allows(needed) else 403
            got = _call(server, method, path, token)
            if (method, path) in WRITES and role.allows(needed) and got not in (401, 403):
                continue
            if got != want:
                wrong.append((method, path, role.value, got, want))
    assert wrong == []


def test_an_unknown_token_and_a_non_bearer_header_are_401(server: Server) -> None:
    r = httpx.get(server.url + "/api/v1/kilns", headers={"Authorization": f"Bearer {new_token()}"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    basic = httpx.get(server.url + "/api/v1/kilns", auth=("viewer-user", server.tokens[Role.VIEWER]))
    assert basic.status_code == 401
    metrics = httpx.get(
        server.url + "/metrics", headers={"Authorization": f"Bearer {server.tokens[Role.METRICS]}"}
    ).text
    assert 'kilnwatch_api_auth_refused_total{reason="invalid_token"}' in metrics
    assert 'kilnwatch_api_auth_refused_total{reason="forbidden"}' in metrics


def test_the_page_shell_loads_without_a_token(server: Server) -> None:
    for path in STATIC:
        assert httpx.get(server.url + path).status_code == 200, path


def test_whoami_and_the_token_list_never_show_a_hash(server: Server) -> None:
    admin = {"Authorization": f"Bearer {server.tokens[Role.ADMIN]}"}
    me = httpx.get(server.url + "/api/v1/auth/whoami", headers=admin).json()
    assert me == {"name": "admin-user", "role": "admin", "auth": True}
    listed = httpx.get(server.url + "/api/v1/admin/tokens", headers=admin)
    assert listed.json() == [{"name": f"{r.value}-user", "role": r.value} for r in Role]
    assert not re.search(r"[0-9a-f]{64}", listed.text)


def test_sign_in_sets_an_httponly_strict_cookie_that_the_stream_accepts(server: Server) -> None:
    viewer = server.tokens[Role.VIEWER]
    assert httpx.post(server.url + "/api/v1/session", json={"token": new_token()}).status_code == 401
    metrics_only = httpx.post(server.url + "/api/v1/session", json={"token": server.tokens[Role.METRICS]})
    assert metrics_only.status_code == 403
    with httpx.Client(base_url=server.url, timeout=10) as client:
        r = client.post("/api/v1/session", json={"token": viewer})
        assert r.status_code == 200 and r.json()["role"] == "viewer"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
        assert {"httponly", "path", "max-age"} <= attributes
        assert "samesite=strict" in cookie.lower()
        assert "secure" not in attributes  # plain http here; tests/integration/test_api_tls.py: https
        assert client.get("/api/v1/kilns").status_code == 200  # by the cookie alone
        assert client.get("/api/v1/session").json() == {
            "auth": True,
            "signed_in": True,
            "name": "viewer-user",
            "role": "viewer",
        }
        with client.stream("GET", "/api/v1/stream") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert next(stream.iter_lines()).startswith(("event: hello", ":", "retry"))
        assert client.delete("/api/v1/session").status_code == 204
        assert client.get("/api/v1/kilns").status_code == 401
        assert client.get("/api/v1/session").json() == {
            "auth": True,
            "signed_in": False,
            "name": None,
            "role": None,
        }


def test_security_headers_on_every_kind_of_response(server: Server) -> None:
    viewer = {"Authorization": f"Bearer {server.tokens[Role.VIEWER]}"}
    responses = [
        httpx.get(server.url + "/"),
        httpx.get(server.url + "/healthz"),
        httpx.get(server.url + "/api/v1/kilns"),  # 401
        httpx.get(server.url + "/api/v1/kilns", headers=viewer),
        httpx.get(server.url + "/api/v1/kilns/nope/live", headers=viewer),  # 404
        httpx.get(server.url + "/api/v1/kilns", headers={"Host": "evil.example"}),  # 400
    ]
    for r in responses:
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self';" in csp, r.url
        assert "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
    assert "strict-transport-security" not in responses[0].headers  # only over TLS
    docs = httpx.get(server.url + "/docs", headers=viewer)
    assert docs.status_code == 200 and "'sha256-" in docs.headers["content-security-policy"]
    assert "unsafe-inline" not in docs.headers["content-security-policy"]


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.evil.example", "10.0.0.5:8000"])
def test_an_unknown_host_header_is_400(server: Server, host: str) -> None:
    viewer = {"Authorization": f"Bearer {server.tokens[Role.VIEWER]}"}
    r = httpx.get(server.url + "/api/v1/kilns", headers={**viewer, "Host": host})
    assert r.status_code == 400
    for ok in ("localhost", "127.0.0.1:8000", "[::1]:8000"):
        assert httpx.get(server.url + "/api/v1/kilns", headers={**viewer, "Host": ok}).status_code == 200


def test_no_tokens_configured_is_open(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from prometheus_client import CollectorRegistry

    none: Any = None
    ctx = ApiContext(
        table=none, kilns=[], live=none, history=none, readiness=none, registry=CollectorRegistry()
    )
    client = TestClient(create_app(ctx))
    assert client.get("/api/v1/auth/whoami").json() == {"name": "anonymous", "role": "admin", "auth": False}
    assert client.get("/api/v1/admin/tokens").json() == []
