"""A restart rebuilds the engine from what was stored: the ledger's minutes of the open hour and the
stored readings after them. A run killed mid-hour and restarted gives the hours a run without the
crash gives; restored data holds the watermark as data that has just arrived, and no longer."""

from __future__ import annotations

import numpy as np

from analytics.aggregates import HourAggregate, MinuteAggregate
from analytics.batch import ReadingBatch
from analytics.engine import EmissionsEngine, EngineParams
from analytics.rules import KilnRules
from analytics.signals import KilnSpec, Quantity, SignalInfo, SignalTable

NS = 10**9
MIN = 60 * NS
T0 = 1_767_225_600 * NS  # 2026-01-01T00:00Z
INFOS = [
    SignalInfo("k.flow", "p", "k", Quantity.FLOW, "Nm3/h", "dry", "standard"),
    SignalInfo("k.co2", "p", "k", Quantity.CO2, "vol %", "dry"),
    SignalInfo("k.clinker", "p", "k", Quantity.CLINKER_RATE, "t/h"),
]
FLOW, CO2, CLINKER = 0, 1, 2
#: Two hours and two minutes of 1-s data; co2 frozen from 25 to 45 min (stuck from 40 min on);
#: clinker reported every 45 s only (as OPC UA reports changes), so minutes hold its last value.
N = 2 * 3600 + 120
CLINKER_EVERY = 45


def make() -> EmissionsEngine:
    table = SignalTable(INFOS)
    kiln = KilnSpec.from_table(table, "k", "Kiln", "p")
    rules = {"k": KilnRules(stuck_s=900, stuck_signals=frozenset({CO2}))}
    return EmissionsEngine(table, [kiln], EngineParams(lateness_s=10, idle_after_s=10, rules=rules))


def plant_data() -> ReadingBatch:
    t = np.arange(N)
    co2 = 22.0 + 0.01 * np.sin(t / 7.0)
    co2[1500:2700] = co2[1500]
    flow = 400_000.0 + 500.0 * np.sin(t / 300.0)
    flow[3000:3030] = np.nan  # a dropout: the ledger calls it bad
    clinker = np.full(N, np.nan)
    clinker[::CLINKER_EVERY] = 5000 / 24 + np.arange(len(clinker[::CLINKER_EVERY])) % 3
    values = {FLOW: flow, CO2: co2, CLINKER: clinker}
    parts = [
        ReadingBatch.from_columns(np.full(N, s), T0 + t * NS, v, np.zeros(N, np.uint8)).take(
            np.isfinite(v) | (s == FLOW)
        )
        for s, v in values.items()
    ]
    batch = ReadingBatch.concat(parts)
    return batch.take(np.argsort(batch.ts, kind="stable"))


def feed(eng: EmissionsEngine, data: ReadingBatch, lo_s: int, hi_s: int, clock: float) -> tuple[list, list]:
    """Readings with ts in [lo, hi) [s from T0] in 10-s batches, one wall second apart, as live."""
    minutes: list[MinuteAggregate] = []
    hours: list[HourAggregate] = []
    for s in range(lo_s, hi_s, 10):
        part = data.take((data.ts >= T0 + s * NS) & (data.ts < T0 + min(s + 10, hi_s) * NS))
        now = clock + (s - lo_s) / 10
        eng.ingest(part, now)
        out = eng.advance(now)
        minutes += out.minutes
        hours += out.hours
    return minutes, hours


def restart(ledger: list[MinuteAggregate], stored: ReadingBatch, now_s: float) -> EmissionsEngine:
    """A new engine rebuilt as the service does at start-up (no stored hour yet)."""
    eng = make()
    resume = eng.restore_minutes("k", ledger)
    assert resume is not None
    lo, _ = eng.readings_window("k", resume, resume)
    eng.restore_held("k", stored.take((stored.ts >= lo) & (stored.ts < resume)))
    eng.ingest(stored.take(stored.ts >= resume), now_s)
    eng.advance(now_s)  # what the last run could close from the stored data
    eng.restart_arrivals(now_s, now_s)
    return eng


def test_a_run_killed_mid_hour_and_rebuilt_gives_the_hours_of_a_run_without_the_crash() -> None:
    data = plant_data()
    whole, whole_hours = feed(make(), data, 0, N, clock=1000.0)

    crashed = make()
    closed, _ = feed(crashed, data, 0, 2050, clock=1000.0)  # killed 34 min into the first hour
    ledger = closed[:-2]  # the last two minutes were closed but not yet written when it died
    stored = data.take(data.ts < T0 + 2050 * NS)  # every reading it took was committed first
    rebuilt = restart(ledger, stored, now_s=5000.0)
    after, hours = feed(rebuilt, data, 2050, N, clock=5001.0)

    assert [h.to_dict() for h in hours] == [h.to_dict() for h in whole_hours]
    first = hours[0]
    assert first.params["k.co2"].reasons == {"stuck": 300}  # the run froze at 25 min, before the kill
    assert first.params["k.flow"].reasons == {"bad": 30}
    by_start = {m.start_ns: m.to_dict() for m in whole}
    assert all(m.to_dict() == by_start[m.start_ns] for m in after)


def test_restored_data_holds_the_watermark_only_as_long_as_fresh_data_would() -> None:
    data = plant_data()
    crashed = make()
    closed, _ = feed(crashed, data, 0, 600, clock=0.0)
    rebuilt = restart(closed[:-1], data.take(data.ts < T0 + 600 * NS), now_s=100.0)
    assert rebuilt.kilns["k"].closed_until == T0 + 9 * MIN  # re-closed the unwritten minute, no more
    # Only co2 comes back at first: the restored flow and clinker hold the kiln for idle_after_s ...
    rebuilt.ingest(
        data.take((data.signal == CO2) & (data.ts >= T0 + 600 * NS) & (data.ts < T0 + 900 * NS)), 101
    )
    assert rebuilt.advance(105.0).minutes == []
    # ... then their sources count as silent, and the minutes close with their points missing.
    late = rebuilt.advance(111.0).minutes
    assert [m.start_ns for m in late] == [T0 + i * MIN for i in range(9, 14)]
    assert late[-1].params["k.flow"].reasons == {"missing": 60}


def test_restored_data_closes_nothing_while_no_source_delivers() -> None:
    data = plant_data()
    crashed = make()
    closed, _ = feed(crashed, data, 0, 600, clock=0.0)
    rebuilt = restart(closed, data.take(data.ts < T0 + 600 * NS), now_s=100.0)
    until = rebuilt.kilns["k"].closed_until
    assert rebuilt.advance(105.0).minutes == [] and rebuilt.advance(10_000.0).minutes == []
    assert rebuilt.kilns["k"].closed_until == until
    now = rebuilt.signal_now(FLOW)
    assert now is not None and now.ts_ns == T0 + 599 * NS  # the live view shows the last stored value


def test_a_signal_silent_before_the_crash_does_not_hold_the_rebuilt_kiln() -> None:
    data = plant_data()
    silent = (data.signal == CLINKER) & (data.ts >= T0 + 240 * NS)
    data = data.take(~silent)  # clinker's source stopped at 4 min, long before the crash
    crashed = make()
    closed, _ = feed(crashed, data, 0, 600, clock=0.0)
    assert closed[-1].start_ns == T0 + 8 * MIN
    rebuilt = restart(closed[:-3], data.take(data.ts < T0 + 600 * NS), now_s=100.0)
    assert rebuilt.kilns["k"].closed_until == T0 + 9 * MIN
