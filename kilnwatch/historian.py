"""The InfluxDB historian (outbox, writer, budget) and local retention, as the assembly wires them.

Each piece is handed to the component that uses it when that component is built: the store
gets the outbox formatter, the pipeline the budget's ack gate, the service the aggregate rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from analytics.aggregates import HourAggregate, MinuteAggregate
from analytics.batch import ReadingBatch
from analytics.signals import SignalTable
from collector.health import HealthRegistry
from collector.metrics import Metrics
from collector.outputs.historian.line_protocol import ReadingFormatter, aggregate_outbox_rows
from collector.outputs.historian.metrics import InfluxMetrics
from collector.outputs.historian.writer import InfluxTarget, InfluxWriter, WriterPolicy
from collector.pipeline import Pipeline
from collector.secret_values import mask_urls
from collector.store.local import LocalStore
from collector.store.outbox import OutboxBudget
from collector.store.retention import RetentionPolicy, run_retention

from .settings import Settings

log = logging.getLogger("kilnwatch.historian")

AggregateRows = Callable[[list[MinuteAggregate], list[HourAggregate]], list[tuple[int, int, bytes]]]


def writer_policy(settings: Settings) -> WriterPolicy:
    return WriterPolicy(
        batch_points=settings.influx_batch_points,
        in_flight=settings.influx_in_flight,
        backoff_cap_s=settings.influx_retry_cap_s,
    )


def retention_policy(settings: Settings) -> RetentionPolicy:
    return RetentionPolicy(
        raw_days=settings.retention_raw_days,
        minute_days=settings.retention_minute_days,
        dead_letter_days=settings.retention_dead_letter_days,
        dead_letter_max_bytes=settings.dead_letter_max_bytes,
    )


def retention_task(
    settings: Settings, pipeline: Pipeline, store: LocalStore
) -> Callable[[], Coroutine[Any, Any, None]]:
    """Local retention, with or without InfluxDB: the late-data recomputation reads raw readings
    back only for recent hours, and with InfluxDB configured InfluxDB is their long-term home."""
    return partial(run_retention, pipeline.on_store_thread, store.connection, retention_policy(settings))


@dataclass(frozen=True)
class Historian:
    """With ``settings.influx_url``: what the store, the pipeline and the service take from the
    InfluxDB output; without it, nothing (``enabled`` False)."""

    settings: Settings
    health: HealthRegistry
    formatter: ReadingFormatter | None = None
    budget: OutboxBudget | None = None
    aggregate_rows: AggregateRows | None = None

    @property
    def enabled(self) -> bool:
        return self.budget is not None

    @property
    def ack_gate(self) -> Callable[[], bool] | None:
        return self.budget.allows_acks if self.budget is not None else None

    def writer(self, pipeline: Pipeline, metrics: Metrics) -> InfluxWriter | None:
        """The writer draining the outbox; it reopens the pipeline's held acks when the budget allows."""
        s = self.settings
        if self.budget is None:
            log.info("no InfluxDB configured: readings stay in the local store (%s)", s.store_path)
            return None
        target = InfluxTarget(
            url=s.influx_url or "",
            token=s.influx_token.get_secret_value() if s.influx_token else "",
            org=s.influx_org,
            bucket=s.influx_bucket,
            timeout_s=s.influx_timeout_s,
            gzip=s.influx_gzip,
        )

        async def release_held_acks() -> None:
            # The pipeline releases held acks on its next commit; an empty batch is one.
            await pipeline.put(ReadingBatch.empty())

        url = mask_urls(target.url)
        log.info("InfluxDB historian: %s, org %s, bucket %s", url, s.influx_org, s.influx_bucket)
        return InfluxWriter(
            s.store_path,
            target,
            self.health,
            InfluxMetrics(metrics.registry),
            writer_policy(s),
            budget=self.budget,
            on_budget_reopen=release_held_acks,
        )


def historian(
    settings: Settings, table: SignalTable, health: HealthRegistry, companies: dict[str, str] | None = None
) -> Historian:
    """``companies``: plant id -> company, the ``company`` tag of every point (none when empty)."""
    s = settings
    if not s.influx_url:
        return Historian(s, health)
    budget = OutboxBudget(s.outbox_max_bytes, s.outbox_max_age_h * 3600.0, s.outbox_warn_fraction, health)
    rows = partial(aggregate_outbox_rows, companies=companies or {})
    return Historian(s, health, ReadingFormatter(table.signals, companies), budget, rows)
