"""SIGKILL of a process whose outbox holds data; a new process resumes: nothing lost, nothing extra.

Run as a module, this file is that process: it stores an hour of readings with their outbox
rows (``ingest``) while its writer drains them, or only drains (``drain``) and exits when done.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from collector.health import HealthRegistry
from collector.outputs.historian.line_protocol import ReadingFormatter
from collector.outputs.historian.metrics import InfluxMetrics
from collector.outputs.historian.writer import InfluxTarget, InfluxWriter, WriterPolicy
from collector.store.local import LocalStore, connect
from collector.store.outbox import exact_depth
from collector.store.reader import StoreReader
from tests.fixtures.victoria import (
    Victoria,
    assert_resent_points_equal,
    count_points,
    expected_points,
    hour_start,
    kiln_table,
    reading_batches,
    stored_points,
    until,
)

ROOT = Path(__file__).resolve().parents[2]


async def _process(db: Path, url: str, plant: str, start_ns: int, mode: str) -> None:
    table = kiln_table(plant)
    store = LocalStore(db, table.ids, outbox_formatter=ReadingFormatter(table.signals))
    writer = InfluxWriter(
        db,
        InfluxTarget(url, "token", "org", "bucket"),
        HealthRegistry(),
        InfluxMetrics(CollectorRegistry()),
        WriterPolicy(batch_points=260, in_flight=1, poll_s=0.02),
    )
    if mode == "ingest":
        batches = reading_batches(table, start_ns, 3600)
        for batch in batches[:180]:  # half an hour stored before the writer starts: a backlog
            store.write(batch)
        task = asyncio.create_task(writer.run())
        for batch in batches[180:]:
            await asyncio.to_thread(store.write, batch)
            await asyncio.sleep(0.01)
        print("ingested", flush=True)
        await task
    else:
        task = asyncio.create_task(writer.run())
        await until(lambda: exact_depth(store.connection).rows == 0, within_s=60)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        print("drained", exact_depth(store.connection).rows, flush=True)


def _spawn(db: Path, url: str, plant: str, start_ns: int, mode: str) -> subprocess.Popen[str]:
    args = [
        sys.executable,
        "-m",
        "tests.integration.test_influx_crash",
        str(db),
        url,
        plant,
        str(start_ns),
        mode,
    ]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)


@pytest.mark.integration
async def test_sigkill_with_a_full_outbox_loses_and_adds_nothing(victoria: Victoria, tmp_path: Path) -> None:
    plant, start, db = "crash_test", hour_start(3), tmp_path / "kw.sqlite3"
    proc = _spawn(db, victoria.url, plant, start, "ingest")
    match = f'{{plant="{plant}",__name__="reading_quality"}}'
    try:

        def sent_some() -> bool:
            if not db.exists():
                return False
            conn = connect(db, readonly=True)
            try:
                waiting = exact_depth(conn).rows
            except sqlite3.OperationalError:  # the process has not created the tables yet
                return False
            finally:
                conn.close()
            return waiting >= 5 and count_points(victoria.samples(match)) >= 2000

        assert await until(sent_some, within_s=30, interval_s=0.1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    conn = connect(db, readonly=True)
    left = exact_depth(conn).rows
    conn.close()
    assert left > 0  # the outbox held data when the process died
    table = kiln_table(plant)
    _, stored = StoreReader(db).readings(list(table.ids))
    assert len(stored) >= 180 * 10 * 26

    again = _spawn(db, victoria.url, plant, start, "drain")
    try:
        out, _ = await asyncio.to_thread(again.communicate, timeout=60)
    finally:
        if again.poll() is None:  # timed out: not left running
            again.kill()
            again.wait(10)
    assert again.returncode == 0 and out.split() == ["drained", "0"], out

    expected = expected_points(table, [stored])
    n_points = sum(len(p) for p in expected.values())
    got = await asyncio.to_thread(victoria.wait_for_count, f'{{plant="{plant}"}}', n_points)
    for metric, points in expected.items():
        assert stored_points(got, metric) == points, metric  # every stored reading, nothing else
    assert count_points(got) == n_points
    assert_resent_points_equal(got)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("db", "url", "plant", "start_ns", "mode"):
        parser.add_argument(name)
    a = parser.parse_args()
    asyncio.run(_process(Path(a.db), a.url, a.plant, int(a.start_ns), a.mode))
