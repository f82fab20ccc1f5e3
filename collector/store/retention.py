"""Local retention: raw readings for days, minute aggregates (and the conflicts recorded beside
the readings) for a year, hourly aggregates for ever; dead letters for days and within a byte
budget, the oldest first.

Pruning deletes in small chunks, each its own short statement on the store's write thread,
so pipeline commits interleave with it and ingestion never waits for more than one chunk.
Every chunk is a range of one key (a signal, a kiln) in primary-key order, found through the
index: no statement scans the table.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .dead_letters import ROW_COST_SQL

log = logging.getLogger(__name__)

NS_PER_DAY = 86_400 * 10**9

#: table -> key column of its (primary or ``conflict_signal_ts``) index, the other column being
#: ``ts``; hourly is kept for ever.
_PRUNED = {"reading": "signal", "minute": "kiln", "conflict": "signal"}


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    raw_days: float = 7.0
    minute_days: float = 366.0
    dead_letter_days: float = 30.0
    dead_letter_max_bytes: int = 64 * 1024 * 1024
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


def prune_old_dead_letters(conn: sqlite3.Connection, cutoff_ns: int, chunk_rows: int) -> int:
    """Delete up to ``chunk_rows`` of the oldest dead letters received before ``cutoff_ns``."""
    return conn.execute(
        "DELETE FROM dead_letter WHERE id IN (SELECT id FROM dead_letter WHERE received_ns < ?"
        " ORDER BY received_ns, id LIMIT ?)",
        (cutoff_ns, chunk_rows),
    ).rowcount


def dead_letter_bytes(conn: sqlite3.Connection) -> int:
    """What the dead letters cost against their budget (payload, reason, source, 64 bytes a row)."""
    return int(conn.execute(f"SELECT coalesce(sum({ROW_COST_SQL}), 0) FROM dead_letter").fetchone()[0])


def prune_dead_letters_over(conn: sqlite3.Connection, excess: int, chunk_rows: int) -> tuple[int, int]:
    """Delete the oldest dead letters, at most ``chunk_rows``, until ``excess`` bytes are freed;
    returns (rows, bytes) deleted."""
    rows = conn.execute(
        f"SELECT id, {ROW_COST_SQL} FROM dead_letter ORDER BY received_ns, id LIMIT ?", (chunk_rows,)
    ).fetchall()
    doomed, freed = [], 0
    for row_id, cost in rows:
        if freed >= excess:
            break
        doomed.append(row_id)
        freed += cost
    conn.execute(
        "DELETE FROM dead_letter WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(doomed),)
    )
    return len(doomed), freed


RunOnStore = Callable[..., Awaitable[Any]]


async def prune_once(run_on_store: RunOnStore, conn: sqlite3.Connection, policy: RetentionPolicy) -> int:
    """One pass over readings, minutes, conflicts and dead letters; returns the rows deleted."""
    now = time.time_ns()
    cutoffs = {
        "reading": now - int(policy.raw_days * NS_PER_DAY),
        "minute": now - int(policy.minute_days * NS_PER_DAY),
        "conflict": now - int(policy.minute_days * NS_PER_DAY),
    }
    deleted = 0
    for table, cutoff in cutoffs.items():
        for key in await run_on_store(keys, conn, table):
            while True:
                n = await run_on_store(prune_chunk, conn, table, key, cutoff, policy.chunk_rows)
                deleted += n
                if n < policy.chunk_rows:
                    break
    return deleted + await _prune_dead_letters(run_on_store, conn, policy, now)


async def _prune_dead_letters(
    run_on_store: RunOnStore, conn: sqlite3.Connection, policy: RetentionPolicy, now: int
) -> int:
    cutoff = now - int(policy.dead_letter_days * NS_PER_DAY)
    deleted = 0
    while (n := await run_on_store(prune_old_dead_letters, conn, cutoff, policy.chunk_rows)) > 0:
        deleted += n
    excess = await run_on_store(dead_letter_bytes, conn) - policy.dead_letter_max_bytes
    while excess > 0:
        n, freed = await run_on_store(prune_dead_letters_over, conn, excess, policy.chunk_rows)
        if not n:
            break
        deleted, excess = deleted + n, excess - freed
    if deleted:
        log.info(
            "retention: %d dead letters deleted (older than %g days or beyond %d bytes)",
            deleted,
            policy.dead_letter_days,
            policy.dead_letter_max_bytes,
        )
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
