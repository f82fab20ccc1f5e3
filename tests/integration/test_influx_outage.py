"""victoria-metrics stopped during ingestion and started again: nothing lost, nothing extra."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from collector.health import HealthRegistry
from collector.outputs.historian.line_protocol import ReadingFormatter
from collector.outputs.historian.metrics import InfluxMetrics
from collector.outputs.historian.writer import InfluxTarget, InfluxWriter, WriterPolicy
from collector.store.local import LocalStore
from collector.store.outbox import exact_depth
from tests.fixtures.victoria import (
    Victoria,
    assert_resent_points_equal,
    count_points,
    count_samples,
    expected_points,
    hour_start,
    kiln_table,
    reading_batches,
    stored_points,
    until,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "down_s",
    [pytest.param(120, id="down-2-min"), pytest.param(3600, id="down-1-h")],
)
async def test_outage_is_reported_and_the_outbox_catches_up(
    start_victoria: Callable[[], Victoria], tmp_path: Path, down_s: int
) -> None:
    """``down_s`` seconds of plant data (26 signals at 1 Hz) arrive while InfluxDB is down.

    The wall-clock length of the outage changes nothing but the data waiting (the retries are
    capped at ``backoff_cap_s``), so the test feeds the data of a 2-minute and of a 1-hour outage.
    """
    vm = start_victoria()
    plant = f"outage_{down_s}"
    table = kiln_table(plant)
    up_s, after_s = 1200, 600
    batches = reading_batches(table, hour_start(3), up_s + down_s + after_s)  # batches of 10 s
    up, down = up_s // 10, (up_s + down_s) // 10
    store = LocalStore(tmp_path / "kw.sqlite3", table.ids, outbox_formatter=ReadingFormatter(table.signals))
    health = HealthRegistry()
    registry = CollectorRegistry()
    writer = InfluxWriter(
        store.path,
        InfluxTarget(vm.url, "token", "org", "bucket", timeout_s=5),
        health,
        InfluxMetrics(registry),
        WriterPolicy(batch_points=2000, in_flight=2, backoff_base_s=0.05, backoff_cap_s=0.5, poll_s=0.02),
    )
    task = asyncio.create_task(writer.run())

    async def ingest(part: list) -> None:
        for batch in part:
            await asyncio.to_thread(store.write, batch)
            await asyncio.sleep(0.002)

    def outbox_rows() -> int:
        return exact_depth(store.connection).rows

    def outage_reported() -> bool:
        return any("InfluxDB writes failing" in r for r in health.not_ready_reasons())

    await ingest(batches[:up])  # 20 simulated minutes while it is up
    assert await until(lambda: outbox_rows() == 0)
    assert not outage_reported()

    await asyncio.to_thread(vm.stop)
    await ingest(batches[up:down])  # the outage's data
    assert await until(outage_reported, within_s=10)
    assert "outbox rows waiting" in health.problems["influx"]
    assert outbox_rows() > 0
    await asyncio.sleep(1.0)  # retries with backoff, capped at 0.5 s
    retries = registry.get_sample_value("kilnwatch_influx_retries_total", {"reason": "connection"})
    assert retries is not None and retries >= 2
    assert outbox_rows() >= 1

    await asyncio.to_thread(vm.start)
    restarted = time.monotonic()
    assert await until(lambda: outbox_rows() == 0 and not outage_reported(), within_s=60)
    caught_up_s = time.monotonic() - restarted
    print(f"InfluxDB outage of {down_s} s of data: outbox empty {caught_up_s:.1f} s after the restart")
    await ingest(batches[down:])  # data after the restart goes straight through
    assert await until(lambda: outbox_rows() == 0, within_s=30)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    expected = expected_points(table, batches)
    n_points = sum(len(p) for p in expected.values())
    got = await asyncio.to_thread(vm.wait_for_count, f'{{plant="{plant}"}}', n_points)
    for metric, points in expected.items():
        assert stored_points(got, metric) == points, metric
    assert count_points(got) == n_points  # every (series, timestamp) once: no point missing or extra
    # A request cut by the stop may have been stored and sent again: InfluxDB overwrites such a
    # point; victoria-metrics keeps both samples, which must then be equal.
    assert_resent_points_equal(got)
    assert count_samples(got) - n_points <= 2 * 2000
