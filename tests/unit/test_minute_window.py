"""The engine's in-memory minutes: the newest in full, older ones as headlines, bounded."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.aggregates import MinuteAggregate, ParameterStats
from analytics.batch import ReadingBatch
from analytics.minute_window import MinuteWindow

from .engine_helpers import T0, engine, series

M = 60 * 10**9


def _minute(i: int, co2: float = 170.0, revision: int = 0) -> MinuteAggregate:
    params = {"k.co2": ParameterStats(22.0, 60, 60), "k.flow": ParameterStats(4e5, 60, 60)}
    return MinuteAggregate("k", "p", T0 + i * M, co2, 210.0, co2 / 0.21, True, params, revision)


def test_older_minutes_are_kept_as_headlines_up_to_the_limit() -> None:
    window = MinuteWindow(full=60, keep=90)
    for i in range(100):
        window.append([_minute(i)])
        window.trim()
    held = window.since(0)
    assert [m.start_ns for m in held] == [T0 + i * M for i in range(10, 100)]
    assert all(m.params == {} for m in held[:30])
    assert all(set(m.params) == {"k.co2", "k.flow"} for m in held[30:])
    assert [m.co2_t_per_h for m in held] == [170.0] * 90  # the headline is whole
    assert window.newest() is held[-1]
    assert len(window.full_between(T0, T0 + 200 * M)) == 60


def test_revisions_count_up_from_memory_or_the_ledger() -> None:
    window = MinuteWindow(full=60, keep=90)
    window.append(_minute(i) for i in range(100))
    window.trim()

    in_full, as_headline, forgotten = _minute(95, 180.0), _minute(20, 181.0), _minute(5, 182.0)
    window.revise(in_full)
    window.revise(as_headline)
    window.revise(forgotten, stored=_minute(5, revision=3))
    assert (in_full.revision, as_headline.revision, forgotten.revision) == (1, 1, 4)
    held = {m.start_ns: m for m in window.since(0)}
    assert held[T0 + 95 * M] is in_full
    assert held[T0 + 20 * M].co2_t_per_h == 181.0 and held[T0 + 20 * M].params == {}
    assert T0 + 5 * M not in held and len(held) == 90


def test_restored_minutes_come_in_time_order() -> None:
    window = MinuteWindow(full=60, keep=60)
    window.restore([_minute(3), _minute(1), _minute(2)])
    assert [m.start_ns for m in window.since(0)] == [T0 + M, T0 + 2 * M, T0 + 3 * M]


@pytest.mark.parametrize(("full", "keep", "message"), [(59, 360, "needs 60"), (120, 100, "below")])
def test_a_window_too_small_for_an_hour_is_refused(full: int, keep: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MinuteWindow(full, keep)


def test_the_engine_holds_an_hour_in_full_and_six_as_a_trend() -> None:
    eng, table = engine(lateness_s=0)
    n = 7 * 3600 + 120
    values = {"flow": 4e5, "co2": 22.0, "clinker": 210.0}
    eng.ingest(ReadingBatch.concat([series(table, k, T0, np.full(n, v)) for k, v in values.items()]))
    out = eng.advance_all()
    assert len(out.hours) == 7
    held = eng.recent_minutes("k", 0)
    assert len(held) == 360 and held[-1] is eng.newest_minute("k")
    assert sum(1 for m in held if m.params) == 60
    assert held[0].start_ns == held[-1].start_ns - 359 * M
    assert all(m.co2_t_per_h is not None for m in held)
