"""Annotations through the outbox and the writer into victoria-metrics (InfluxDB line protocol): each
revision a point of the ``annotation`` measurement at the annotation's start, a later revision in
the same series and time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from collector.health import HealthRegistry
from collector.outputs.historian.metrics import InfluxMetrics
from collector.outputs.historian.writer import InfluxTarget, InfluxWriter, WriterPolicy
from collector.store.annotations import AnnotationStore
from collector.store.local import LocalStore
from collector.store.outbox import exact_depth
from tests.fixtures.victoria import Victoria, hour_start, until

pytestmark = pytest.mark.integration

H = 3600 * 10**9


async def test_annotation_revisions_arrive_as_points(victoria: Victoria, tmp_path: Path) -> None:
    plant = "annotation_test"
    store = LocalStore(tmp_path / "kw.sqlite3", ["x"])
    notes = AnnotationStore(store.path, {"kiln1": plant}, export=True)
    start = hour_start()
    writer = InfluxWriter(
        store.path,
        InfluxTarget(victoria.url, "token", "org", "bucket"),
        HealthRegistry(),
        InfluxMetrics(CollectorRegistry()),
        WriterPolicy(batch_points=100, in_flight=1, poll_s=0.02, depth_every_s=0.1),
    )
    task = asyncio.create_task(writer.run())
    try:
        args = ("kiln1", "kiln_stopped", start, None, "Stop", "trip", "olga")
        a = await asyncio.to_thread(notes.create, *args)
        await asyncio.to_thread(notes.revise, a.id, "olga", end_ns=start + H)
        assert await until(lambda: exact_depth(store.connection).rows == 0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        notes.close()
    got = await asyncio.to_thread(victoria.wait_for_count, f'annotation_revision{{plant="{plant}"}}', 2)
    ((name, labels),) = got.keys()
    assert name == "annotation_revision"
    assert dict(labels) == {"annotation_id": "1", "kind": "kiln_stopped", "kiln": "kiln1", "plant": plant}
    series = got[(name, labels)]
    assert list(series) == [start // 10**6]  # both revisions at the annotation's start
    assert sorted(series[start // 10**6]) == [0, 1]
    ends = victoria.samples(f'annotation_time_end{{plant="{plant}"}}')
    assert [v for s in ends.values() for vs in s.values() for v in vs] == [(start + H) // 10**6]
    store.close()
