"""Local retention (the embedded default, no InfluxDB): raw days, minutes a year, hours for ever."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from analytics.aggregates import HourAggregate, MinuteAggregate
from analytics.batch import NS_PER_S, ReadingBatch
from collector.store.local import LocalStore
from collector.store.retention import (
    NS_PER_DAY,
    RetentionPolicy,
    keys,
    prune_chunk,
    prune_once,
    run_retention,
)

MINUTE_NS = 60 * NS_PER_S


def _filled_store(path: Path, now: int) -> LocalStore:
    store = LocalStore(path, ["s1", "s2", "s3"])
    ts = now - 300 * NS_PER_S - np.arange(0, 10 * NS_PER_DAY, 600 * NS_PER_S)  # every 10 min, 10 days
    n = len(ts)
    store.write(
        ReadingBatch.from_columns(np.repeat([0, 1, 2], n), np.tile(ts, 3), np.ones(3 * n), np.zeros(3 * n))
    )
    starts = [
        now - d * NS_PER_DAY - 3600 * NS_PER_S for d in range(0, 400, 2)
    ]  # 400 days of minutes, and of hours
    minutes = [MinuteAggregate(k, "p", t, 1.0, 2.0, 500.0, True, {}) for k in ("k1", "k2") for t in starts]
    hours = [HourAggregate(k, "p", t, 1.0, 2.0, 500.0, True, 1.0, {}) for k in ("k1", "k2") for t in starts]
    store.write_aggregates(minutes, hours)
    return store


def _count(store: LocalStore, sql: str, *args: Any) -> int:
    return int(store.connection.execute(sql, args).fetchone()[0])


async def test_prunes_old_rows_in_small_chunks_and_keeps_hours(tmp_path: Path) -> None:
    now = time.time_ns()
    store = _filled_store(tmp_path / "kw.sqlite3", now)
    policy = RetentionPolicy(raw_days=7, minute_days=366, chunk_rows=100)
    raw_cut, minute_cut = now - 7 * NS_PER_DAY, now - 366 * NS_PER_DAY
    old_raw = _count(store, "SELECT count(*) FROM reading WHERE ts < ?", raw_cut)
    kept_raw = _count(store, "SELECT count(*) FROM reading WHERE ts >= ?", raw_cut)
    old_minutes = _count(store, "SELECT count(*) FROM minute WHERE ts < ?", minute_cut)
    n_hours = _count(store, "SELECT count(*) FROM hourly")
    assert old_raw > 1000 and old_minutes > 10
    assert keys(store.connection, "reading") == [1, 2, 3] and keys(store.connection, "minute") == ["k1", "k2"]

    executor = ThreadPoolExecutor(1)
    calls: list[tuple[str, int]] = []

    async def on_store_thread(fn: Any, *args: Any) -> Any:
        result = await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        if fn is prune_chunk:
            calls.append((args[1], result))
        return result

    deleted = await prune_once(on_store_thread, store.connection, policy)

    assert deleted == old_raw + old_minutes
    assert _count(store, "SELECT count(*) FROM reading WHERE ts < ?", raw_cut) == 0
    assert _count(store, "SELECT count(*) FROM reading") == kept_raw
    assert _count(store, "SELECT count(*) FROM minute WHERE ts < ?", minute_cut) == 0
    assert _count(store, "SELECT count(*) FROM hourly") == n_hours  # hourly aggregates for ever
    # Small chunks, each its own job on the store thread, so pipeline commits run in between.
    assert all(n <= policy.chunk_rows for _, n in calls)
    assert len([c for c in calls if c[0] == "reading"]) >= old_raw / policy.chunk_rows
    assert await prune_once(on_store_thread, store.connection, policy) == 0

    task = asyncio.create_task(run_retention(on_store_thread, store.connection, policy))
    store.write(ReadingBatch.from_columns([0], [raw_cut - NS_PER_S], [1.0], [0]))  # late, and already too old
    await asyncio.sleep(0.3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    executor.shutdown()
    assert _count(store, "SELECT count(*) FROM reading WHERE ts < ?", raw_cut) == 0
