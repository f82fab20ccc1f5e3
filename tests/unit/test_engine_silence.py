"""Closing by the wall clock when a kiln is silent, and the engine's bounded work per call."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.batch import ReadingBatch
from analytics.engine import EmissionsEngine
from analytics.signals import SignalTable

from .engine_helpers import HOUR, T0, engine, series

S = 10**9
MIN = 60 * S
FLOW, CO2, CLINKER = 397_500.0, 22.0, 5000 / 24


def feed(
    eng: EmissionsEngine,
    table: SignalTable,
    start_s: int,
    stop_s: int,
    now_s: float | None = None,
    only: tuple[str, ...] = (),
) -> None:
    values = {"flow": FLOW, "co2": CO2, "clinker": CLINKER}
    for name in only or tuple(values):
        n = stop_s - start_s
        eng.ingest(series(table, name, T0 + start_s * S, np.full(n, values[name])), now_s=now_s)


def silent_engine() -> tuple[EmissionsEngine, SignalTable]:
    """Ten minutes of data that arrived at now_s = 0, their minutes closed by event time."""
    eng, table = engine(lateness_s=10, idle_after_s=10, max_hold_s=5, silent_grace_s=60)
    feed(eng, table, 0, 600, now_s=0.0)
    closed = eng.advance(0.0, wall_ns=T0 + 600 * S).minutes
    assert [m.start_ns for m in closed] == [T0 + i * MIN for i in range(9)]  # 599 s - 10 s
    return eng, table


def test_a_silent_kiln_closes_minutes_by_the_clock_up_to_end_plus_lateness_plus_grace() -> None:
    eng, _ = silent_engine()
    wall = T0 + 30 * MIN + 5 * S
    # Still within idle_after_s of the last arrival: the kiln is not silent yet.
    assert eng.advance(9.0, wall_ns=wall).minutes == []
    out = eng.advance_all(11.0, wall_ns=wall)
    # Closed: every minute whose end + 10 s + 60 s <= wall, i.e. up to the one ending at 28:00.
    assert [m.start_ns for m in out.minutes] == [T0 + i * MIN for i in range(9, 28)]
    assert out.hours == []
    assert out.minutes[0].params["k.co2"].reasons.get("missing", 0) == 0  # minute 9 still had its data
    assert all(m.params["k.co2"].reasons["missing"] == 60 and not m.valid for m in out.minutes[2:])
    # Never beyond the wall clock: a second later nothing more is due.
    assert eng.advance_all(12.0, wall_ns=wall + S).minutes == []


def test_the_hour_closes_invalid_then_late_data_revises_it() -> None:
    eng, table = silent_engine()
    out = eng.advance_all(20.0, wall_ns=T0 + HOUR + 70 * S)
    (hour,) = out.hours
    assert hour.start_ns == T0 and not hour.valid and hour.revision == 0
    assert hour.completeness == pytest.approx(605 / 3600)  # 600 s of data, the last value held 5 s
    assert hour.params["k.flow"].reasons["missing"] == 3600 - 605
    # The rest of the hour arrives late (a broker redelivering its queue).
    values = (("flow", FLOW), ("co2", CO2), ("clinker", CLINKER))
    rest = [series(table, n, T0 + 600 * S, np.full(3000, v)) for n, v in values]
    eng.ingest(ReadingBatch.concat(rest), now_s=30.0)
    ((kiln, start, end),) = eng.late_ranges()
    first = series(table, "flow", T0, np.full(600, FLOW))  # the stored readings, as the service reads them
    stored = ReadingBatch.concat([*rest, first, series(table, "co2", T0, np.full(600, CO2)),
                                  series(table, "clinker", T0, np.full(600, CLINKER))])  # fmt: skip
    redo = eng.recompute(kiln, stored, start, end)
    (revised,) = redo.hours
    assert revised.valid and revised.revision == 1 and revised.completeness == pytest.approx(1.0)


def test_points_of_a_disconnected_source_are_comm_loss_not_missing() -> None:
    eng, table = silent_engine()
    down = np.zeros(len(table), dtype=bool)
    down[table.index("k.co2")] = True
    out = eng.advance_all(20.0, wall_ns=T0 + HOUR + 70 * S, comm_loss=down)
    (hour,) = out.hours
    co2, flow = hour.params["k.co2"].reasons, hour.params["k.flow"].reasons
    # comm_loss from just after the newest reading: its value is no longer held
    assert co2["comm_loss"] == 3000 and co2.get("missing", 0) == 0
    assert flow["missing"] == 3600 - 605 and flow.get("comm_loss", 0) == 0


def test_the_clock_never_closes_what_event_time_has_not_reached_the_wall_clock() -> None:
    """A replay running ahead of the wall clock: the clock rule closes nothing beyond wall time."""
    eng, _ = silent_engine()
    assert eng.advance_all(20.0, wall_ns=T0 + 5 * MIN).minutes == []


def test_an_active_signal_keeps_closing_by_event_time() -> None:
    eng, table = silent_engine()
    feed(eng, table, 600, 900, now_s=15.0, only=("flow",))  # a lagging replay of the flow only
    out = eng.advance_all(20.0, wall_ns=T0 + 5 * HOUR)
    assert out.minutes[-1].start_ns == T0 + 13 * MIN  # up to 899 s - 10 s, not up to the clock


def test_sources_get_idle_after_s_from_start_up_before_silence_counts() -> None:
    eng, table = engine(lateness_s=10, idle_after_s=10, max_hold_s=5, silent_grace_s=60)
    feed(eng, table, 0, 600, now_s=0.0)
    wall = T0 + 30 * MIN
    assert eng.advance_all(100.0, wall_ns=wall).minutes == []  # the first call: watching from now on
    assert eng.advance_all(109.0, wall_ns=wall).minutes == []
    assert len(eng.advance_all(110.0, wall_ns=wall).minutes) == 28


def test_advance_closes_a_bounded_number_of_minutes_per_call() -> None:
    eng, table = engine(lateness_s=0, max_minutes_per_pass=25)
    reference, _ = engine(lateness_s=0)
    for e in (eng, reference):
        feed(e, table, 0, 5 * 3600 + 60)
    calls = []
    while True:
        out = eng.advance()
        calls.append(out)
        if not out.more:
            break
    assert max(len(c.minutes) for c in calls) == 25 and len(calls) == 12  # 300 minutes
    got = [m.co2_t_per_h for c in calls for m in c.minutes]
    want = reference.advance_all().minutes
    assert len(reference.advance().minutes) == 0
    assert got == [m.co2_t_per_h for m in want]
    assert [h.start_ns for c in calls for h in c.hours] == [T0 + i * HOUR for i in range(5)]


def test_recomputation_goes_an_hour_at_a_time_and_rebuilds_each_hour_once() -> None:
    eng, table = engine(lateness_s=0)
    n = 4 * 3600 + 60
    full = ReadingBatch.concat(
        [series(table, k, T0, np.full(n, v)) for k, v in (("flow", FLOW), ("co2", CO2), ("clinker", CLINKER))]
    )
    gap = (full.ts >= T0 + 1200 * S) & (full.ts < T0 + 3 * 3600 * S) & (full.signal == table.index("k.co2"))
    eng.ingest(full.take(~gap))
    first = eng.advance_all()
    assert [h.valid for h in first.hours] == [False, False, False, True]
    eng.ingest(full.take(gap))
    ((kiln, start, end),) = eng.late_ranges()
    job = eng.recomputation(kiln, start, end)
    slices, hours = [], []
    while not job.done:
        lo, hi = job.readings_window()
        minutes = job.compute(full.take((full.ts >= lo) & (full.ts < hi)))
        slices.append(len(minutes))
        hours += eng.apply_recomputed(job, minutes, first.minutes).hours  # the ledger's minutes
    assert slices == [40, 60, 60]
    assert [(h.start_ns, h.revision, h.valid) for h in hours] == [(T0 + i * HOUR, 1, True) for i in range(3)]


def test_late_minutes_apart_are_separate_ranges_those_that_meet_or_share_an_hour_one() -> None:
    eng, table = engine(lateness_s=0)
    day = 86_400
    for name, value in (("flow", FLOW), ("co2", CO2), ("clinker", CLINKER)):
        eng.ingest(series(table, name, T0, np.full(2 * day // 30, value), step_s=30))
    eng.advance_all()
    late_s = [10, 20 * 60 + 5, day + 59 * 60 + 30, day + 60 * 60 + 10, day + 3 * 3600]
    eng.ingest(
        ReadingBatch.from_columns(
            [table.index("k.co2")] * 5, [T0 + t * S for t in late_s], [CO2] * 5, [0] * 5
        )
    )
    assert eng.late_ranges() == [
        ("k", T0, T0 + 21 * MIN),  # one hour: rebuilt once
        ("k", T0 + day * S + 59 * MIN, T0 + day * S + 61 * MIN),  # minutes that meet across an hour
        ("k", T0 + day * S + 3 * HOUR, T0 + day * S + 3 * HOUR + MIN),  # the day between is not redone
    ]
    assert eng.late_ranges() == []
