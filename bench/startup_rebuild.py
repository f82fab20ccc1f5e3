"""Start-up rebuild of the engine from the local store, at its bound: 7 days x 2 kilns open.

A store holds ``--days`` of 1-Hz readings of two demo kilns (13 signals each, the simulator's
model) and no aggregate at all, as if kilnwatch had died having stored them all and closed
nothing: the start-up rebuild must feed every reading back and close every minute and hour
(the most it ever does; a crash in normal operation leaves under an hour of minutes and a few
seconds of readings). Timed (once, wall clock): ``Service._rebuild``, from the first query to
the last aggregate in the ledger. Baseline: reading the same readings from the store in the same
slices without the engine (the floor set by SQLite and the row conversion).

    RESULT startup_rebuild value=<s> unit=s baseline=<s> ratio=<value/baseline>
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from common import log, result_line

from analytics.batch import NS_PER_S, ReadingBatch
from collector.store.local import LocalStore
from collector.store.reader import StoreReader
from kilnwatch.config import parse_plant
from kilnwatch.demo import demo_plant
from kilnwatch.service import REBUILD_SLICE_NS, Service
from kilnwatch.settings import Settings
from simulators.model import SIGNAL_KEYS, KilnModel

KILNS = ("kiln1", "kiln2")


def plant() -> dict[str, object]:
    return demo_plant(opcua_port=4840, mqtt_port=None, kilns=KILNS)


def fill(service: Service, days: float, end_ns: int) -> int:
    """``days`` of 1-Hz readings up to ``end_ns`` into the service's store; returns their number."""
    rt = service.runtime
    store = LocalStore(service.settings.store_path, rt.table.ids)
    models = {k: KilnModel(k, seed=7) for k in KILNS}
    start_s = end_ns // NS_PER_S - round(days * 86_400)
    n = 0
    for h in range(round(days * 24)):
        t = (start_s + h * 3600 + np.arange(3600, dtype=np.int64)) * NS_PER_S
        parts = []
        for kiln, model in models.items():
            values = model.sample(t)
            for key in SIGNAL_KEYS:
                sig = np.full(len(t), rt.table.index(f"{kiln}.{key}"), np.int32)
                parts.append(ReadingBatch(sig, t, values[key], np.zeros(len(t), np.uint8)))
        batch = rt.conditioner.apply(ReadingBatch.concat(parts))[0]
        store.write(batch)
        n += len(batch)
    store.close()
    return n


def read_only(service: Service, start_ns: int, end_ns: int) -> int:
    reader = StoreReader(service.settings.store_path)
    n = 0
    for kiln in service.runtime.kilns:
        members = [service.runtime.table.ids[i] for i in kiln.signals]
        for t in range(start_ns, end_ns + 1, REBUILD_SLICE_NS):
            n += len(reader.readings(members, t, t + REBUILD_SLICE_NS)[1])
    return n


async def rebuild(service: Service) -> float:
    service.open()
    started = time.perf_counter()
    await service._rebuild()
    elapsed = time.perf_counter() - started
    service.pipeline.close()
    service.store.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=7.0, help="days of readings in the store")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        service = Service(parse_plant(plant(), "bench plant"), Settings(data_dir=Path(tmp)))
        end = time.time_ns() // NS_PER_S * NS_PER_S - 60 * NS_PER_S
        started = time.perf_counter()
        n = fill(service, args.days, end)
        stored_s = time.perf_counter() - started
        log(f"{n} readings ({args.days} days x {len(KILNS)} kilns) stored in {stored_s:.0f} s")
        started = time.perf_counter()
        read = read_only(service, end - round(args.days * 86_400 * NS_PER_S), end)
        baseline = time.perf_counter() - started
        value = asyncio.run(rebuild(service))
        reader = StoreReader(service.settings.store_path)
        minutes = sum(len(reader.minutes(k, 0, end + 1)) for k in KILNS)
        hours = sum(len(reader.hours(k, 0, end + 1)) for k in KILNS)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        log(
            f"read {read} readings alone in {baseline:.1f} s; rebuild closed {minutes} minutes, {hours} hours"
        )
        log(f"peak RSS {rss:.0f} MiB")
    result_line("startup_rebuild", value, "s", baseline, value / baseline)


if __name__ == "__main__":
    main()
