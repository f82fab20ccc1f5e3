"""Service start-up rebuilds the engine from a real local store, by event time: a run that died in
the first hour of a replay three hours old gets its hour complete, as a run without the crash."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from analytics.aggregates import HourAggregate
from analytics.batch import NS_PER_S, ReadingBatch
from analytics.hours import HOUR_NS
from analytics.minutes import MINUTE_NS
from collector.store.local import LocalStore
from kilnwatch.config import parse_plant
from kilnwatch.demo import demo_plant
from kilnwatch.service import Service
from kilnwatch.settings import Settings
from simulators.model import SIGNAL_KEYS, KilnModel

pytestmark = pytest.mark.integration

KILN = "kiln1"


def service(data_dir: Path) -> Service:
    plant = demo_plant(opcua_port=4840, mqtt_port=None, kilns=(KILN,))
    return Service(parse_plant(plant, "test plant"), Settings(data_dir=data_dir))


def plant_readings(svc: Service, start_ns: int, seconds: int) -> list[ReadingBatch]:
    """1-Hz readings of every signal of the kiln, in 10-s batches as a collector delivers them."""
    table, model = svc.runtime.table, KilnModel(KILN, seed=3)
    t = start_ns + np.arange(seconds, dtype=np.int64) * NS_PER_S
    values = model.sample(t)
    parts = [
        ReadingBatch(
            np.full(seconds, table.index(f"{KILN}.{k}"), np.int32), t, values[k], np.zeros(seconds, np.uint8)
        )
        for k in SIGNAL_KEYS
    ]
    batch = svc.runtime.conditioner.apply(ReadingBatch.concat(parts))[0]
    return [
        batch.take((batch.ts >= s) & (batch.ts < s + 10 * NS_PER_S))
        for s in range(start_ns, t[-1] + 1, 10 * NS_PER_S)
    ]


def live(svc: Service, batches: list[ReadingBatch], clock: float) -> list[HourAggregate]:
    """The batches through the service's engine as they would arrive, one every 0.1 s of wall time."""
    hours = []
    for i, b in enumerate(batches):
        svc.engine.ingest(b, clock + i / 10)
        hours += svc.engine.advance(clock + i / 10).hours
    return hours


async def test_a_run_killed_in_the_first_hour_of_an_old_replay_is_rebuilt(tmp_path: Path) -> None:
    hour = time.time_ns() // HOUR_NS * HOUR_NS - 3 * HOUR_NS  # older than any wall-clock window
    reference = service(tmp_path / "reference")
    batches = plant_readings(reference, hour + 5 * MINUTE_NS, 58 * 60)
    (whole,) = live(reference, batches, clock=0.0)

    # The first run: readings committed, then fed to its engine; killed 30 min into the hour with
    # its last minutes closed but not yet written to the ledger.
    crashed = service(tmp_path / "run")
    store = LocalStore(crashed.settings.store_path, crashed.runtime.table.ids)
    kill_at = 150  # batches: 25 min of data
    for i, b in enumerate(batches[:kill_at]):
        store.write(b)
        crashed.engine.ingest(b, i / 10)
        out = crashed.engine.advance(i / 10)
        store.write_aggregates([m for m in out.minutes if m.start_ns < hour + 26 * MINUTE_NS], out.hours)
    store.close()

    restarted = service(tmp_path / "run")
    restarted.open()
    await restarted._rebuild()
    try:
        assert restarted.engine.kilns[KILN].closed_until == crashed.engine.kilns[KILN].closed_until
        (rebuilt,) = live(restarted, batches[kill_at:], clock=time.monotonic())
        assert rebuilt.to_dict() == whole.to_dict()
        assert rebuilt.completeness == pytest.approx(55 / 60, abs=1e-3) and rebuilt.valid
        # The minutes the first run closed without writing them are in the ledger now.
        stored = restarted.reader.minutes(KILN, hour, hour + HOUR_NS)
        assert [m.start_ns for m in stored][:22] == [hour + i * MINUTE_NS for i in range(5, 27)]
    finally:
        restarted.pipeline.close()
        restarted.store.close()


async def test_readings_beyond_the_rebuild_bound_are_not_fed_back(tmp_path: Path) -> None:
    old = time.time_ns() // HOUR_NS * HOUR_NS - 8 * 24 * HOUR_NS  # 8 days ago: beyond 7 days
    svc = service(tmp_path)
    store = LocalStore(svc.settings.store_path, svc.runtime.table.ids)
    for b in plant_readings(svc, old, 600):
        store.write(b)
    store.close()
    svc.open()
    await asyncio.wait_for(svc._rebuild(), 30)
    try:
        assert svc.engine.kilns[KILN].closed_until is None
        assert svc.reader.minutes(KILN, 0, old + HOUR_NS) == []
    finally:
        svc.pipeline.close()
        svc.store.close()
