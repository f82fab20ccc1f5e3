"""The historian of a real Service: readings through the pipeline and closed aggregates through
the aggregate outbox reach victoria-metrics; without InfluxDB there is no writer and no outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from analytics.engine import EngineOutput
from collector.store.outbox import exact_depth
from kilnwatch.config import parse_plant
from kilnwatch.demo import demo_plant
from kilnwatch.service import Service
from kilnwatch.settings import Settings
from tests.fixtures.victoria import (
    Victoria,
    aggregates,
    count_points,
    expected_points,
    hour_start,
    reading_batches,
    stored_points,
    until,
)

pytestmark = pytest.mark.integration


def _service(tmp_path: Path, **settings: object) -> Service:
    return Service(parse_plant(demo_plant(), "demo plant"), Settings(data_dir=tmp_path, **settings))  # type: ignore[arg-type]


async def test_without_influx_there_is_no_writer_and_no_outbox(tmp_path: Path) -> None:
    service = _service(tmp_path)
    service.open()
    assert service.writer is None
    assert service.store.outbox_formatter is None and service.pipeline.ack_gate is None
    service.pipeline.close()
    service.store.close()


async def test_historian_writes_readings_and_aggregates(
    start_victoria: Callable[[], Victoria], tmp_path: Path
) -> None:
    vm = start_victoria()
    service = _service(tmp_path, influx_url=vm.url, influx_token="a-real-token", outbox_max_bytes=10**9)
    service.open()
    writer = service.writer
    assert writer is not None and writer.target.token == "a-real-token"
    assert service.pipeline.ack_gate is not None and service.pipeline.ack_gate()
    assert service.store.outbox_formatter is not None

    table = service.runtime.table
    start = hour_start()
    batches = reading_batches(table, start, 600)
    minutes, hours = aggregates(table, start)
    tasks = [asyncio.create_task(service.pipeline.run())]
    tasks.append(asyncio.create_task(writer.run()))
    try:
        for batch in batches:
            await service.pipeline.put(batch)
        service.emit(EngineOutput(minutes, hours))  # aggregates and their outbox rows, one transaction
        n_stored = sum(len(b) for b in batches)
        assert await until(lambda: service.pipeline.stored_readings == n_stored, within_s=20)
        assert await until(lambda: exact_depth(service.store.connection).rows == 0, within_s=20)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        service.pipeline.close()
        service.store.close()

    expected = expected_points(table, batches)
    n_readings = sum(len(p) for p in expected.values())
    n_aggregates = 5 * len(minutes) - 2 * 18 + 6 * len(hours) + 4 * len(hours)  # + kiln_hour_rev
    got = await asyncio.to_thread(vm.wait_for_count, '{plant="demo"}', n_readings + n_aggregates)
    for metric, points in expected.items():
        assert stored_points(got, metric) == points
    assert count_points(got) == n_readings + n_aggregates
    hourly = {name for name, _ in got if name.startswith("kiln_hourly_")}
    assert hourly == {
        f"kiln_hourly_{f}" for f in ("co2_t", "clinker_t", "intensity_kg_per_t", "completeness")
    } | {
        "kiln_hourly_valid",
        "kiln_hourly_revision",
    }
