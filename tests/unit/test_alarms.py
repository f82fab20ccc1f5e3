"""The alarm book: which alarms open and clear, with which times, and the kiln status word."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from analytics import quality as q
from analytics.batch import ReadingBatch
from api.alarms import AlarmBook, HourSeen, KilnObservation, MinuteSeen, Observation, SourceSeen
from api.app import create_app
from api.context import ApiContext
from api.page_config import AlarmSettings, KilnThresholds
from collector.health import HealthRegistry
from collector.metrics import Metrics
from collector.store.local import LocalStore
from collector.store.reader import StoreReader

from .engine_helpers import T0, engine, series

S = 1_000_000_000
WALL0 = 1_795_000_000 * S  # service start, wall clock
MIN = 60 * S


def minute(start_ns: int, valid: bool = True, co2: float = 170.0, intensity: float = 835.0) -> MinuteSeen:
    return MinuteSeen(start_ns, 0, valid, co2, intensity)


def kiln(
    m: MinuteSeen | None, qualities: dict[str, str] | None = None, hour: HourSeen | None = None
) -> KilnObservation:
    return KilnObservation("kiln1", "Kiln 1", m, qualities or {}, hour)


def observe(now: int, k: KilnObservation, sources: list[SourceSeen] | None = None) -> Observation:
    return Observation(now, [k], sources or [])


def live_minute(now: int) -> MinuteSeen:
    """The minute that closes in real time at `now` (ended 10 s ago)."""
    return minute((now - 10 * S) // MIN * MIN - MIN)


@pytest.fixture
def book() -> AlarmBook:
    return AlarmBook(AlarmSettings(stale_after_s=180), WALL0)


def test_live_minutes_are_valid_and_raise_nothing(book: AlarmBook) -> None:
    for t in range(0, 600, 60):
        now = WALL0 + t * S
        book.update(observe(now, kiln(live_minute(now))))
    assert book.status["kiln1"].status == "valid"
    assert book.active == {}
    assert not book.cleared


def test_stale_opens_when_no_valid_minute_arrives_and_clears_with_the_next(book: AlarmBook) -> None:
    last = live_minute(WALL0 + 100 * S)
    book.update(observe(WALL0 + 100 * S, kiln(last)))
    book.update(observe(WALL0 + 280 * S, kiln(last)))  # exactly stale_after: not yet
    assert "stale:kiln1" not in book.active
    book.update(observe(WALL0 + 281 * S, kiln(last)))
    alarm = book.active["stale:kiln1"]
    assert alarm.start_ns == WALL0 + 280 * S  # arrival + stale_after, not the time we looked
    assert alarm.data_time_ns == last.start_ns
    assert "no minute arrives" in alarm.message
    assert book.status["kiln1"].status == "stale"
    assert book.status["kiln1"].detail == "no data"

    book.update(observe(WALL0 + 400 * S, kiln(live_minute(WALL0 + 400 * S))))
    assert "stale:kiln1" not in book.active
    assert book.cleared[0].key == "stale:kiln1"
    assert book.cleared[0].end_ns == WALL0 + 400 * S
    assert book.status["kiln1"].status == "valid"


def test_no_data_at_all_turns_stale_after_the_stale_time_from_start(book: AlarmBook) -> None:
    book.update(observe(WALL0 + 10 * S, kiln(None)))
    assert book.status["kiln1"].status == "no_data"
    book.update(observe(WALL0 + 200 * S, kiln(None)))
    assert book.active["stale:kiln1"].start_ns == WALL0 + 180 * S
    assert book.status["kiln1"].status == "stale"


def test_invalid_minutes_that_keep_arriving_are_stale_data_but_not_stopped_data(book: AlarmBook) -> None:
    for t in range(0, 300, 60):
        now = WALL0 + t * S
        m = live_minute(now)
        book.update(observe(now, kiln(MinuteSeen(m.start_ns, 0, False, None, None))))
    assert book.status["kiln1"].status == "stale"
    assert book.status["kiln1"].detail == "no valid minute"
    assert "none is valid" in book.active["stale:kiln1"].message


def test_calibration_is_a_maintenance_status_with_a_warning_naming_the_signals(book: AlarmBook) -> None:
    now = WALL0 + 60 * S
    cal = {"kiln1.stack.co2": "calibration", "kiln1.stack.o2": "calibration", "kiln1.stack.flow": "good"}
    book.update(observe(now, kiln(live_minute(now), cal)))
    assert book.status["kiln1"].status == "maintenance"
    assert book.status["kiln1"].detail == "calibration"
    alarm = book.active["calibration:kiln1"]
    assert (alarm.severity, alarm.start_ns) == ("warning", now)
    assert alarm.subjects == ("kiln1.stack.co2", "kiln1.stack.o2")
    assert alarm.message == "Kiln 1: calibration on stack.co2, stack.o2"

    later = now + 600 * S
    book.update(observe(later, kiln(live_minute(later), dict.fromkeys(cal, "good"))))
    assert book.active == {}
    assert (book.cleared[0].key, book.cleared[0].end_ns) == ("calibration:kiln1", later)


@pytest.mark.parametrize(
    ("qualities", "status"),
    [
        ({"a": "maintenance"}, "maintenance"),
        ({"a": "maintenance", "b": "fault"}, "fault"),
        ({"a": "calibration", "b": "maintenance"}, "maintenance"),
        ({"a": "uncertain", "b": "out_of_range"}, "valid"),
    ],
)
def test_fault_outranks_maintenance(book: AlarmBook, qualities: dict[str, str], status: str) -> None:
    now = WALL0 + 60 * S
    book.update(observe(now, kiln(live_minute(now), qualities)))
    assert book.status["kiln1"].status == status


def test_history_replayed_faster_than_real_time_is_catching_up_then_live(book: AlarmBook) -> None:
    # Simulated time starts 2 h behind the wall clock and runs 60 times faster.
    for wall_s in range(0, 150):
        now = WALL0 + wall_s * S
        sim = now - 2 * 3600 * S + wall_s * 59 * S
        m = minute(min(sim, now - 10 * S) // MIN * MIN - MIN)
        book.update(observe(now, kiln(m)))
        if wall_s == 60:
            assert book.status["kiln1"].status == "catching_up"
            assert book.status["kiln1"].lag_s == pytest.approx(3600, abs=120)
    assert book.status["kiln1"].status == "valid"
    assert book.active == {}


def test_a_disconnected_source_alarms_after_the_grace_time_from_when_it_dropped(book: AlarmBook) -> None:
    k = kiln(live_minute(WALL0))
    down = SourceSeen("opcua:sim", "opcua", False, WALL0 + 10 * S, "connection lost")
    book.update(observe(WALL0 + 12 * S, k, [down]))
    assert "source:opcua:sim" not in book.active  # within the 5 s grace
    book.update(observe(WALL0 + 16 * S, k, [down]))
    alarm = book.active["source:opcua:sim"]
    assert (alarm.start_ns, alarm.kiln) == (WALL0 + 10 * S, None)
    assert "connection lost" in alarm.message
    up = SourceSeen("opcua:sim", "opcua", True, WALL0 + 30 * S)
    book.update(observe(WALL0 + 31 * S, k, [up]))
    assert book.cleared[0].key == "source:opcua:sim"


def test_limits_per_kiln_with_hysteresis() -> None:
    settings = AlarmSettings(
        default_thresholds=KilnThresholds(co2_t_per_h=1000.0),
        thresholds={"kiln1": KilnThresholds(intensity_kg_per_t=900.0)},
        hysteresis=0.02,
    )
    book = AlarmBook(settings, WALL0)
    steps = [(850.0, False), (905.0, True), (890.0, True), (880.0, False), (901.0, True)]
    for i, (intensity, raised) in enumerate(steps):
        now = WALL0 + (i + 1) * MIN
        m = MinuteSeen(now - 2 * MIN, 0, True, 2000.0, intensity)
        book.update(observe(now, kiln(m)))
        assert ("intensity:kiln1" in book.active) is raised, intensity
    assert "co2:kiln1" not in book.active  # kiln1's own limits replace the default ones
    assert [a.key for a in book.cleared] == ["intensity:kiln1"]


def test_an_invalid_minute_does_not_judge_a_limit() -> None:
    book = AlarmBook(AlarmSettings(default_thresholds=KilnThresholds(co2_t_per_h=100.0)), WALL0)
    book.update(observe(WALL0 + MIN, kiln(MinuteSeen(WALL0, 0, False, 500.0, 900.0))))
    assert "co2:kiln1" not in book.active


def test_hourly_completeness_below_the_minimum(book: AlarmBook) -> None:
    now = WALL0 + 60 * S
    book.update(observe(now, kiln(live_minute(now), hour=HourSeen(WALL0 - 3600 * S, 0.5))))
    alarm = book.active["completeness:kiln1"]
    assert (alarm.severity, alarm.data_time_ns) == ("warning", WALL0 - 3600 * S)
    assert "50%" in alarm.message
    book.update(observe(now + S, kiln(live_minute(now), hour=HourSeen(WALL0, 0.8))))
    assert "completeness:kiln1" not in book.active


def test_version_moves_only_when_something_changes(book: AlarmBook) -> None:
    now = WALL0 + 60 * S
    m = live_minute(now)
    assert book.update(observe(now, kiln(m))) is True  # the first status
    version = book.version
    assert book.update(observe(now + S, kiln(m))) is False
    assert book.update(observe(now + 2 * S, kiln(m, {"x": "fault"}))) is True
    assert book.version == version + 1


def test_cleared_alarms_are_bounded() -> None:
    book = AlarmBook(AlarmSettings(keep_cleared=3), WALL0)
    now = WALL0
    for _ in range(5):
        now += S
        book.update(observe(now, kiln(live_minute(now), {"x": "fault"})))
        now += S
        book.update(observe(now, kiln(live_minute(now), {"x": "good"})))
    assert len(book.cleared) == 3
    assert book.cleared[0].end_ns == now


def test_alarms_endpoint_on_a_real_engine_evaluated_in_the_background(tmp_path: Path) -> None:
    eng, table = engine(lateness_s=0)
    n = 3600 + 120
    eng.ingest(
        ReadingBatch.concat(
            [
                series(table, "flow", T0, np.full(n, 397_500.0)),
                series(table, "co2", T0, np.full(n, 22.0)),
                series(table, "clinker", T0, np.full(n, 5000 / 24), np.full(n, q.UNCERTAIN | q.CALIBRATION)),
            ]
        )
    )
    out = eng.advance()
    store = LocalStore(tmp_path / "s.sqlite3", table.ids)
    store.write_aggregates(out.minutes, out.hours)
    health = HealthRegistry()
    health.source("opcua:plc", "opcua").mark_disconnected("refused")
    ctx = ApiContext(
        table=table,
        kilns=[eng.kilns["k"].spec],
        live=eng,
        history=StoreReader(store.path),
        readiness=health,
        registry=Metrics().registry,
        sources=health,
        alarms=AlarmSettings(source_grace_s=0, evaluate_every_s=0.05),
    )
    app = create_app(ctx)
    with TestClient(app) as client:
        watch = app.state.alarm_watch
        deadline = time.monotonic() + 5
        while watch.book.version == 0 and time.monotonic() < deadline:  # no request: the lifespan's task
            time.sleep(0.05)
        assert watch.book.version > 0
        body = client.get("/api/v1/alarms").json()
    assert body["kilns"]["k"]["status"] == "maintenance"  # calibration outranks the replayed history
    assert {a["id"]: a["kind"] for a in body["active"]} == {
        "calibration:k": "calibration",
        "source:opcua:plc": "source",
        "completeness:k": "completeness",  # every minute invalid: the hour is 0 % complete
    }
    assert all(a["end"] is None and a["active"] for a in body["active"])
    assert body["stale_after_s"] == 180
