"""The live route writes its JSON directly; it must be what the LiveResponse model would write."""

from __future__ import annotations

import asyncio
import json
import time
import types
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import api.live
from analytics.batch import ReadingBatch
from analytics.engine import EmissionsEngine
from analytics.signals import SignalTable
from api.alarm_watch import AlarmWatch
from api.app import create_app
from api.context import ApiContext
from api.models import LiveResponse
from api.routes_kilns import live_json
from api.routes_stream import _events
from collector.health import HealthRegistry
from collector.metrics import Metrics
from collector.store.reader import StoreReader

from .engine_helpers import T0, engine, series

#: The plant's method: another kiln's rules too, which a live payload of ``k`` leaves out.
METHOD = {
    "valid_fraction": 0.8,
    "kilns": {"k": {"stuck_signals": ["k.co2"], "elv": None}, "k2": {"stuck_signals": [], "elv": 30.0}},
}
KILN_METHOD = {"valid_fraction": 0.8, "kilns": {"k": {"stuck_signals": ["k.co2"], "elv": None}}}


def _context(eng: EmissionsEngine, table: SignalTable, tmp_path: Path) -> ApiContext:
    return ApiContext(
        table=table,
        kilns=[s.spec for s in eng.kilns.values()],
        live=eng,
        history=StoreReader(tmp_path / "none.sqlite3"),
        readiness=HealthRegistry(),
        registry=Metrics().registry,
        method=METHOD,
    )


def _as_model_writes_it(body: bytes) -> str:
    return LiveResponse.model_validate(json.loads(body)).model_dump_json()


@pytest.mark.parametrize("closed_minutes", [False, True])
def test_live_json_is_the_models_json(tmp_path: Path, closed_minutes: bool) -> None:
    eng, table = engine(lateness_s=0)
    n = 150 if closed_minutes else 20
    flow = np.full(n, 397_500.0)
    flow[-1] = np.nan  # the newest flow value is not a number: null, as the model writes it
    eng.ingest(
        ReadingBatch.concat(
            [series(table, "flow", T0, flow), series(table, "co2", T0 + 500_000_000, np.full(n, 22.0))]
        )
    )  # no clinker reading at all
    eng.advance()
    ctx = _context(eng, table, tmp_path)
    body = live_json(ctx, ctx.kilns[0])
    assert body.decode() == _as_model_writes_it(body)
    data = json.loads(body)
    assert list(data) == list(LiveResponse.model_fields)
    assert (data["time"] is not None) is closed_minutes
    assert data["signals"]["k.flow"]["value"] is None
    assert data["signals"]["k.co2"]["time"].endswith(".500000Z")
    assert data["signals"]["k.clinker"] == {"value": None, "unit": "t/h", "quality": None, "time": None}
    assert data["method"] == KILN_METHOD


def _a_closed_minute(tmp_path: Path) -> tuple[ApiContext, EmissionsEngine, SignalTable]:
    eng, table = engine(lateness_s=0)
    eng.ingest(
        ReadingBatch.concat(
            [series(table, "flow", T0, np.full(150, 397_500.0)), series(table, "co2", T0, np.full(150, 22.0))]
        )
    )
    eng.advance()
    return _context(eng, table, tmp_path), eng, table


def test_a_body_is_reused_until_the_engine_changes_and_its_age_stays_current(tmp_path: Path) -> None:
    ctx, eng, table = _a_closed_minute(tmp_path)
    kiln = ctx.kilns[0]
    first = json.loads(live_json(ctx, kiln))
    time.sleep(0.05)
    again = json.loads(live_json(ctx, kiln))
    assert again["age_s"] > first["age_s"]  # the age is the request's, not the cached body's
    assert {k: v for k, v in again.items() if k != "age_s"} == {
        k: v for k, v in first.items() if k != "age_s"
    }

    eng.ingest(series(table, "co2", T0 + 150 * 10**9, np.array([23.5])))  # a new value: a new body
    after = json.loads(live_json(ctx, kiln))
    assert after["signals"]["k.co2"]["value"] == 23.5
    assert first["signals"]["k.co2"]["value"] == 22.0
    assert after["method"] == KILN_METHOD
    body = live_json(ctx, kiln)
    assert body.decode() == _as_model_writes_it(body)


def test_live_route_and_stream_minute_event_give_the_same_body(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One serialiser: the SSE ``minute`` event carries exactly the body of ``/live``."""
    ctx, _, _ = _a_closed_minute(tmp_path)
    kiln = ctx.kilns[0]
    now = time.time()
    monkeypatch.setattr(api.live, "time", types.SimpleNamespace(time=lambda: now))  # the same age for both

    async def both() -> tuple[bytes, str]:
        transport = httpx.ASGITransport(app=create_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            response = await client.get(f"/api/v1/kilns/{kiln.id}/live")
        events = _events(ctx, AlarmWatch(ctx), [kiln])
        try:
            minute = [e async for e in _take(events, 2)][1]  # hello, then the kiln's minute
        finally:
            await events.aclose()
        assert minute.event == "minute"
        return response.content, str(minute.data)

    live, event = asyncio.run(both())
    assert json.loads(live)["time"] is not None
    assert event == live.decode()


async def _take(events: Any, n: int) -> Any:
    for _ in range(n):
        yield await anext(events)
