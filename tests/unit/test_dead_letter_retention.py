"""Dead letters keep the first 4 KiB of a payload with its length and SHA-256, and are pruned by
age and to a byte budget, the oldest first (real SQLite store, real retention pass)."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from analytics.batch import ReadingBatch
from collector.store.dead_letters import HEAD_BYTES, DeadLetter
from collector.store.local import LocalStore
from collector.store.reader import StoreReader
from collector.store.retention import RetentionPolicy, dead_letter_bytes, prune_once

NAMES = ("k.co2",)
DAY_NS = 86_400 * 10**9


async def _run_here(fn: Callable[..., Any], *args: object) -> Any:
    return fn(*args)


def test_a_large_payload_is_cut_to_its_head_with_length_and_hash(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "kw.sqlite3", NAMES)
    big = bytes(range(256)) * 4096  # 1 MiB
    store.write(
        ReadingBatch.empty(),
        [DeadLetter("mqtt:cems", "not_json", big, "k.co2"), DeadLetter("x", "y", b"small")],
    )
    store.close()
    cut, small = StoreReader(tmp_path / "kw.sqlite3").dead_letters()
    assert cut.payload == big[:HEAD_BYTES]
    assert cut.size == len(big) and cut.sha256 == hashlib.sha256(big).hexdigest()
    assert (
        small.payload == b"small" and small.size == 5 and small.sha256 == hashlib.sha256(b"small").hexdigest()
    )


def test_a_store_of_an_earlier_version_has_its_dead_letters_cut(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE dead_letter (id INTEGER PRIMARY KEY, received_ns INTEGER NOT NULL,"
        " source TEXT NOT NULL, signal TEXT, reason TEXT NOT NULL, payload BLOB)"
    )
    big = b"x" * 100_000
    old.execute(
        "INSERT INTO dead_letter(received_ns, source, reason, payload) VALUES (1, 's', 'r', ?)", (big,)
    )
    old.execute("INSERT INTO dead_letter(received_ns, source, reason, payload) VALUES (2, 's', 'r', x'01')")
    old.commit()
    old.close()
    LocalStore(path, NAMES).close()
    cut, small = StoreReader(path).dead_letters()
    assert (cut.payload, cut.size, cut.sha256) == (big[:HEAD_BYTES], 100_000, hashlib.sha256(big).hexdigest())
    assert (small.payload, small.size) == (b"\x01", 1)


def test_dead_letters_are_pruned_by_age_and_to_the_budget_oldest_first(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "kw.sqlite3", NAMES)
    now = time.time_ns()
    old = [DeadLetter("s", f"old {i}", b"o" * 100, None, now - 40 * DAY_NS + i) for i in range(10)]
    recent = [DeadLetter("s", f"new {i:03d}", b"n" * 3000, None, now - DAY_NS + i) for i in range(100)]
    store.write(ReadingBatch.empty(), old + recent)
    policy = RetentionPolicy(dead_letter_days=30, dead_letter_max_bytes=100_000, chunk_rows=7)
    deleted = asyncio.run(prune_once(_run_here, store.connection, policy))
    kept = StoreReader(store.path).dead_letters()
    # each recent row costs 3000 + 7 + 1 + 64 bytes: 32 of them fit in 100 000
    assert [d.reason for d in kept] == [f"new {i:03d}" for i in range(68, 100)]
    assert deleted == 10 + 68
    assert dead_letter_bytes(store.connection) <= 100_000
    assert asyncio.run(prune_once(_run_here, store.connection, policy)) == 0
    store.close()
