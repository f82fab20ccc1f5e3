"""The live route writes its JSON directly; it must be what the LiveResponse model would write."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from analytics.batch import ReadingBatch
from analytics.engine import EmissionsEngine
from analytics.signals import SignalTable
from api.context import ApiContext
from api.models import LiveResponse
from api.routes_kilns import live_json
from collector.health import HealthRegistry
from collector.metrics import Metrics
from collector.store.reader import StoreReader

from .engine_helpers import T0, engine, series

METHOD = {"valid_fraction": 0.8, "kilns": {"k": {"stuck_signals": ["k.co2"], "elv": None}}}


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
    assert data["method"] == METHOD


def test_a_body_is_reused_until_the_engine_changes_and_its_age_stays_current(tmp_path: Path) -> None:
    eng, table = engine(lateness_s=0)
    eng.ingest(
        ReadingBatch.concat(
            [series(table, "flow", T0, np.full(150, 397_500.0)), series(table, "co2", T0, np.full(150, 22.0))]
        )
    )
    eng.advance()
    ctx = _context(eng, table, tmp_path)
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
    assert after["method"] == METHOD
    body = live_json(ctx, kiln)
    assert body.decode() == _as_model_writes_it(body)
