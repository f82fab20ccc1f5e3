"""The API on a real engine and store, driven with synthetic readings (no network sources)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.testing import assert_allclose

from analytics.batch import ReadingBatch
from api.app import create_app
from api.context import ApiContext
from collector.health import HealthRegistry
from collector.metrics import Metrics
from collector.store.local import LocalStore
from collector.store.reader import StoreReader

from .engine_helpers import HOUR, SIGNALS, T0, engine, series

FLOW, CO2, CLINKER = 397_500.0, 22.0, 5000 / 24


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    eng, table = engine(lateness_s=0)
    n = 2 * 3600 + 120
    eng.ingest(
        ReadingBatch.concat(
            [
                series(table, "flow", T0, np.full(n, FLOW)),
                series(table, "co2", T0, np.full(n, CO2)),
                series(table, "clinker", T0, np.full(n, CLINKER)),
            ]
        )
    )
    out = eng.advance_all()
    store = LocalStore(tmp_path / "s.sqlite3", table.ids)
    store.write_aggregates(out.minutes, out.hours)
    health = HealthRegistry()
    health.source("opcua:sim", "opcua").mark_connected()
    ctx = ApiContext(
        table=table,
        kilns=list(eng.kilns[k].spec for k in eng.kilns),
        live=eng,
        history=StoreReader(store.path),
        readiness=health,
        registry=Metrics().registry,
        method={"valid_fraction": 0.8},
    )
    c = TestClient(create_app(ctx))
    c.health = health  # type: ignore[attr-defined]
    return c


def test_kilns_and_live(client: TestClient) -> None:
    assert client.get("/api/v1/kilns").json() == [{"id": "k", "name": "Kiln", "plant": "p"}]
    live = client.get("/api/v1/kilns/k/live").json()
    assert live["kiln"] == "k"
    assert live["time"] == "2026-01-01T02:00:00Z"  # the last whole minute before the newest reading
    assert_allclose(live["co2_t_per_h"], FLOW * 0.22 * 44.0095 / 22.414 / 1000)
    assert_allclose(live["intensity_kg_per_t"], live["co2_t_per_h"] * 1000 / CLINKER)
    assert live["valid"] is True
    assert live["age_s"] > 0
    assert set(live["signals"]) == {s.id for s in SIGNALS.values()}
    assert live["signals"]["k.co2"] == {
        "value": CO2,
        "unit": "vol %",
        "quality": "good",
        "time": "2026-01-01T02:01:59Z",
    }
    assert live["method"] == {"valid_fraction": 0.8}


def test_hourly_json_and_csv(client: TestClient) -> None:
    rows = client.get(
        "/api/v1/kilns/k/hourly", params={"start": "2026-01-01T00:00:00Z", "end": "2026-01-02"}
    ).json()
    assert [r["hour"] for r in rows] == ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"]
    assert all(r["valid"] and r["completeness"] == 1.0 for r in rows)
    assert_allclose(rows[0]["clinker_t"], CLINKER)
    csv = client.get(
        "/api/v1/kilns/k/hourly",
        params={"start": "2026-01-01T00:00:00Z", "end": "2026-01-02", "format": "csv"},
    )
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("hour,co2_t,clinker_t,intensity_kg_per_t,valid,completeness")
    assert len(lines) == 3 and lines[1].startswith("2026-01-01T00:00:00Z,")


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"start": "yesterday"}, "not an ISO 8601 time"),
        ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "must be before end"),
        ({"format": "xml"}, "csv"),
    ],
)
def test_bad_time_range_is_422(client: TestClient, params: dict[str, str], words: str) -> None:
    r = client.get("/api/v1/kilns/k/hourly", params=params)
    assert r.status_code == 422
    assert words in r.text


def test_unknown_kiln_is_404_json(client: TestClient) -> None:
    for path in ("/api/v1/kilns/nope/live", "/api/v1/kilns/nope/hourly"):
        r = client.get(path)
        assert r.status_code == 404
        assert "no kiln 'nope'" in r.json()["detail"]


def test_health_readiness_metrics(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    client.health.sources["opcua:sim"].mark_disconnected("connection refused")  # type: ignore[attr-defined]
    r = client.get("/readyz")
    assert r.status_code == 503
    assert "opcua source opcua:sim is not connected: connection refused" in r.json()["reasons"]
    assert "kilnwatch_readings_total" in client.get("/metrics").text
    assert HOUR
