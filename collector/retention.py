"""Local retention: raw readings for days, minute aggregates for a year, hourly ones for ever.

Pruning deletes in small chunks, each its own short statement on the store's write thread,
so pipeline commits interleave with it and ingestion never waits for more than one chunk.
Every chunk is a range of one key (a signal, a kiln) in primary-key order, found through the
index: no statement scans the table.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

NS_PER_DAY = 86_400 * 10**9

#: table -> key column of its primary key (the other column is ``ts``); hourly is kept for ever.
_PRUNED = {"reading": "signal", "minute": "kiln"}


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    raw_days: float = 7.0
    minute_days: float = 366.0
    chunk_rows: int = 2000
    every_s: float = 600.0


def prune_chunk(conn: sqlite3.Connection, table: str, key: Any, cutoff_ns: int, chunk_rows: int) -> int:
    """Delete up to ``chunk_rows`` of ``table``'s rows of ``key`` older than ``cutoff_ns``."""
    col = _PRUNED[table]
    row = conn.execute(
        f"SELECT ts FROM {table} WHERE {col} = ? AND ts < ? ORDER BY ts LIMIT 1 OFFSET ?",
        (key, cutoff_ns, chunk_rows - 1),
    ).fetchone()
    bound = cutoff_ns if row is None else row[0] + 1
    return conn.execute(f"DELETE FROM {table} WHERE {col} = ? AND ts < ?", (key, bound)).rowcount


def keys(conn: sqlite3.Connection, table: str) -> list[Any]:
    """Distinct key values of ``table``, each found by an index seek (a skip scan)."""
    col = _PRUNED[table]
    found: list[Any] = []
    row = conn.execute(f"SELECT min({col}) FROM {table}").fetchone()
    while row is not None and row[0] is not None:
        found.append(row[0])
        row = conn.execute(f"SELECT min({col}) FROM {table} WHERE {col} > ?", (row[0],)).fetchone()
    return found


RunOnStore = Callable[..., Awaitable[Any]]


async def prune_once(run_on_store: RunOnStore, conn: sqlite3.Connection, policy: RetentionPolicy) -> int:
    """One pass over readings and minutes; returns the number of rows deleted."""
    now = time.time_ns()
    cutoffs = {
        "reading": now - int(policy.raw_days * NS_PER_DAY),
        "minute": now - int(policy.minute_days * NS_PER_DAY),
    }
    deleted = 0
    for table, cutoff in cutoffs.items():
        for key in await run_on_store(keys, conn, table):
            while True:
                n = await run_on_store(prune_chunk, conn, table, key, cutoff, policy.chunk_rows)
                deleted += n
                if n < policy.chunk_rows:
                    break
    return deleted


async def run_retention(run_on_store: RunOnStore, conn: sqlite3.Connection, policy: RetentionPolicy) -> None:
    """Prune every ``policy.every_s`` until cancelled. ``run_on_store(fn, *args)`` runs ``fn`` on
    the thread that owns ``conn`` (the pipeline's ``on_store_thread``)."""
    while True:
        started = time.monotonic()
        try:
            deleted = await prune_once(run_on_store, conn, policy)
        except sqlite3.Error:
            log.exception("pruning the local store failed; trying again in %.0f s", policy.every_s)
        else:
            if deleted:
                log.info("retention: deleted %d old rows in %.1f s", deleted, time.monotonic() - started)
        await asyncio.sleep(policy.every_s)
