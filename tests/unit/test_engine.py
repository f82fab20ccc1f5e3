"""The event-time engine on synthetic step functions: WE8 hour validity, holds, gaps, late data."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics import quality as q
from analytics.batch import ReadingBatch
from analytics.emissions import CO2_DENSITY_KG_PER_NM3

from .engine_helpers import HOUR, T0, engine, per_minute, series

FLOW = 397_500.0  # WE8: hourly mean dry normal flow [Nm3/h]
CLINKER = 5000 / 24


def run_hour(co2_minutes: list[float], co2_quality_minutes: list[int], extra_s: int = 120):
    eng, table = engine(lateness_s=0)
    n = 3600 + extra_s
    co2 = np.r_[per_minute(co2_minutes), np.full(extra_s, co2_minutes[-1])]
    qual = np.r_[np.repeat(np.asarray(co2_quality_minutes, np.uint8), 60), np.zeros(extra_s, np.uint8)]
    batch = ReadingBatch.concat(
        [
            series(table, "flow", T0, np.full(n, FLOW)),
            series(table, "co2", T0, co2, qual),
            series(table, "clinker", T0, np.full(n, CLINKER)),
        ]
    )
    eng.ingest(batch)
    return eng.advance()


def test_we8_hour_a_valid_with_ten_calibration_minutes() -> None:
    co2 = [21.8] * 30 + [22.4] * 20 + [0.0] * 10
    qual = [q.GOOD] * 50 + [q.UNCERTAIN | q.CALIBRATION] * 10
    out = run_hour(co2, qual)
    (hour,) = out.hours
    assert hour.valid
    assert_allclose(hour.params["co2_dry"].mean, 22.04, rtol=1e-9)
    assert_allclose(hour.co2_t, 172.019, rtol=5e-5)  # WE8 hour A
    assert_allclose(hour.completeness, 50 / 60)
    assert hour.params["k.co2"].reasons["calibration"] == 600


def test_we8_hour_b_invalid_with_fifteen_invalid_minutes() -> None:
    co2 = [22.0] * 45 + [0.0] * 15
    qual = [q.GOOD] * 45 + [q.BAD | q.FAULT] * 15
    (hour,) = run_hour(co2, qual).hours
    assert not hour.valid
    assert_allclose(hour.completeness, 0.75)
    # invalid minutes are never averaged as zeros
    assert_allclose(hour.params["co2_dry"].mean, 22.0)


def test_exactly_80_percent_is_valid() -> None:
    co2 = [22.0] * 48 + [0.0] * 12
    qual = [q.GOOD] * 48 + [q.UNCERTAIN | q.MAINTENANCE] * 12
    (hour,) = run_hour(co2, qual).hours
    assert hour.valid
    assert hour.completeness == pytest.approx(0.8)


def test_we3_we4_through_the_engine_with_actual_wet_flow() -> None:
    from analytics.engine import EmissionsEngine, EngineParams
    from analytics.signals import KilnSpec, Quantity, SignalInfo, SignalTable

    infos = [
        SignalInfo("k.flow", "p", "k", Quantity.FLOW, "m3/h", "wet", "actual"),
        SignalInfo("k.t", "p", "k", Quantity.TEMPERATURE, "degC"),
        SignalInfo("k.ps", "p", "k", Quantity.STATIC_PRESSURE, "kPa"),
        SignalInfo("k.pb", "p", "k", Quantity.BAROMETRIC_PRESSURE, "kPa"),
        SignalInfo("k.h2o", "p", "k", Quantity.H2O, "vol %", "wet"),
        SignalInfo("k.co2", "p", "k", Quantity.CO2, "vol %", "dry"),
        SignalInfo("k.cli", "p", "k", Quantity.CLINKER_RATE, "t/h"),
    ]
    values = [650_000.0, 120.0, -0.8, 101.0, 11.0, 22.0, CLINKER]
    table = SignalTable(infos)
    eng = EmissionsEngine(table, [KilnSpec.from_table(table, "k", "K", "p")], EngineParams(lateness_s=0))
    n = 180
    # OPC UA reports on change only: one reading per signal, then held on the grid.
    eng.ingest(ReadingBatch.from_columns(range(7), [T0] * 7, values, [0] * 7))
    eng.ingest(ReadingBatch.from_columns(range(7), [T0 + n * 10**9] * 7, values, [0] * 7))
    out = eng.advance()
    assert len(out.minutes) == 3
    m = out.minutes[0]
    assert m.valid
    assert_allclose(m.params["flow_n_dry"].mean, 397_464, rtol=5e-6)  # WE2
    assert_allclose(m.co2_t_per_h, 171.691, rtol=5e-6)  # WE3
    assert_allclose(m.intensity_kg_per_t, 824.12, rtol=5e-6)  # WE4


def test_value_older_than_max_hold_counts_as_missing() -> None:
    eng, table = engine(lateness_s=0, max_hold_s=30, idle_after_s=10)
    eng.ingest(series(table, "flow", T0, np.full(2, FLOW), step_s=1), now_s=0.0)  # then silent
    eng.ingest(series(table, "co2", T0, np.full(120, 22.0)), now_s=20.0)
    eng.ingest(series(table, "clinker", T0, np.full(120, CLINKER)), now_s=20.0)
    out = eng.advance(now_s=20.0)
    first = out.minutes[0].params["flow_n_dry"]
    assert first.n_valid == 32  # t=0 and t=1 readings, the last held until t=31 s (age <= 30 s)
    assert out.minutes[0].params["k.flow"].reasons["missing"] == 28


def test_nan_and_bad_values_are_invalid_not_zero() -> None:
    eng, table = engine(lateness_s=0)
    co2 = np.full(180, 22.0)
    co2[:30] = np.nan
    qual = np.zeros(180, np.uint8)
    qual[:30] = q.BAD
    for b in (
        series(table, "flow", T0, np.full(180, FLOW)),
        series(table, "co2", T0, co2, qual),
        series(table, "clinker", T0, np.full(180, CLINKER)),
    ):
        eng.ingest(b)
    first = eng.advance().minutes[0]
    assert first.params["co2_dry"].n_valid == 30
    assert first.params["co2_dry"].mean == pytest.approx(22.0)
    assert not first.valid  # 50 % of the minute


def test_empty_batch_and_no_data() -> None:
    eng, _ = engine()
    eng.ingest(ReadingBatch.empty())
    out = eng.advance()
    assert out.minutes == [] and out.hours == []
    assert eng.newest_minute("k") is None


@pytest.mark.parametrize("in_memory", [True, False])
def test_late_data_recompute_increments_revision(in_memory: bool) -> None:
    """The hour two hours back is rebuilt from minutes held in full in memory or, beyond the
    engine's ``full_minutes``, from the ledger's minutes, which also give the revisions."""
    eng, table = engine(lateness_s=0, full_minutes=180 if in_memory else 60)
    n = 2 * 3600 + 120
    co2 = np.full(n, 22.0)
    present = np.ones(n, bool)
    present[600:3000] = False  # a 40-minute gap in hour 1
    full = [
        series(table, "flow", T0, np.full(n, FLOW)),
        series(table, "co2", T0, co2),
        series(table, "clinker", T0, np.full(n, CLINKER)),
    ]
    first = ReadingBatch.concat([full[0], full[1].take(present), full[2]])
    eng.ingest(first)
    out = eng.advance()
    h0 = out.hours[0]
    assert not h0.valid and h0.revision == 0
    late = full[1].take(~present)
    eng.ingest(late)
    ((kiln, start, end),) = eng.late_ranges()
    assert kiln == "k" and start == T0 + 600 * 10**9 and end == T0 + 3000 * 10**9
    everything = ReadingBatch.concat([first, late])
    ledger = [] if in_memory else out.minutes
    redo = eng.recompute("k", everything, start, end, ledger)
    assert len(redo.minutes) == 40
    assert {m.revision for m in redo.minutes} == {1}
    (h0b,) = redo.hours
    assert h0b.valid and h0b.revision == 1 and h0b.start_ns == T0
    assert_allclose(h0b.co2_t, FLOW * 0.22 * CO2_DENSITY_KG_PER_NM3 / 1000)


def test_watermark_waits_for_a_lagging_signal_until_it_goes_idle() -> None:
    eng, table = engine(lateness_s=0, idle_after_s=10)
    eng.ingest(series(table, "co2", T0, np.full(100, 22.0)), now_s=95.0)
    eng.ingest(series(table, "flow", T0, np.full(600, FLOW)), now_s=100.0)
    eng.ingest(series(table, "clinker", T0, np.full(600, CLINKER)), now_s=100.0)
    # co2 lags (reached T0 + 99 s) but is alive: only minute 0 may close.
    assert [m.start_ns for m in eng.advance(now_s=105.0).minutes] == [T0]
    # co2 silent for more than idle_after_s of wall time: the others' watermark closes minutes 1-8.
    out = eng.advance(now_s=106.0)
    assert [m.start_ns for m in out.minutes] == [T0 + i * 60 * 10**9 for i in range(1, 9)]
    assert out.minutes[-1].params["k.co2"].reasons["missing"] == 60
    assert HOUR > 0


def test_restored_minutes_complete_the_open_hour_after_a_restart() -> None:
    n = 3600 + 120
    eng, table = engine(lateness_s=0)

    def feed(e, start_s: int, stop_s: int) -> None:
        for name, value in (("flow", FLOW), ("co2", 22.0), ("clinker", CLINKER)):
            e.ingest(series(table, name, T0 + start_s * 10**9, np.full(stop_s - start_s, value)))

    feed(eng, 0, 1800)
    before = eng.advance().minutes
    assert len(before) == 29
    restarted, _ = engine(lateness_s=0)
    restarted.restore_minutes("k", before)
    feed(restarted, 1740, n)  # the new run starts with the minute the old one left open
    out = restarted.advance()
    (hour,) = out.hours
    assert hour.valid and hour.completeness == pytest.approx(1.0)
