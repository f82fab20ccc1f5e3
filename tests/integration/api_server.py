"""A real uvicorn server for an ApiContext built from a real engine and store, with one token per role:
for tests of the operator workflows (alarms, audit) through HTTP."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn

from analytics.batch import ReadingBatch
from analytics.engine import EmissionsEngine
from analytics.signals import SignalTable
from api.app import create_app
from api.context import ApiContext
from api.page_config import AlarmSettings
from api.security.auth import AuthConfig
from api.security.headers import LOOPBACK_HOSTS
from api.security.tokens import Role, TokenStore, new_token, parse_lines
from collector.health import HealthRegistry
from collector.metrics import Metrics
from collector.store.alarm_state import AlarmStateStore
from collector.store.audit import AuditTrail
from collector.store.local import LocalStore
from collector.store.reader import StoreReader
from tests.fixtures.loop_thread import LoopThread
from tests.fixtures.ports import free_port
from tests.unit.engine_helpers import T0, engine, series

#: Bound of the server's start and stop [s].
START_TIMEOUT_S = 30.0


@dataclass
class Api:
    url: str
    ctx: ApiContext
    tokens: dict[Role, str]
    client: httpx.Client
    health: HealthRegistry
    store: LocalStore
    table: SignalTable

    def headers(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, path: str, role: Role = Role.VIEWER, **params: Any) -> httpx.Response:
        return self.client.get(self.url + path, headers=self.headers(role), params=params)

    def post(self, path: str, role: Role, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.client.post(self.url + path, headers=self.headers(role), json=body)

    def alarms(self) -> dict[str, Any]:
        r = self.get("/api/v1/alarms")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


def fed_engine(n_s: int = 2 * 3600 + 120) -> tuple[EmissionsEngine, SignalTable]:
    """Kiln ``k`` with two hours of steady readings from T0, closed."""
    eng, table = engine(lateness_s=0)
    eng.ingest(
        ReadingBatch.concat(
            [
                series(table, "flow", T0, np.full(n_s, 397_500.0)),
                series(table, "co2", T0, np.full(n_s, 22.0)),
                series(table, "clinker", T0, np.full(n_s, 208.0)),
            ]
        )
    )
    eng.advance_all()
    return eng, table


def tokens_config(tokens: dict[Role, str]) -> AuthConfig:
    lines = "\n".join(
        f"{role.value}-user:{role.value}:{hashlib.sha256(t.encode()).hexdigest()}"
        for role, t in tokens.items()
    )
    return AuthConfig(TokenStore(parse_lines(lines, "test")), allowed_hosts=LOOPBACK_HOSTS)


@contextmanager
def serve_api(
    store_path: Path,
    alarms: AlarmSettings,
    *,
    is_stopped: Any = None,
    tokens: dict[Role, str] | None = None,
    health: HealthRegistry | None = None,
) -> Iterator[Api]:
    """The app on 127.0.0.1 with its lifespan (the alarm watch and the notifier run), its alarm state
    and audit trail in ``store_path``; stopped within bounds on exit."""
    eng, table = fed_engine()
    store = LocalStore(store_path, table.ids)
    health = health or HealthRegistry()
    tokens = tokens or {role: new_token() for role in Role}
    audit = AuditTrail(store_path)
    alarm_store = AlarmStateStore(store_path)
    ctx = ApiContext(
        table=table,
        kilns=[eng.kilns[k].spec for k in eng.kilns],
        live=eng,
        history=StoreReader(store.path),
        readiness=health,
        registry=Metrics().registry,
        sources=health,
        alarms=alarms,
        auth=tokens_config(tokens),
        audit=audit,
        alarm_store=alarm_store,
        is_stopped=is_stopped,
    )
    port = free_port()
    uv = uvicorn.Server(
        uvicorn.Config(
            create_app(ctx),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
    )
    loop = LoopThread("operator-api")
    running = loop.spawn(uv.serve())
    try:
        loop.run(_started(uv), timeout=START_TIMEOUT_S)
        with httpx.Client(timeout=30) as client:
            yield Api(f"http://127.0.0.1:{port}", ctx, tokens, client, health, store, table)
    finally:
        uv.should_exit = True
        running.result(START_TIMEOUT_S)
        loop.close()
        alarm_store.close()
        audit.close()
        store.close()


async def _started(uv: uvicorn.Server) -> None:
    while not uv.started:  # noqa: ASYNC110 - uvicorn offers a flag only
        await asyncio.sleep(0.05)
