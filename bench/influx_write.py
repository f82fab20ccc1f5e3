"""Outbox -> InfluxDB write throughput, against a bare HTTP client posting the same bytes.

Starts its own victoria-metrics (InfluxDB's v2 write API) on a free port, fills a SQLite
outbox with pre-formatted line protocol (5000-point rows), and measures:

- value: kilnwatch's writer draining the outbox (fetch, influxdb-client async write, delete);
- baseline: aiohttp posting the same bodies to /api/v2/write with the same requests in flight.

After a warm-up, 3 repeats each; prints the medians:

    RESULT influx_write value=<points/s> unit=points/s baseline=<points/s> ratio=<value/baseline>
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.batch import NS_PER_S, ReadingBatch
from analytics.signals import Quantity, SignalInfo
from collector.health import HealthRegistry
from collector.outputs.historian.line_protocol import ReadingFormatter
from collector.outputs.historian.metrics import InfluxMetrics
from collector.outputs.historian.writer import InfluxTarget, InfluxWriter, WriterPolicy
from collector.store.local import LocalStore
from collector.store.outbox import exact_depth

BATCH_POINTS = 5000
IN_FLIGHT = 4


def start_victoria(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    binary = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
    proc = subprocess.Popen(
        [binary, f"-storageDataPath={data_dir}", f"-httpListenAddr=127.0.0.1:{port}", "-loggerLevel=ERROR"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise TimeoutError("victoria-metrics did not start")


def make_bodies(n_points: int) -> list[bytes]:
    """5000-point line-protocol bodies of 26 signals at 1 Hz, formatted as the outbox does."""
    signals = [
        SignalInfo(f"kiln{i % 2 + 1}.sig{i}", "bench", f"kiln{i % 2 + 1}", Quantity.CO2, "vol %")
        for i in range(26)
    ]
    fmt = ReadingFormatter(signals)
    rng = np.random.default_rng(1)
    start = (int(time.time()) - 3 * 86_400) * NS_PER_S
    idx = np.arange(n_points)
    batch = ReadingBatch.from_columns(
        idx % 26, start + (idx // 26) * NS_PER_S, rng.normal(100, 20, n_points), np.zeros(n_points)
    )
    return [fmt(batch.take(idx[i : i + BATCH_POINTS])) for i in range(0, n_points, BATCH_POINTS)]


def fill(store: LocalStore, bodies: list[bytes]) -> None:
    store.write_aggregates(outbox=[(0, b.count(b"\n"), b) for b in bodies])


async def run_writer(store: LocalStore, url: str, bodies: list[bytes]) -> float:
    fill(store, bodies)
    n = sum(b.count(b"\n") for b in bodies)
    registry = CollectorRegistry()
    writer = InfluxWriter(
        store.path,
        InfluxTarget(url, "token", "org", "bench"),
        HealthRegistry(),
        InfluxMetrics(registry),
        WriterPolicy(batch_points=BATCH_POINTS, in_flight=IN_FLIGHT, poll_s=0.005, depth_every_s=1.0),
    )
    started = time.perf_counter()
    task = asyncio.create_task(writer.run())
    # The registry is collected on the writer's event loop: every 2 ms took about a fifth of the
    # writer's profile samples; every 10 ms adds under 1 % to a run of a second or more.
    while (registry.get_sample_value("kilnwatch_influx_points_written_total") or 0) < n:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    while exact_depth(store.connection).rows:  # noqa: ASYNC110 - the last deletes
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return n / elapsed


async def run_bare(url: str, bodies: list[bytes]) -> float:
    n = sum(b.count(b"\n") for b in bodies)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    params = {"org": "org", "bucket": "bench", "precision": "ns"}
    headers = {"Authorization": "Token token", "Content-Type": "text/plain; charset=utf-8"}
    async with aiohttp.ClientSession() as session:

        async def post() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                async with session.post(
                    f"{url}/api/v2/write", params=params, data=body, headers=headers
                ) as r:
                    r.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(post() for _ in range(IN_FLIGHT)))
        return n / (time.perf_counter() - started)


async def main(points: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_victoria(Path(tmp) / "vm")
        try:
            bodies = make_bodies(points)
            store = LocalStore(Path(tmp) / "bench.sqlite3", [])
            await run_writer(store, url, bodies[:10])  # warm-up
            await run_bare(url, bodies[:10])
            value, base = [], []
            for _ in range(repeats):
                value.append(await run_writer(store, url, bodies))
                base.append(await run_bare(url, bodies))
            v, b = statistics.median(value), statistics.median(base)
            print(f"writer  points/s: {', '.join(f'{x:,.0f}' for x in value)}", file=sys.stderr)
            print(f"aiohttp points/s: {', '.join(f'{x:,.0f}' for x in base)}", file=sys.stderr)
            print(f"RESULT influx_write value={v:.0f} unit=points/s baseline={b:.0f} ratio={v / b:.3f}")
        finally:
            proc.terminate()
            proc.wait(timeout=20)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=500_000, help="points per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.points, args.repeats))
