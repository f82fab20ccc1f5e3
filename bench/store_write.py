"""Readings per CPU second that ``LocalStore.write`` commits to a fresh local store.

Batches as the MQTT pipeline commits them: 26 signals (two demo kilns), ``--batch`` readings per
batch, each signal's readings newer than what is stored (the common case). Also the cost of a
redelivery: the same batches written again (every row a duplicate). The baseline is the SQLite
ceiling: the same rows with one bare ``executemany`` INSERT per batch and transaction, no checks.
CPU time of this process (the store is single-threaded), so other load on the machine matters
less than for wall time. Prints the medians of ``--repeats`` runs:

    RESULT store_write value=<readings/s> unit=readings/s baseline=<readings/s> ratio=<value/baseline>
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import log, result_line

from analytics.batch import ReadingBatch
from collector.store.local import SCHEMA, LocalStore, connect

NS = 1_000_000_000
SIGNALS = 26


def batches(n_batches: int, per_batch: int) -> list[ReadingBatch]:
    rng = np.random.default_rng(1)
    per_signal = per_batch // SIGNALS
    t0 = (time.time_ns() // NS - 86_400) * NS
    out = []
    for b in range(n_batches):
        sig = np.repeat(np.arange(SIGNALS), per_signal)
        ts = t0 + (b * per_signal + np.tile(np.arange(per_signal), SIGNALS)) * NS
        out.append(ReadingBatch.from_columns(sig, ts, rng.random(len(sig)) * 100, np.zeros(len(sig))))
    return out


def store_rate(path: Path, work: list[ReadingBatch]) -> tuple[float, float]:
    """(new readings / CPU s, redelivered readings / CPU s) through LocalStore.write."""
    store = LocalStore(path, [f"s{i}" for i in range(SIGNALS)])
    n = sum(len(b) for b in work)
    started = time.process_time()
    for b in work:
        store.write(b, raw_value=b.value)
    new = n / (time.process_time() - started)
    started = time.process_time()
    for b in work:
        store.write(b, raw_value=b.value)
    again = n / (time.process_time() - started)
    store.close()
    return new, again


def bare_rate(path: Path, work: list[ReadingBatch]) -> float:
    conn = connect(path)
    conn.executescript(SCHEMA)
    n = sum(len(b) for b in work)
    started = time.process_time()
    for b in work:
        columns = (b.signal, b.ts, b.value, b.quality, b.value)
        rows = zip(*(c.tolist() for c in columns), strict=True)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO reading VALUES (?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    rate = n / (time.process_time() - started)
    conn.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=702, help="readings per batch")
    parser.add_argument("--readings", type=int, default=200_000, help="per run")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    work = batches(max(1, args.readings // args.batch), args.batch)
    new, again, base = [], [], []
    with tempfile.TemporaryDirectory(prefix="kw-bench-store-") as tmp:
        for run in range(args.repeats):
            n, a = store_rate(Path(tmp) / f"store{run}.sqlite3", work)
            b = bare_rate(Path(tmp) / f"bare{run}.sqlite3", work)
            new.append(n)
            again.append(a)
            base.append(b)
            log(
                f"store_write run {run + 1}: new {n:,.0f}, redelivered {a:,.0f}, "
                f"bare INSERT {b:,.0f} readings/s"
            )
    v, r, b = statistics.median(new), statistics.median(again), statistics.median(base)
    log(f"store_write: redelivered batches (all duplicates) {r:,.0f} readings/s")
    result_line("store_write", v, "readings/s", b, v / b)


if __name__ == "__main__":
    main()
