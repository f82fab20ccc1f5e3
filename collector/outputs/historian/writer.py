"""Drains the outbox into InfluxDB through the v2 write API (influxdb-client, asyncio).

A dispatcher hands consecutive outbox rows, oldest first, to a few workers (several requests
in flight); a worker writes its batch and deletes the rows only when InfluxDB accepted them.
What the writer does on each kind of error (:mod:`collector.outputs.historian.errors`)::

    WriteError
     +-- Retryable       connection error, timeout, 429, 5xx  -> back off (capped exponential,
     |                                                           jitter, Retry-After), for ever
     +-- Malformed       400, 413, 422                        -> bisect; lines rejected alone go
     |                                                           to dead_letter with the message
     +-- ConfigRejected  401, 403, 404, other 4xx             -> stop, report, keep the data;
                                                                 look again every config_recheck_s

Batches and retries live here rather than in the client's batching API so that a batch exists
only as outbox rows until InfluxDB has it: whatever stops the process, nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from influxdb_client import WritePrecision
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

from collector.health import HealthRegistry
from collector.secret_values import mask_urls
from collector.sources.supervisor import Availability, Backoff
from collector.store.outbox import Outbox, OutboxBatch, OutboxBudget, OutboxDepth

from .errors import ConfigRejected, Malformed, Retryable, classify
from .metrics import InfluxMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")
HEALTH_KEY = "influx"
_DB_RETRY_S = 5.0
_NS: Any = WritePrecision.NS  # the client annotates it as WritePrecision, defines it as str


@dataclass(frozen=True, slots=True)
class InfluxTarget:
    url: str
    token: str
    org: str
    bucket: str
    timeout_s: float = 30.0
    gzip: bool = False


@dataclass(frozen=True, slots=True)
class WriterPolicy:
    batch_points: int = 5000
    batch_bytes: int = 8_000_000
    in_flight: int = 4
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0
    poll_s: float = 0.25  # pause when the outbox is empty [s]
    depth_every_s: float = 1.0
    config_recheck_s: float = 600.0  # after 401/403/404, try the batch again this much later [s]


_CONFIG_TEXT = {
    401: "InfluxDB rejected the token (401)",
    403: "InfluxDB denied the token permission to write to bucket {bucket!r} (403)",
    404: "InfluxDB has no bucket {bucket!r} in org {org!r} (404)",
}


class InfluxWriter:
    """Runs under the shared supervisor (``name``, ``status``, ``run``, ``stop``), like a source."""

    name = HEALTH_KEY

    def __init__(
        self,
        outbox_path: Path | str,
        target: InfluxTarget,
        health: HealthRegistry,
        metrics: InfluxMetrics,
        policy: WriterPolicy | None = None,
        budget: OutboxBudget | None = None,
        on_budget_reopen: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.outbox_path = outbox_path
        self.target = target
        self.health = health
        self.metrics = metrics
        self.policy = policy or WriterPolicy()
        self.budget = budget
        self.on_budget_reopen = on_budget_reopen
        self.depth = OutboxDepth()
        self.status = Availability("writing to InfluxDB", log)
        self._outage_since = 0.0  # wall clock, for /readyz
        self._task: asyncio.Task[None] | None = None
        self._config_error: str | None = None
        self._db_executor: ThreadPoolExecutor | None = None
        self._outbox: Outbox | None = None
        self._write: Callable[[bytes], Awaitable[Any]] | None = None

    async def _db(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db_executor, fn, *args)

    async def run(self) -> None:
        """Drain the outbox until cancelled; unacknowledged batches stay in the outbox."""
        self._db_executor = ThreadPoolExecutor(1, thread_name_prefix="kilnwatch-outbox")
        self._task = asyncio.current_task()
        t = self.target
        try:
            self._outbox = await self._db(Outbox, self.outbox_path)
            async with InfluxDBClientAsync(
                url=t.url, token=t.token, org=t.org, timeout=int(t.timeout_s * 1000), enable_gzip=t.gzip
            ) as client:
                api = client.write_api()

                async def write(body: bytes) -> None:
                    await api.write(bucket=t.bucket, org=t.org, record=body, write_precision=_NS)

                self._write = write
                queue: asyncio.Queue[OutboxBatch] = asyncio.Queue(maxsize=1)
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._watch_depth())
                    tg.create_task(self._dispatch(queue))
                    for _ in range(self.policy.in_flight):
                        tg.create_task(self._worker(queue))
        finally:
            if self._outbox is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._db(self._outbox.close))
            self._db_executor.shutdown(wait=False)
            self._task = None

    async def stop(self) -> None:
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait([task])

    async def _dispatch(self, queue: asyncio.Queue[OutboxBatch]) -> None:
        assert self._outbox is not None
        p = self.policy
        while True:
            try:
                batch = await self._db(self._outbox.next_batch, p.batch_points, p.batch_bytes)
            except sqlite3.Error:
                log.exception("reading the outbox failed; trying again in %.0f s", _DB_RETRY_S)
                await asyncio.sleep(_DB_RETRY_S)
                continue
            if batch is None:
                await asyncio.sleep(p.poll_s)
            else:
                await queue.put(batch)

    async def _worker(self, queue: asyncio.Queue[OutboxBatch]) -> None:
        while True:
            batch = await queue.get()
            backoff = Backoff(initial=1.0, cap=self.policy.backoff_cap_s, jitter=0.5)
            while True:
                try:
                    await self._deliver(batch)
                    break
                except ConfigRejected as err:
                    self._config_rejected(err)
                    await asyncio.sleep(self.policy.config_recheck_s)
                except Exception:
                    # Not an InfluxDB answer (e.g. the local disk): keep the batch, try again later.
                    log.exception("delivering outbox rows %d..%d failed", batch.first_id, batch.last_id)
                    await asyncio.sleep(backoff.next())

    async def _deliver(self, batch: OutboxBatch) -> None:
        assert self._outbox is not None
        rejected = await self._write_splitting(batch.body, batch.n_points)
        if rejected:
            await self._db(self._outbox.dead_letter, batch, rejected)
            self.metrics.dead_letters.inc(len(rejected))
            log.warning(
                "InfluxDB rejected %d of %d points as malformed; moved to the dead-letter table (first: %s)",
                len(rejected),
                batch.n_points,
                rejected[0][1],
            )
        else:
            await self._db(self._outbox.ack, batch)

    async def _write_splitting(self, body: bytes, n_points: int) -> list[tuple[bytes, str]]:
        """Write ``body``; on a malformed-data answer, bisect. Returns the lines rejected alone."""
        try:
            await self._send(body, n_points)
            return []
        except Malformed as err:
            lines = [line + b"\n" for line in body.split(b"\n") if line]
            if len(lines) <= 1:
                return [(body.rstrip(b"\n"), f"HTTP {err.status}: {err.message}")]
            mid = len(lines) // 2
            first = await self._write_splitting(b"".join(lines[:mid]), mid)
            return first + await self._write_splitting(b"".join(lines[mid:]), len(lines) - mid)

    async def _send(self, body: bytes, n_points: int) -> None:
        """Write until InfluxDB accepts; raises Malformed or ConfigRejected."""
        assert self._write is not None
        p = self.policy
        backoff = Backoff(initial=p.backoff_base_s, cap=p.backoff_cap_s, jitter=0.5)
        while True:
            started = time.perf_counter()
            try:
                await self._write(body)
            except Exception as exc:
                err = classify(exc)
                if err is None:
                    raise
                if not isinstance(err, Retryable):
                    raise err from exc
                self._retrying(err)
                await asyncio.sleep(backoff.next(err.retry_after))
                continue
            self.metrics.write_seconds.observe(time.perf_counter() - started)
            self.metrics.points_written.inc(n_points)
            self._accepted()
            return

    # -- health ---------------------------------------------------------------------------

    def _retrying(self, err: Retryable) -> None:
        self.metrics.retries.labels(err.reason).inc()
        if not self.status.failing:
            self._outage_since = time.time()
        self.status.down(f"{err.message} (the data stays in the outbox)")
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self._outage_since))
        self.health.problems[HEALTH_KEY] = (
            f"InfluxDB writes failing since {since}: {err.message}; {self.depth.rows} outbox rows waiting"
        )

    def _accepted(self) -> None:
        if self.status.up():
            self.health.problems.pop(HEALTH_KEY, None)
        if self._config_error is not None:
            log.info("InfluxDB accepts writes again; the configuration problem is solved")
            self._config_error = None
            self.metrics.config_error.set(0)
            self.health.problems.pop(HEALTH_KEY, None)

    def _config_rejected(self, err: ConfigRejected) -> None:
        t = self.target
        head = _CONFIG_TEXT.get(err.status or 0, "InfluxDB refused the write ({status})")
        text = head.format(bucket=t.bucket, org=t.org, status=err.status) + f": {err.message}"
        self.metrics.config_error.set(1)
        self.health.problems[HEALTH_KEY] = f"{text}; writes stopped, the data stays in the outbox"
        if self._config_error != text:
            log.error(
                "%s. Writes to %s stopped; the outbox keeps the data. Fix KILNWATCH_INFLUX_TOKEN, "
                "KILNWATCH_INFLUX_ORG or KILNWATCH_INFLUX_BUCKET (checked again every %.0f s).",
                text,
                mask_urls(t.url),
                self.policy.config_recheck_s,
            )
        self._config_error = text

    async def _watch_depth(self) -> None:
        assert self._outbox is not None
        while True:
            try:
                self.depth = depth = await self._db(self._outbox.depth)
            except sqlite3.Error:
                log.exception("measuring the outbox failed; trying again in %.0f s", _DB_RETRY_S)
                await asyncio.sleep(_DB_RETRY_S)
                continue
            m = self.metrics
            m.outbox_rows.set(depth.rows)
            m.outbox_bytes.set(depth.bytes)
            m.outbox_oldest_age.set(depth.age_s())
            if self.budget is not None:
                reopened = self.budget.update(depth)
                m.outbox_budget_used.set(self.budget.used)
                if reopened and self.on_budget_reopen is not None:
                    await self.on_budget_reopen()
            await asyncio.sleep(self.policy.depth_every_s)
