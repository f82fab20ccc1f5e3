"""The audit trail and the raw readings through the API with real tokens: ``/api/v1/audit`` for admins
only, its filters and CSV, no way to change a row through the API or the store; the ``config.loaded``
row written at start-up only when the plant file changed; ``/api/v1/kilns/{id}/raw`` with the QAL2
functions in force."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml

from analytics.batch import ReadingBatch
from api.page_config import AlarmSettings
from api.security.tokens import Role
from collector.conditioning import ValueCorrections
from collector.store.audit import AuditTrail
from kilnwatch.config import parse_plant
from kilnwatch.config_audit import plant_digest, record_config_loaded
from kilnwatch.demo import demo_plant

from .api_server import serve_api

pytestmark = pytest.mark.integration
T = 1_790_000_000 * 10**9  # 2026-09-21T14:13:20Z


def test_the_audit_route_is_admin_only_filters_and_gives_csv(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with serve_api(path, AlarmSettings()) as api:
        trail: AuditTrail = api.ctx.audit
        trail.record("kilnwatch", "config.loaded", "plant", after={"sha256": "ab" * 32}, at_ns=T)
        trail.record(
            "op1",
            "alarm.acknowledge",
            "alarm/stale:k",
            before={"state": "a"},
            after={"state": "b"},
            at_ns=T + 10**9,
        )
        trail.record(
            "op2",
            "alarm.shelve",
            "alarm/co2:k",
            after={"until": "x"},
            reason='swap; "new"',
            at_ns=T + 2 * 10**9,
        )
        trail.record(
            "op1", "annotation.create", "annotation/1", after={"kind": "kiln_stopped"}, at_ns=T + 3 * 10**9
        )

        for role in (Role.METRICS, Role.VIEWER, Role.OPERATOR):
            assert api.get("/api/v1/audit", role).status_code == 403, role
        every = api.get("/api/v1/audit", Role.ADMIN).json()
        assert [r["action"] for r in every] == [
            "config.loaded",
            "alarm.acknowledge",
            "alarm.shelve",
            "annotation.create",
        ]
        assert every[1] == {
            "id": every[1]["id"],
            "time": "2026-09-21T14:13:21Z",
            "actor": "op1",
            "action": "alarm.acknowledge",
            "subject": "alarm/stale:k",
            "before": {"state": "a"},
            "after": {"state": "b"},
            "reason": "",
        }

        def actions(**params: str) -> list[str]:
            r = api.get("/api/v1/audit", Role.ADMIN, **params)
            assert r.status_code == 200, r.text
            return [row["action"] for row in r.json()]

        assert actions(actor="op1") == ["alarm.acknowledge", "annotation.create"]
        assert actions(action="alarm.") == ["alarm.acknowledge", "alarm.shelve"]
        assert actions(action="alarm.shelve") == ["alarm.shelve"]
        assert actions(subject="alarm/co2") == ["alarm.shelve"]
        assert actions(start="2026-09-21T14:13:21Z", end="2026-09-21T14:13:23Z") == [
            "alarm.acknowledge",
            "alarm.shelve",
        ]
        assert actions(after_id=str(every[2]["id"])) == ["annotation.create"]
        assert api.get("/api/v1/audit", Role.ADMIN, start="yesterday").status_code == 422

        text = api.get("/api/v1/audit", Role.ADMIN, format="csv", action="alarm.").text
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [r["actor"] for r in rows] == ["op1", "op2"]
        assert rows[0]["before"] == '{"state":"a"}' and rows[1]["before"] == ""
        assert rows[1]["reason"] == 'swap; "new"'

        # nothing in the API changes the trail, and the table itself refuses it
        for method in ("PUT", "PATCH", "DELETE", "POST"):
            r = api.client.request(method, api.url + "/api/v1/audit", headers=api.headers(Role.ADMIN))
            assert r.status_code == 405, method
        conn = sqlite3.connect(path)
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE audit SET actor = 'someone else'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM audit")
        conn.close()
        assert len(api.get("/api/v1/audit", Role.ADMIN).json()) == 4


def test_config_loaded_is_recorded_only_when_the_plant_file_changes(tmp_path: Path) -> None:
    plant_file = tmp_path / "plant.yaml"
    data = demo_plant()
    plant_file.write_text(yaml.safe_dump(data))
    trail = AuditTrail(tmp_path / "s.sqlite3")
    try:
        plant = parse_plant(data)
        first = record_config_loaded(trail, *plant_digest(plant, plant_file))
        assert first is not None and first.before is None and first.actor == "kilnwatch"
        assert record_config_loaded(trail, *plant_digest(plant, plant_file)) is None  # a restart, same file
        plant_file.write_text(plant_file.read_text() + "# a comment changes the file\n")
        second = record_config_loaded(trail, *plant_digest(plant, plant_file))
        assert second is not None
        assert second.before == first.after and second.after["sha256"] != first.after["sha256"]
        assert len(second.after["sha256"]) == 64
        assert [e.id for e in trail.entries(action="config.loaded")] == [first.id, second.id]
    finally:
        trail.close()


def test_raw_readings_and_the_qal2_functions_in_force(tmp_path: Path) -> None:
    with serve_api(tmp_path / "s.sqlite3", AlarmSettings()) as api:
        table = api.table
        co2 = table.index("k.co2")
        ts = T + np.arange(3, dtype=np.int64) * 10**9
        batch = ReadingBatch(
            np.full(3, co2, np.int32), ts, np.array([22.1, 22.3, 22.2]), np.zeros(3, np.uint8)
        )
        api.store.write(batch, raw_value=np.array([21.0, 21.2, 21.1]))
        corrections = ValueCorrections.none(len(table))
        corrections.has_qal2[co2] = True
        corrections.qal2_a[co2] = 0.05
        corrections.qal2_b[co2] = 1.05
        api.store.record_calibrations(table.ids, corrections)

        params = {"signal": "co2", "start": "2026-09-21T14:13:00Z", "end": "2026-09-21T14:14:00Z"}
        r = api.get("/api/v1/kilns/k/raw", Role.VIEWER, **params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["signal"] == "k.co2" and body["truncated"] is False
        assert [(x["raw"], x["value"], x["quality_word"]) for x in body["readings"]] == [
            (21.0, 22.1, "good"),
            (21.2, 22.3, "good"),
            (21.1, 22.2, "good"),
        ]
        assert body["readings"][0]["ts"] == "2026-09-21T14:13:20Z"
        [cal] = body["calibrations"]
        assert (cal["a"], cal["b"], cal["in_force_from"], cal["valid_max"]) == (0.05, 1.05, None, None)

        assert api.get("/api/v1/kilns/k/raw", Role.VIEWER, **{**params, "signal": "k.co2"}).json() == body
        assert api.get("/api/v1/kilns/k/raw", Role.VIEWER, **{**params, "signal": "nox"}).status_code == 404
        assert api.get("/api/v1/kilns/nope/raw", Role.VIEWER, **params).status_code == 404
        assert api.get("/api/v1/kilns/k/raw", Role.METRICS, **params).status_code == 403
        empty = api.get(
            "/api/v1/kilns/k/raw", Role.VIEWER, signal="flow", start=params["start"], end=params["end"]
        )
        assert empty.json()["readings"] == [] and empty.json()["calibrations"] == []


def test_the_service_records_config_loaded_at_start_up_once_per_plant_file_version(tmp_path: Path) -> None:
    from kilnwatch.config import load_plant_file
    from kilnwatch.service import Service
    from kilnwatch.settings import Settings

    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(yaml.safe_dump(demo_plant()))
    settings = Settings(data_dir=tmp_path / "data")

    def start_up() -> list[tuple[str, object, object]]:
        svc = Service(load_plant_file(plant_file), settings, plant_path=plant_file)
        svc.open()
        try:
            return [(e.action, e.before, e.after) for e in svc.audit.entries(action="config.")]
        finally:
            svc.pipeline.close()
            svc.store.close()
            svc.audit.close()
            svc.alarm_state.close()

    first = start_up()
    assert len(first) == 1 and first[0][1] is None
    assert start_up() == first  # a restart with the same file
    plant_file.write_text(plant_file.read_text() + "# changed\n")
    rows = start_up()
    assert len(rows) == 2 and rows[1][1] == first[0][2] and rows[1][2] != first[0][2]
