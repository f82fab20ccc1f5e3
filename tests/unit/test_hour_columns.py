"""Hours from minute columns (one vectorised pass) against the per-hour path, field for field."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analytics.aggregates import HourAggregate, MinuteAggregate
from analytics.batch import NS_PER_S, ReadingBatch
from analytics.engine import EmissionsEngine
from analytics.hours import HOUR_NS
from analytics.minute_columns import MinuteColumns
from analytics.minutes import MINUTE_NS
from analytics.us_units import ReportingConvention
from kilnwatch.config import parse_plant
from kilnwatch.demo import demo_plant
from kilnwatch.plant import Runtime, build_runtime
from simulators.model import SIGNAL_KEYS, KilnModel

START_S = 1_767_225_600  # 2026-01-01T00:00Z
HOURS = 5
ANALYSERS = ("stack.co2", "stack.co", "stack.h2o", "stack.o2", "stack.nox")


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    plant = demo_plant(opcua_port=4840, mqtt_port=None, kilns=("kiln1",))
    return build_runtime(parse_plant(plant, "test plant"))


@pytest.fixture(scope="module")
def minutes(runtime: Runtime) -> list[MinuteAggregate]:
    """Five hours of the model through the engine: an analyser fault in hour 1, a flow dropout
    in hour 2 (both need substitution), a stopped kiln in hour 3 (no intensity)."""
    engine = EmissionsEngine(runtime.table, runtime.kilns, runtime.engine_params)
    out: list[MinuteAggregate] = []
    for h in range(HOURS):
        t = (START_S + h * 3600 + np.arange(3600 + (120 if h == HOURS - 1 else 0), dtype=np.int64)) * NS_PER_S
        values = KilnModel("kiln1", seed=3).sample(t)
        parts = []
        for key in SIGNAL_KEYS:
            quality = np.zeros(len(t), np.uint8)
            v = values[key]
            if h == 1 and key in ANALYSERS:
                quality[600:1800] = 2 | 16  # bad, fault
            if h == 2 and key == "stack.flow":
                quality[300:1200] = 2 | 128  # bad, comm loss
            if h == 3 and key == "clinker.rate":
                v = np.where(np.arange(len(t)) < 2400, 0.0, v)
            sig = np.full(len(t), runtime.table.index(f"kiln1.{key}"), np.int32)
            parts.append(ReadingBatch(sig, t, v, quality))
        engine.ingest(runtime.conditioner.apply(ReadingBatch.concat(parts))[0])
        out += engine.advance_all().minutes
    return [m for m in out if m.start_ns < (START_S + HOURS * 3600) * NS_PER_S]


def per_hour(engine: EmissionsEngine, minutes: list[MinuteAggregate]) -> list[HourAggregate]:
    acct = engine.kilns["kiln1"].acct
    by_hour: dict[int, list[MinuteAggregate]] = {}
    for m in sorted(minutes, key=lambda m: m.start_ns):
        by_hour.setdefault(m.start_ns // HOUR_NS * HOUR_NS, []).append(m)
    return [acct.hour(h, by_hour[h], 0) for h in sorted(by_hour)]


def columnar(engine: EmissionsEngine, minutes: list[MinuteAggregate]) -> list[HourAggregate]:
    columns = MinuteColumns.from_minutes(minutes)
    assert columns is not None
    return engine.rebuild_hours("kiln1", columns)


def with_rules(runtime: Runtime, **changes: object) -> EmissionsEngine:
    rules = dict(runtime.engine_params.rules)
    rules["kiln1"] = dataclasses.replace(rules["kiln1"], **changes)  # type: ignore[arg-type]
    params = dataclasses.replace(runtime.engine_params, rules=rules)
    return EmissionsEngine(runtime.table, runtime.kilns, params)


def assert_same(a: list[HourAggregate], b: list[HourAggregate]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert repr(x.to_dict()) == repr(y.to_dict())  # equal numbers, and the same key order


def test_hours_from_columns_equal_the_per_hour_path(runtime: Runtime, minutes: list[MinuteAggregate]) -> None:
    old = per_hour(EmissionsEngine(runtime.table, runtime.kilns, runtime.engine_params), minutes)
    new = columnar(EmissionsEngine(runtime.table, runtime.kilns, runtime.engine_params), minutes)
    assert_same(old, new)
    assert [h.co2_t_substituted for h in new] == [False, True, True, False, False]
    assert new[3].half_hours[0].operating is False  # the stopped kiln


def test_missing_minutes_count_as_missing_points(runtime: Runtime, minutes: list[MinuteAggregate]) -> None:
    hour0, hour4 = START_S * NS_PER_S, (START_S + 4 * 3600) * NS_PER_S
    gappy = [
        m
        for m in minutes
        if not (hour0 + 10 * MINUTE_NS <= m.start_ns < hour0 + 25 * MINUTE_NS)  # a gap in hour 0
        and not (m.start_ns >= hour4 + 5 * MINUTE_NS)  # hour 4: five minutes only
    ]
    old = per_hour(EmissionsEngine(runtime.table, runtime.kilns, runtime.engine_params), gappy)
    new = columnar(EmissionsEngine(runtime.table, runtime.kilns, runtime.engine_params), gappy)
    assert_same(old, new)
    assert new[0].params["kiln1.stack.co2"].reasons["missing"] == 15 * 60
    assert not new[4].valid


@pytest.mark.parametrize("convention", [ReportingConvention.US_PART75, ReportingConvention.US_PART98])
def test_us_conventions(
    runtime: Runtime, minutes: list[MinuteAggregate], convention: ReportingConvention
) -> None:
    old = per_hour(with_rules(runtime, convention=convention), minutes)
    new = columnar(with_rules(runtime, convention=convention), minutes)
    assert_same(old, new)
    assert new[0].convention == convention.value


def test_a_second_rebuild_counts_revisions_on_and_gives_the_same_numbers(
    runtime: Runtime, minutes: list[MinuteAggregate]
) -> None:
    engine = EmissionsEngine(runtime.table, runtime.kilns, runtime.engine_params)
    first = columnar(engine, minutes)
    again = columnar(engine, minutes)
    assert [h.revision for h in first] == [0] * HOURS and [h.revision for h in again] == [1] * HOURS
    for a, b in zip(first, again, strict=True):
        assert repr(dataclasses.replace(a, revision=1).to_dict()) == repr(b.to_dict())


def test_minutes_that_do_not_fit_columns_take_the_per_hour_path(
    runtime: Runtime, minutes: list[MinuteAggregate]
) -> None:
    odd = [dataclasses.replace(m, params=dict(m.params)) for m in minutes]
    del odd[7].params["kiln1.stack.dust"]  # one minute without a parameter
    assert MinuteColumns.from_minutes(odd) is None
    old = per_hour(EmissionsEngine(runtime.table, runtime.kilns, runtime.engine_params), odd)
    new = EmissionsEngine(runtime.table, runtime.kilns, runtime.engine_params).rebuild_hours("kiln1", odd)
    assert_same(old, new)
