"""The running minute: the open minute from the points so far, by the kernels that close minutes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analytics import tables
from analytics.batch import ReadingBatch
from analytics.engine import EmissionsEngine, EngineParams
from analytics.minutes import MINUTE_NS
from analytics.rules import KilnRules
from analytics.running_minute import RunningMinute
from analytics.signals import SignalTable
from api.context import ApiContext
from api.events import Broadcaster
from api.live import live_json
from api.models import LiveResponse
from collector.health import HealthRegistry
from collector.metrics import Metrics
from collector.store.reader import StoreReader
from kilnwatch.running_minutes import RunningMinutes

from .engine_helpers import T0, engine, series

S = 10**9


def readings(table: SignalTable, start_s: int, n: int, seed: int = 1) -> ReadingBatch:
    """n seconds of every signal from T0 + start_s, values that vary (the means are not trivial);
    the CO2 analyser 0.4 s after the others, as a second source would be."""
    rng = np.random.default_rng(seed)
    t = T0 + start_s * S
    return ReadingBatch.concat(
        [
            series(table, "flow", t, 397_500.0 + rng.normal(0, 5_000, n)),
            series(table, "co2", t + 400_000_000, 22.0 + rng.normal(0, 0.8, n)),
            series(table, "clinker", t, 208.0 + rng.normal(0, 6, n)),
        ]
    )


def headline(m: object) -> tuple[object, ...]:
    return (m.co2_t_per_h, m.clinker_t_per_h, m.intensity_kg_per_t, m.valid)  # type: ignore[attr-defined]


def test_a_full_running_minute_has_the_numbers_of_the_closed_minute() -> None:
    eng, table = engine()
    data = readings(table, 0, 120)
    eng.ingest(data.take(data.ts < T0 + 60 * S))
    running = eng.running_minute("k")
    assert running is not None
    assert (running.start_ns, running.through_ns, running.points) == (T0, T0 + 59 * S, 60)
    assert eng.newest_minute("k") is None  # not a minute aggregate: nothing was closed or held

    eng.ingest(data.take(data.ts >= T0 + 60 * S))
    closed = eng.advance().minutes[0]
    assert closed.start_ns == T0
    assert headline(running) == headline(closed)
    assert running.co2_t_per_h is not None and running.valid


def test_a_partial_minute_is_its_points_so_far_and_leaves_the_engine_as_it_was() -> None:
    eng, table = engine()
    other, _ = engine()
    data = readings(table, 0, 200)
    first = data.take(data.ts < T0 + 80 * S)
    for e in (eng, other):
        e.ingest(first)
    # the CO2 analyser reported 12:01:19.4, the others 12:01:19: every signal is in up to 12:01:19
    running = eng.running_minute("k")
    assert running is not None
    assert (running.start_ns, running.through_ns, running.points) == (T0 + MINUTE_NS, T0 + 79 * S, 20)
    # the same numbers from those points alone (and the values in force when the minute began)
    alone, _ = engine()
    alone.ingest(data.take((data.ts >= T0 + 59 * S) & (data.ts < T0 + 80 * S)))
    assert headline(alone.running_minute("k")) == headline(running)  # type: ignore[arg-type]

    # computing running minutes changes nothing of what closes
    rest = data.take(data.ts >= T0 + 80 * S)
    for e in (eng, other):
        e.ingest(rest)
    assert [headline(m) for m in eng.advance_all().minutes] == [
        headline(m) for m in other.advance_all().minutes
    ]


def test_the_running_minute_reaches_only_as_far_as_every_active_signal() -> None:
    eng, table = engine(idle_after_s=10)
    eng.ingest(readings(table, 0, 30), now_s=100.0)
    eng.ingest(series(table, "flow", T0 + 30 * S, np.full(10, 397_500.0)), now_s=101.0)
    running = eng.running_minute("k", now_s=102.0)
    assert running is not None and running.through_ns == T0 + 29 * S  # co2 and clinker hold it
    assert eng.complete_through(102.0) == {"k": T0 + 29 * S}
    # co2 and clinker went quiet: after idle_after_s only the flow counts
    running = eng.running_minute("k", now_s=110.5)
    assert running is not None and running.through_ns == T0 + 39 * S
    # nothing active at all: no running minute
    assert eng.running_minute("k", now_s=500.0) is None
    assert eng.complete_through(500.0) == {"k": None}


def test_no_running_minute_without_data_or_once_its_minute_is_closed() -> None:
    eng, table = engine(lateness_s=0)
    assert eng.running_minute("k") is None
    eng.ingest(readings(table, 0, 60))
    assert eng.running_minute("k") is not None
    eng.advance()  # lateness 0: the minute of the newest point is still open, the one before closed
    running = eng.running_minute("k")
    assert running is not None and running.start_ns == T0
    eng.ingest(readings(table, 60, 1))
    eng.advance()
    running = eng.running_minute("k")
    assert running is not None and (running.start_ns, running.points) == (T0 + MINUTE_NS, 1)


@pytest.mark.parametrize("minutes_open", [1, 3])
def test_the_stuck_check_carries_over_the_minutes_not_yet_closed(minutes_open: int) -> None:
    """A frozen CO2 value is stuck after 120 s: the running minute sees it as closing will."""
    base, table = engine()
    rules = {"k": KilnRules(stuck_signals=frozenset({table.index("k.co2")}), stuck_s=120.0)}
    params = EngineParams(lateness_s=60.0 * minutes_open, rules=rules)
    eng = EmissionsEngine(table, [s.spec for s in base.kilns.values()], params)
    n = 240 + 60 * minutes_open
    batch = ReadingBatch.concat(
        [
            series(table, "flow", T0, np.full(n, 397_500.0)),
            series(table, "co2", T0, np.full(n, 22.0)),  # frozen from the start
            series(table, "clinker", T0, 208.0 + np.random.default_rng(2).normal(0, 6, n)),
        ]
    )
    eng.ingest(batch.take(batch.ts < T0 + 180 * S))
    eng.advance()
    running = eng.running_minute("k")
    assert running is not None and running.start_ns == T0 + 2 * MINUTE_NS and running.points == 60
    eng.ingest(batch.take(batch.ts >= T0 + 180 * S))
    closed = {m.start_ns: m for m in eng.advance_all().minutes}
    assert headline(running) == headline(closed[T0 + 2 * MINUTE_NS])
    assert running.valid is False  # every CO2 point of that minute is stuck


def test_running_minutes_are_computed_once_per_new_second_and_shown_in_live(tmp_path: Path) -> None:
    eng, table = engine()
    events = Broadcaster()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    events._subscribers.add(queue)  # what a stream subscription holds
    running = RunningMinutes(eng, events, min_interval_s=0.5)
    data = readings(table, 0, 40)
    eng.ingest(data.take(data.ts < T0 + 20 * S), now_s=10.0)
    assert running.update(10.0) == 1
    assert running.update(10.6) == 0  # no new second complete: nothing computed, nothing sent
    eng.ingest(data.take((data.ts >= T0 + 20 * S) & (data.ts < T0 + 21 * S)), now_s=10.7)
    assert running.update(10.7) == 1
    eng.ingest(data.take((data.ts >= T0 + 21 * S) & (data.ts < T0 + 22 * S)), now_s=10.8)
    assert running.update(10.8) == 0  # within min_interval_s of the last one
    assert running.update(11.2) == 1
    sent = [queue.get_nowait() for _ in range(queue.qsize())]
    assert [(e["type"], e["kiln"], e["row"]["through"]) for e in sent] == [
        ("running_minute", "k", "2026-01-01T00:00:19Z"),
        ("running_minute", "k", "2026-01-01T00:00:20Z"),
        ("running_minute", "k", "2026-01-01T00:00:21Z"),
    ]

    ctx = ApiContext(
        table=table,
        kilns=[s.spec for s in eng.kilns.values()],
        live=eng,
        history=StoreReader(tmp_path / "none.sqlite3"),
        readiness=HealthRegistry(),
        registry=Metrics().registry,
        provisional=running,
    )
    body = json.loads(live_json(ctx, ctx.kilns[0]))
    assert body["time"] is None  # no closed minute yet
    row = body["running_minute"]
    assert row == sent[-1]["row"]
    assert LiveResponse.model_validate(body).model_dump(mode="json")["running_minute"] == row
    assert list(row) == tables.RUNNING_MINUTE.names
    assert row["provisional"] is True and row["minute"] == "2026-01-01T00:00:00Z" and row["points"] == 22
    assert row["co2_t_per_h"] == eng.running_minute("k", 11.2).co2_t_per_h  # type: ignore[union-attr]

    # every signal went quiet: no running minute any more
    running.update(100.0)
    assert json.loads(live_json(ctx, ctx.kilns[0]))["running_minute"] is None


class _Fleet:
    """Three kilns that each have the one engine kiln's running minute (the scheduling alone is
    under test)."""

    def __init__(self, eng: EmissionsEngine) -> None:
        self.eng = eng

    def complete_through(self, now_s: float | None = None) -> dict[str, int | None]:
        through = self.eng.complete_through(now_s)["k"]
        return {"a": through, "b": through, "c": through}

    def running_minute(self, kiln_id: str, now_s: float | None = None) -> RunningMinute | None:
        running = self.eng.running_minute("k", now_s)
        return None if running is None else dataclasses.replace(running, kiln=kiln_id)


def test_a_pass_stops_at_its_budget_and_the_longest_waiting_kilns_go_first() -> None:
    eng, table = engine()
    events = Broadcaster()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    events._subscribers.add(queue)
    running = RunningMinutes(_Fleet(eng), events, min_interval_s=0.0, budget_s=0.0)  # type: ignore[arg-type]
    data = readings(table, 0, 40)
    order = []
    for second in range(20, 26):  # a new second each pass; a budget of nothing: one kiln per pass
        eng.ingest(data.take(data.ts < T0 + second * S), now_s=float(second))
        assert running.update(float(second)) == 1
        order.append(queue.get_nowait()["kiln"])
    assert order == ["a", "b", "c", "a", "b", "c"]  # none is left behind by the others
    assert running.row("c") is not None

    unbounded = RunningMinutes(_Fleet(eng), events, min_interval_s=0.0)  # type: ignore[arg-type]
    assert unbounded.update(26.0) == 3  # three small kilns fit in the default budget
