"""Wiring of the InfluxDB historian (outbox, writer, budget) and of local retention.

``Service.run`` calls :func:`attach_historian` once the store and the pipeline exist and
before it starts ``extra_tasks``.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

from analytics.batch import ReadingBatch
from collector.outputs.historian.line_protocol import ReadingFormatter, aggregate_outbox_rows
from collector.outputs.historian.metrics import InfluxMetrics
from collector.outputs.historian.writer import InfluxTarget, InfluxWriter, WriterPolicy
from collector.store.outbox import OutboxBudget
from collector.store.retention import RetentionPolicy, run_retention

from .settings import Settings

if TYPE_CHECKING:
    from .service import Service

log = logging.getLogger("kilnwatch.historian")


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


def attach_historian(service: Service) -> InfluxWriter | None:
    """Add local retention, and with ``settings.influx_url`` the InfluxDB outbox and writer.

    Raw readings are pruned locally in both cases: the late-data recomputation reads them back
    only for recent hours, and with InfluxDB configured InfluxDB is their long-term home.
    """
    s = service.settings
    pipeline, store = service.pipeline, service.store
    service.extra_tasks.append(
        partial(run_retention, pipeline.on_store_thread, store.connection, retention_policy(s))
    )
    if not s.influx_url:
        log.info("no InfluxDB configured: readings stay in the local store (%s)", s.store_path)
        return None
    target = InfluxTarget(
        url=s.influx_url,
        token=s.influx_token.get_secret_value() if s.influx_token else "",
        org=s.influx_org,
        bucket=s.influx_bucket,
        timeout_s=s.influx_timeout_s,
        gzip=s.influx_gzip,
    )
    budget = OutboxBudget(
        s.outbox_max_bytes, s.outbox_max_age_h * 3600.0, s.outbox_warn_fraction, service.health
    )

    async def release_held_acks() -> None:
        # The pipeline releases held acks on its next commit; an empty batch is one.
        await pipeline.put(ReadingBatch.empty())

    writer = InfluxWriter(
        s.store_path,
        target,
        service.health,
        InfluxMetrics(service.metrics.registry),
        writer_policy(s),
        budget=budget,
        on_budget_reopen=release_held_acks,
    )
    store.outbox_formatter = ReadingFormatter(service.runtime.table.signals)
    pipeline.ack_gate = budget.allows_acks
    service.aggregate_outbox = aggregate_outbox_rows
    service.extra_tasks.append(writer.run)
    log.info("InfluxDB historian: %s, org %s, bucket %s", s.influx_url, s.influx_org, s.influx_bucket)
    return writer
