"""Figure 2: values/s from an asyncua server through kilnwatch's OPC UA collector into the store.

The kiln simulator's asyncua server runs in its own process, starting 30 days in the past at
a speed it cannot follow, so it publishes as fast as it can for the whole run (the demo kilns: 13
subscribed signals each, one value per signal and simulated second). On the same server,
alternately, for ``--seconds`` each after a 2-s warm-up, 3 times:

- value: kilnwatch's ``OpcUaSource`` (subscription, notification buffer, batches) into the
  ``Pipeline`` (conditioning, one SQLite transaction per group of batches, on its store
  thread): readings committed to the local store per second;
- baseline: a bare asyncua client with the same subscription and monitored-item parameters
  that only counts the data-change notifications it receives.

    RESULT opcua_ingest value=<values/s> unit=values/s baseline=<values/s> ratio=<value/baseline>
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asyncua import Client
from asyncua.common.subscription import DataChangeEvent
from common import free_port, kiln_ids, log, plant_file, quiet_logs, result_line, simulator

from collector.health import HealthRegistry
from collector.metrics import Metrics
from collector.pipeline import Pipeline
from collector.sources.opcua import connection as conn
from collector.sources.opcua.source import EVENT_QUEUE_SIZE, OpcUaSource
from collector.sources.opcua.spec import OpcUaServerSpec
from collector.store.local import LocalStore
from kilnwatch.config import load_plant_file
from kilnwatch.plant import Runtime, build_runtime

WARMUP_S = 2.0
#: The simulator starts 30 days back; its clock needs 26 s to get there, its server (about
#: 1 000 ticks/s) much longer: it publishes flat out for the whole run.
BACKFILL_H = 30 * 24.0
SPEED = 1e5


@dataclass(frozen=True)
class Rate:
    per_s: float  # values/s
    cpu_us: float  # CPU time of this process per value [us], store thread included


async def kilnwatch_rate(runtime: Runtime, spec: OpcUaServerSpec, store_path: Path, seconds: float) -> Rate:
    """Readings per second committed to the local store by the OPC UA source and the pipeline."""
    metrics = Metrics()
    store = LocalStore(store_path, runtime.table.ids)
    pipeline = Pipeline(store, runtime.conditioner, runtime.table.ids, metrics)
    [(name, bindings)] = runtime.opcua_nodes.items()
    source = OpcUaSource(
        f"opcua:{name}",
        spec,
        [(i, b.node) for i, b in bindings],
        pipeline,
        HealthRegistry().source(name, "opcua"),
        metrics,
        "bench",
        signal_names=runtime.table.ids,
    )
    tasks = [asyncio.create_task(pipeline.run()), asyncio.create_task(source.run())]
    try:
        await _wait_until(lambda: pipeline.stored_readings > 0, 30, "first readings in the store")
        await asyncio.sleep(WARMUP_S)
        n0, t0, c0 = pipeline.stored_readings, time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        n = pipeline.stored_readings - n0
        return Rate(n / (time.perf_counter() - t0), (time.process_time() - c0) / max(n, 1) * 1e6)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pipeline.close()
        store.close()


async def bare_rate(runtime: Runtime, spec: OpcUaServerSpec, seconds: float) -> Rate:
    """Data-change notifications per second received by a bare asyncua subscription."""
    [bindings] = runtime.opcua_nodes.values()
    client = Client(spec.url, timeout=spec.connect_timeout_s)
    await client.connect()
    count = 0

    async def consume() -> None:
        nonlocal count
        async for event in sub:
            if type(event) is DataChangeEvent:
                count += 1

    try:
        resolved, _, _ = conn.resolve_nodes(
            conn.parse_nodes([b.node for _, b in bindings]), await client.get_namespace_array()
        )
        sub = await client.create_subscription(
            conn.subscription_parameters(spec), None, queue_maxsize=EVENT_QUEUE_SIZE
        )
        await sub.create_monitored_items([conn.monitor_request(spec, h, n) for h, n in resolved])
        task = asyncio.create_task(consume())
        await _wait_until(lambda: count > 0, 30, "first notifications")
        await asyncio.sleep(WARMUP_S)
        n0, t0, c0 = count, time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        n = count - n0
        rate = Rate(n / (time.perf_counter() - t0), (time.process_time() - c0) / max(n, 1) * 1e6)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sub.delete()
        return rate
    finally:
        await client.disconnect()


async def _wait_until(predicate: Callable[[], bool], limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {limit_s:.0f} s")
        await asyncio.sleep(0.05)


async def measure(workdir: Path, kilns: tuple[str, ...], seconds: float, repeats: int) -> None:
    port = free_port()
    runtime = build_runtime(load_plant_file(plant_file(workdir, kilns, port, None)))
    spec = OpcUaServerSpec(url=f"opc.tcp://127.0.0.1:{port}")
    with simulator(workdir, kilns, port, speed=SPEED, backfill_h=BACKFILL_H):
        await bare_rate(runtime, spec, 1.0)  # warm-up of both paths and the server
        await kilnwatch_rate(runtime, spec, workdir / "warmup.sqlite3", 1.0)
        value: list[Rate] = []
        base: list[Rate] = []
        for i in range(repeats):
            base.append(await bare_rate(runtime, spec, seconds))
            value.append(await kilnwatch_rate(runtime, spec, workdir / f"run{i}.sqlite3", seconds))
            log(
                f"opcua_ingest run {i + 1}: kilnwatch {value[-1].per_s:,.0f} values/s "
                f"({value[-1].cpu_us:.0f} us CPU/value), bare {base[-1].per_s:,.0f} values/s "
                f"({base[-1].cpu_us:.0f} us CPU/value)"
            )
    cpu_v, cpu_b = statistics.median(r.cpu_us for r in value), statistics.median(r.cpu_us for r in base)
    log(f"opcua_ingest client CPU per value: kilnwatch {cpu_v:.0f} us, bare {cpu_b:.0f} us")
    v, b = statistics.median(r.per_s for r in value), statistics.median(r.per_s for r in base)
    result_line("opcua_ingest", v, "values/s", b, v / b)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--signals", type=int, default=26, help="subscribed signals (13 per kiln)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="kw-bench-opcua-") as tmp:
        asyncio.run(measure(Path(tmp), kiln_ids(args.signals), args.seconds, args.repeats))


if __name__ == "__main__":
    main()
