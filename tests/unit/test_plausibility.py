"""The time window (collector.plausibility), the default physical ranges and the finite-numbers rule
of valid minutes and hours."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest

from analytics import quality as q
from analytics.batch import ReadingBatch
from analytics.signals import Quantity
from analytics.units import DEFAULT_RANGE
from analytics.validity import numbers_usable
from collector.metrics import Metrics
from collector.plausibility import (
    BEFORE_COMMISSIONING,
    FUTURE,
    REASONS,
    TOO_OLD,
    TimeGuard,
    TimeWindow,
    screen,
)
from collector.store.local import DeadLetter
from kilnwatch.config import ConfigError, parse_plant
from kilnwatch.demo import demo_plant
from kilnwatch.plant import build_runtime
from tests.unit.engine_helpers import HOUR, T0, engine, series

NS = 1_000_000_000
DAY = 86_400 * NS
NOW = 1_796_000_000 * NS  # 2026-11-30


def batch(ts: list[int]) -> ReadingBatch:
    n = len(ts)
    return ReadingBatch.from_columns(np.arange(n) % 3, ts, np.arange(n, dtype=float), np.zeros(n))


# -- the window -----------------------------------------------------------------------------------


def test_readings_outside_the_window_are_split_off_with_their_reason() -> None:
    ts = [NOW - 60 * NS, 0, NOW, 1 * NS, NOW - 30 * DAY, NOW + 10 * DAY, NOW - 7 * DAY, NOW + 300 * NS]
    s = screen(batch(ts), TimeWindow(), NOW)
    # bounds are inclusive: exactly 7 days old and exactly 300 s ahead are kept
    assert s.kept.ts.tolist() == [NOW - 60 * NS, NOW, NOW - 7 * DAY, NOW + 300 * NS]
    assert s.kept.value.tolist() == [0.0, 2.0, 6.0, 7.0]  # the good readings keep their rows
    assert s.rejected.ts.tolist() == [0, NS, NOW - 30 * DAY, NOW + 10 * DAY]
    assert [REASONS[r] for r in s.reasons.tolist()] == [TOO_OLD, TOO_OLD, TOO_OLD, FUTURE]


def test_one_nanosecond_outside_each_bound_is_rejected() -> None:
    s = screen(batch([NOW - 7 * DAY - 1, NOW + 300 * NS + 1]), TimeWindow(), NOW)
    assert len(s.kept) == 0 and [REASONS[r] for r in s.reasons.tolist()] == [TOO_OLD, FUTURE]


def test_commissioning_date_narrows_the_window() -> None:
    window = TimeWindow(commissioning_ns=NOW - 2 * DAY)
    s = screen(batch([NOW - 3 * DAY, NOW - 2 * DAY, NOW - 8 * DAY, NOW]), window, NOW)
    assert s.kept.ts.tolist() == [NOW - 2 * DAY, NOW]
    assert [REASONS[r] for r in s.reasons.tolist()] == [BEFORE_COMMISSIONING, BEFORE_COMMISSIONING]
    # a commissioning date older than the maximum age changes nothing; before it: that reason
    old = screen(batch([NOW - 8 * DAY, NOW - 31 * DAY]), TimeWindow(commissioning_ns=NOW - 30 * DAY), NOW)
    assert [REASONS[r] for r in old.reasons.tolist()] == [TOO_OLD, BEFORE_COMMISSIONING]


def test_a_dead_letter_names_the_commissioning_date() -> None:
    letters: list[DeadLetter] = []
    window = TimeWindow(commissioning_ns=NOW - 30 * DAY)
    TimeGuard(window, ("x",), Metrics(), letters.append, lambda: NOW)(batch([NOW - 31 * DAY]), "s")
    assert letters[0].reason == (
        f"{BEFORE_COMMISSIONING}: source time 2026-10-30T00:53:20.000Z is before commissioning_date "
        "2026-10-31T00:53:20.000Z"
    )


def test_a_batch_inside_the_window_passes_untouched() -> None:
    b = batch([NOW - i * NS for i in range(1000)])
    s = screen(b, TimeWindow(), NOW)
    assert s.kept is b and len(s.rejected) == 0
    assert screen(ReadingBatch.empty(), TimeWindow(), NOW).kept is not None


def test_the_guard_counts_dead_letters_and_logs_once_per_source_and_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    letters: list[DeadLetter] = []
    names = ("k.co2", "k.o2", "k.h2o")
    guard = TimeGuard(TimeWindow(), names, metrics, letters.append, lambda: NOW)
    caplog.set_level(logging.WARNING, logger="collector.plausibility")
    for _ in range(2):
        kept = guard(batch([0, NOW, NOW + 10 * DAY, NOW - NS]), "mqtt:cems")
        assert kept.ts.tolist() == [NOW, NOW - NS]
    assert [(d.source, d.signal, d.reason.split(":")[0]) for d in letters[:2]] == [
        ("mqtt:cems", "k.co2", TOO_OLD),
        ("mqtt:cems", "k.h2o", FUTURE),
    ]
    assert len(letters) == 4 and all(d.received_ns == NOW for d in letters)
    assert orjson.loads(letters[0].payload) == {"ts_ns": 0, "value": 0.0, "quality": 0}
    assert "1970-01-01T00:00:00.000Z" in letters[0].reason and "2026-11-23" in letters[0].reason
    assert "max_future_skew_s 300" in letters[1].reason

    def count(signal: str, reason: str) -> float:
        labels = {"source": "mqtt:cems", "signal": signal, "reason": reason}
        return metrics.registry.get_sample_value("kilnwatch_rejected_total", labels) or 0.0

    assert count("k.co2", TOO_OLD) == 2 and count("k.h2o", FUTURE) == 2
    logged = [r for r in caplog.records if r.name == "collector.plausibility"]
    assert len(logged) == 2 and "mqtt:cems" in logged[0].getMessage()


def test_a_timestamp_far_outside_the_datetime_range_is_still_described() -> None:
    letters: list[DeadLetter] = []
    guard = TimeGuard(TimeWindow(), ("x",), Metrics(), letters.append, lambda: NOW)
    guard(ReadingBatch.from_columns([0], [np.iinfo(np.int64).max], [1.0], [0]), "opcua:plc")
    assert letters[0].reason.startswith(FUTURE) and "2262-04-11" in letters[0].reason


# -- settings -------------------------------------------------------------------------------------


def plant(**section: Any) -> dict[str, Any]:
    data = demo_plant(opcua_port=4840, mqtt_port=1883, kilns=("kiln1",))
    if section:
        data["plausibility"] = section
    return data


def test_window_settings_default_and_are_reported_in_the_method_block() -> None:
    runtime = build_runtime(parse_plant(plant()))
    assert runtime.window == TimeWindow(7 * DAY, 300 * NS, None)
    method = runtime.method()["plausibility"]
    assert method["max_reading_age_days"] == 7 and method["max_future_skew_s"] == 300
    assert method["commissioning_date"] is None
    assert method["default_ranges"]["flow"] == {"min": 0.0, "max": 1e7, "unit": "m3/h"}
    assert "status" not in method["default_ranges"]
    assert method["signals_with_default_range"] == []  # the demo plant sets every range
    assert "finite" in runtime.method()["validity"]


def test_window_settings_from_the_plant_file() -> None:
    runtime = build_runtime(
        parse_plant(plant(max_reading_age_days=30, max_future_skew_s=5, commissioning_date="2026-03-01"))
    )
    start = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp()) * NS
    assert runtime.window == TimeWindow(30 * DAY, 5 * NS, start)
    assert runtime.method()["plausibility"]["commissioning_date"] == "2026-03-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"max_reading_age_days": 0}, "plausibility.max_reading_age_days"),
        ({"max_future_skew_s": -1}, "plausibility.max_future_skew_s"),
        ({"commissioning_date": "yesterday"}, "plausibility.commissioning_date"),
        (
            {"commissioning_date": (datetime.now(UTC) + timedelta(days=2)).isoformat()},
            "commissioning_date is in the future",
        ),
        ({"max_age": 3}, "plausibility.max_age"),
    ],
)
def test_bad_window_settings_are_named(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_plant(plant(**section))
    assert message in str(err.value)


# -- default physical ranges ----------------------------------------------------------------------


def test_every_quantity_has_a_default_range_in_its_canonical_unit() -> None:
    assert set(DEFAULT_RANGE) == set(Quantity)
    assert DEFAULT_RANGE[Quantity.FLOW][0] == 0 and DEFAULT_RANGE[Quantity.CO2] == (0.0, 100.0)
    assert DEFAULT_RANGE[Quantity.TEMPERATURE] == (-50.0, 1500.0)
    for lo, hi in DEFAULT_RANGE.values():
        assert lo < hi


def test_a_signal_without_a_range_gets_the_default_and_absurd_values_are_flagged() -> None:
    data = plant()
    for s in data["plants"][0]["kilns"][0]["signals"]:
        if s["id"] in ("kiln1.stack.flow", "kiln1.stack.temperature"):
            del s["range"]
        if s["id"] == "kiln1.stack.barometric_pressure":
            s["unit"], s["range"] = "hPa", [900, 1100]  # its own range, in its own unit
    runtime = build_runtime(parse_plant(data))
    t = runtime.table
    flow, temp, baro = (t.index(f"kiln1.stack.{n}") for n in ("flow", "temperature", "barometric_pressure"))
    assert (t.valid_min[flow], t.valid_max[flow]) == DEFAULT_RANGE[Quantity.FLOW]
    assert (t.valid_min[temp], t.valid_max[temp]) == (-50.0, 1500.0)
    assert (t.valid_min[baro], t.valid_max[baro]) == pytest.approx((90.0, 110.0))
    assert runtime.method()["plausibility"]["signals_with_default_range"] == [
        "kiln1.stack.flow",
        "kiln1.stack.temperature",
    ]
    values = [6e5, 1e308, -1.0, 1.5e7, 120.0, -273.15, 2000.0]
    signals = [flow] * 4 + [temp] * 3
    raw = ReadingBatch.from_columns(signals, np.arange(7), values, np.zeros(7))
    out, counts = runtime.conditioner.apply(raw)
    flagged = (out.quality & q.OUT_OF_RANGE) != 0
    assert flagged.tolist() == [False, True, True, True, False, True, True]
    assert out.value.tolist() == values  # kept as they came, only flagged
    assert counts.out_of_range == {flow: 3, temp: 2}


# -- valid minutes and hours have numbers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("co2", "clinker", "intensity", "usable"),
    [
        (170.0, 208.0, 817.3, True),
        (170.0, 0.0, None, True),  # no clinker made: no intensity, the CO2 still counts
        (None, 208.0, None, False),
        (math.inf, 208.0, math.inf, False),
        (math.nan, 208.0, math.nan, False),
        (170.0, math.inf, 0.0, False),
        (170.0, None, None, False),
        (170.0, 208.0, None, False),
        (-math.inf, 208.0, -math.inf, False),
    ],
)
def test_numbers_usable(
    co2: float | None, clinker: float | None, intensity: float | None, usable: bool
) -> None:
    assert bool(numbers_usable(co2, clinker, intensity)) is usable


def test_numbers_usable_is_vectorised() -> None:
    got = numbers_usable(
        np.array([1.0, np.inf, 1.0]), np.array([1.0, 1.0, 0.0]), np.array([1.0, np.inf, np.nan])
    )
    assert got.tolist() == [True, False, True]


def test_an_overflowing_flow_makes_no_valid_minute_or_hour() -> None:
    """A range wide enough to let 1e308 through (the default would flag it): the means overflow, and
    neither the minutes nor the hour they make are valid; their CO2 is no number, not infinity."""
    eng, table = engine(lateness_s=0)
    n = 3600 + 120
    flow = np.full(n, 4.0e5)
    flow[600:900] = 1e308  # minutes 10-14 of the hour
    with np.errstate(over="ignore", invalid="ignore"):
        for b in (
            series(table, "flow", T0, flow),
            series(table, "co2", T0, np.full(n, 22.0)),
            series(table, "clinker", T0, np.full(n, 210.0)),
        ):
            eng.ingest(b)
        out = eng.advance()
    minutes = {(m.start_ns - T0) // (60 * NS): m for m in out.minutes}
    assert all(not minutes[i].valid and minutes[i].co2_t_per_h is None for i in range(10, 15))
    assert all(minutes[i].valid and math.isfinite(minutes[i].co2_t_per_h or math.nan) for i in range(10))
    (hour,) = [h for h in out.hours if h.start_ns == T0]
    assert hour.start_ns + HOUR <= T0 + n * NS
    assert not hour.valid and hour.co2_t is None and hour.intensity_kg_per_t is None
    for m in out.minutes:
        assert not m.valid or (m.co2_t_per_h is not None and m.intensity_kg_per_t is not None)
