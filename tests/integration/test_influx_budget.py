"""The outbox budget: a warning near it; beyond it, MQTT acks held back (back-pressure), loudly."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from analytics.batch import ReadingBatch
from collector.conditioning import Conditioner
from collector.health import HealthRegistry
from collector.metrics import Metrics
from collector.outputs.historian.line_protocol import ReadingFormatter
from collector.outputs.historian.metrics import InfluxMetrics
from collector.outputs.historian.writer import InfluxTarget, InfluxWriter, WriterPolicy
from collector.pipeline import Pipeline
from collector.store.local import LocalStore
from collector.store.outbox import OutboxBudget, OutboxDepth, exact_depth
from tests.fixtures.victoria import Victoria, hour_start, kiln_table, reading_batches, until

HOUR_NS = 3600 * 10**9


def test_budget_warns_near_and_holds_acks_beyond(caplog: pytest.LogCaptureFixture) -> None:
    health = HealthRegistry()
    budget = OutboxBudget(max_bytes=1000, max_age_s=3600.0, warn_fraction=0.8, health=health)
    now = time.time_ns()
    caplog.set_level(logging.INFO, logger="collector.store.outbox")

    assert budget.update(OutboxDepth(1, 500, now), now) is False
    assert budget.allows_acks() and not health.warnings and not health.problems

    budget.update(OutboxDepth(2, 850, now), now)
    assert budget.allows_acks()
    assert "85% of budget" in health.warnings["outbox budget"]
    assert not health.not_ready_reasons()
    assert [r.levelname for r in caplog.records] == ["WARNING"]

    budget.update(OutboxDepth(3, 1200, now), now)
    assert not budget.allows_acks()
    assert "over budget, MQTT acknowledgements held back" in health.not_ready_reasons()[0]
    assert caplog.records[-1].levelname == "ERROR" and "OVER BUDGET" in caplog.records[-1].getMessage()
    budget.update(OutboxDepth(3, 1300, now), now)
    assert (
        len([r for r in caplog.records if r.levelname == "ERROR"]) == 1
    )  # repeated once a minute, not per update

    assert budget.update(OutboxDepth(1, 100, now), now) is True  # back within budget
    assert budget.allows_acks() and not health.problems and not health.warnings

    budget.update(OutboxDepth(1, 10, now - 2 * HOUR_NS), now)  # small but two hours old
    assert not budget.allows_acks()
    assert "oldest 2.00 h" in health.problems["outbox budget"]


@pytest.mark.integration
async def test_pipeline_holds_acks_while_over_budget_and_releases_them_after(
    start_victoria: Callable[[], Victoria], tmp_path: Path
) -> None:
    vm = start_victoria()
    vm.stop()  # InfluxDB unreachable: the outbox grows
    table = kiln_table("budget_test")
    batches = reading_batches(table, hour_start(), 600)
    formatter = ReadingFormatter(table.signals)
    store = LocalStore(tmp_path / "kw.sqlite3", table.ids, outbox_formatter=formatter)
    per_batch = len(formatter(batches[0]))
    health = HealthRegistry()
    budget = OutboxBudget(max_bytes=8 * per_batch, max_age_s=3600.0, warn_fraction=0.5, health=health)
    n = len(table)
    conditioner = Conditioner(np.ones(n), np.zeros(n), table.valid_min, table.valid_max)
    pipeline = Pipeline(store, conditioner, table.ids, Metrics(), ack_gate=budget.allows_acks)

    async def release_held_acks() -> None:
        await pipeline.put(ReadingBatch.empty())

    writer = InfluxWriter(
        store.path,
        InfluxTarget(vm.url, "token", "org", "bucket", timeout_s=2),
        health,
        InfluxMetrics(CollectorRegistry()),
        WriterPolicy(backoff_base_s=0.05, backoff_cap_s=0.2, poll_s=0.02, depth_every_s=0.05),
        budget=budget,
        on_budget_reopen=release_held_acks,
    )
    tasks = [asyncio.create_task(pipeline.run()), asyncio.create_task(writer.run())]
    acked: list[int] = []
    try:
        for i, batch in enumerate(batches[:6]):
            await pipeline.put(batch, lambda i=i: acked.append(i))
        assert await until(lambda: acked == [0, 1, 2, 3, 4, 5] and budget.state == "near", within_s=10)
        assert "of budget" in health.warnings["outbox budget"]  # 6 of 8 batches' worth

        for i, batch in enumerate(batches[6:10], start=6):
            await pipeline.put(batch, lambda i=i: acked.append(i))
        assert await until(lambda: budget.state == "over", within_s=10)
        for i, batch in enumerate(batches[10:20], start=10):
            await pipeline.put(batch, lambda i=i: acked.append(i))
        assert await until(lambda: pipeline.stored_readings == 20 * len(batches[0]), within_s=10)
        await asyncio.sleep(0.2)
        assert acked[:6] == [0, 1, 2, 3, 4, 5]
        assert max(acked) < 10  # durable, but the broker is not told: it keeps them
        assert "outbox budget" in health.problems

        await asyncio.to_thread(vm.start)
        assert await until(lambda: acked == list(range(20)), within_s=20)
        assert budget.allows_acks()
        assert await until(lambda: exact_depth(store.connection).rows == 0, within_s=10)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pipeline.close()
