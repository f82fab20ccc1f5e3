"""One simulated hour of two kilns: store + outbox -> writer -> victoria-metrics, counted exactly."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from prometheus_client import CollectorRegistry

from collector.health import HealthRegistry
from collector.outputs.historian.line_protocol import ReadingFormatter, aggregate_outbox_rows
from collector.outputs.historian.metrics import InfluxMetrics
from collector.outputs.historian.writer import InfluxTarget, InfluxWriter, WriterPolicy
from collector.store.local import LocalStore
from collector.store.outbox import exact_depth
from collector.store.reader import StoreReader
from tests.fixtures.victoria import (
    Victoria,
    aggregates,
    count_samples,
    expected_points,
    hour_start,
    kiln_table,
    reading_batches,
    stored_points,
    until,
)

pytestmark = pytest.mark.integration


async def test_hour_of_two_kilns_arrives_exactly_once(victoria: Victoria, tmp_path: Path) -> None:
    plant = "hour_test"
    table = kiln_table(plant)
    start = hour_start()
    batches = reading_batches(table, start, 3600)
    minutes, hours = aggregates(table, start)
    store = LocalStore(tmp_path / "kw.sqlite3", table.ids, outbox_formatter=ReadingFormatter(table.signals))
    registry = CollectorRegistry()
    metrics = InfluxMetrics(registry)
    writer = InfluxWriter(
        store.path,
        InfluxTarget(victoria.url, "token", "org", "bucket"),
        HealthRegistry(),
        metrics,
        WriterPolicy(batch_points=5000, in_flight=4, poll_s=0.02, depth_every_s=0.1),
    )
    task = asyncio.create_task(writer.run())

    def ingest() -> None:  # as the pipeline's store thread does, while the writer drains
        for i, batch in enumerate(batches):
            store.write(batch)
            if i % 6 == 5:
                closed = [minutes[i // 6], minutes[60 + i // 6]]  # kiln1's and kiln2's minute
                store.write_aggregates(closed, (), aggregate_outbox_rows(closed, []))
        store.write_aggregates((), hours, aggregate_outbox_rows([], hours))

    await asyncio.to_thread(ingest)
    n_lines = sum(len(b) for b in batches) + len(minutes) + 2 * len(hours)  # kiln_hourly, kiln_hour_rev
    await until(lambda: exact_depth(store.connection).rows == 0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert exact_depth(store.connection).rows == 0
    assert registry.get_sample_value("kilnwatch_influx_points_written_total") == n_lines
    assert StoreReader(store.path).dead_letters() == []

    expected = expected_points(table, batches)
    n_samples = sum(len(v) for v in expected.values()) + 5 * len(minutes) - 2 * 18 + 10 * len(hours)
    got = await asyncio.to_thread(victoria.wait_for_count, f'{{plant="{plant}"}}', n_samples)
    # Counted exactly: every sample there, none twice (a re-sent point would show as a second sample).
    assert count_samples(got) == n_samples
    for metric, points in expected.items():
        assert stored_points(got, metric) == points
    assert len(expected["reading_quality"]) == 3600 * 26
    assert len(expected["reading_value"]) == 3600 * 26 - sum(int(np.isnan(b.value).sum()) for b in batches)

    # Values arrive as sent (victoria-metrics' export rounds to about 1e-11).
    co2 = table.index("kiln1.stack.co2")
    sent = {
        int(t) // 1_000_000: v
        for b in batches
        for t, v, s in zip(b.ts, b.value, b.signal, strict=True)
        if s == co2
    }
    series = next(
        s
        for (name, labels), s in got.items()
        if name == "reading_value" and ("signal", "kiln1.stack.co2") in labels
    )
    ts = sorted(series)
    assert_allclose([series[t][0] for t in ts], [sent[t] for t in ts], rtol=1e-9, atol=2e-11)

    hourly = {
        (dict(labels)["kiln"], name): s for (name, labels), s in got.items() if name.startswith("kiln_hourly")
    }
    assert sorted(k for k, _ in hourly) == sorted(["kiln1", "kiln2"] * 6)
    for (_, name), s in hourly.items():
        assert list(s) == [start // 1_000_000], name
    assert hourly[("kiln1", "kiln_hourly_co2_t")][start // 1_000_000] == [88.5]
    assert hourly[("kiln2", "kiln_hourly_completeness")][start // 1_000_000] == [0.98]
    assert hourly[("kiln1", "kiln_hourly_valid")][start // 1_000_000] == [1.0]
    minute_co2 = [s for (name, _), s in got.items() if name == "kiln_minute_co2_t_per_h"]
    assert sum(len(s) for s in minute_co2) == 2 * (60 - 9)  # None (invalid) minutes carry no co2 field
