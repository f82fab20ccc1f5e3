"""Service start-up: store, pipeline, engine, sources and API in one asyncio process."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import uvicorn

from analytics.aggregates import HourAggregate, MinuteAggregate
from analytics.batch import ReadingBatch
from analytics.engine import EmissionsEngine, EngineOutput
from analytics.hours import HOUR_NS
from analytics.recompute import Recomputation
from analytics.substitution import period_start_ns
from api.app import create_app
from api.context import ApiContext
from api.events import Broadcaster
from collector.health import HealthRegistry
from collector.metrics import Metrics
from collector.pipeline import Pipeline
from collector.store.local import LocalStore, StoreReader

from .config import PlantFile
from .historian import attach_historian
from .plant import Runtime, build_runtime
from .settings import Settings

log = logging.getLogger("kilnwatch")

#: Longest wait for late data to stop arriving before it is recomputed anyway [s].
LATE_SETTLE_MAX_S = 10.0
#: How far back the start-up rebuild looks for hours still open (older data is not rebuilt) [ns].
REBUILD_MAX_AGE_NS = 7 * 86_400 * 10**9
#: The stored readings fed back at start-up are read in slices of this much event time [ns].
REBUILD_SLICE_NS = HOUR_NS
_INT64_MAX = 2**63 - 1

#: Listeners of closed minutes/hours (the SSE stream); called on the event loop.
OutputListener = Callable[[EngineOutput], None]


@dataclass
class Service:
    """One kilnwatch instance. ``await service.run()`` until stopped."""

    plant: PlantFile
    settings: Settings
    runtime: Runtime = field(init=False)
    metrics: Metrics = field(init=False)
    health: HealthRegistry = field(init=False)
    engine: EmissionsEngine = field(init=False)
    store: LocalStore = field(init=False)
    reader: StoreReader = field(init=False)
    pipeline: Pipeline = field(init=False)
    listeners: list[OutputListener] = field(default_factory=list)
    extra_tasks: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    #: Set by the historian: line-protocol outbox rows of aggregates, committed with them.
    aggregate_outbox: (
        Callable[[list[MinuteAggregate], list[HourAggregate]], list[tuple[int, int, bytes]]] | None
    ) = None
    bound_port: int | None = None

    def __post_init__(self) -> None:
        self.runtime = build_runtime(self.plant)
        self.metrics = Metrics()
        self.health = HealthRegistry()
        self.engine = EmissionsEngine(self.runtime.table, self.runtime.kilns, self.runtime.engine_params)
        self._stop = asyncio.Event()
        self._aggregate_writes: set[asyncio.Task[None]] = set()
        self._started = asyncio.Event()
        self.events = Broadcaster()
        self.listeners.append(self._publish_events)
        self._more_due = asyncio.Event()  # advance() stopped at its budget
        # Late data is computed here, one slice at a time; the engine itself stays on the loop.
        self._recompute_thread = ThreadPoolExecutor(1, thread_name_prefix="kilnwatch-recompute")
        self._source_signals = {
            **{
                f"opcua:{n}": np.array([i for i, _ in b], np.int64)
                for n, b in self.runtime.opcua_nodes.items()
            },
            **{
                f"mqtt:{n}": np.array([i for i, _ in b], np.int64)
                for n, b in self.runtime.mqtt_bindings.items()
            },
        }

    # -- wiring ---------------------------------------------------------------------------

    def _open_store(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = LocalStore(self.settings.store_path, self.runtime.table.ids)
        if self.runtime.conditioner.corrections is not None:
            self.store.record_calibrations(self.runtime.table.ids, self.runtime.conditioner.corrections)
        self.reader = StoreReader(self.settings.store_path)
        self.pipeline = Pipeline(
            self.store,
            self.runtime.conditioner,
            self.runtime.table.ids,
            self.metrics,
            maxsize=self.settings.queue_batches,
            window=self.runtime.window,
        )
        self.pipeline.consumers.append(self._on_batch)

    async def _rebuild(self) -> None:
        """Put the engine where the last run left it, by event time, before any new data: the
        reporting period's hours (substitution history, revisions); per kiln, the ledger's minutes
        of the hours still open (after the newest stored hour, at most ``REBUILD_MAX_AGE_NS`` back);
        and every stored reading after them, fed as new data, so their minutes close as the
        watermark passes them. A crash thus loses nothing that was stored."""
        started, fed_s = time.perf_counter(), time.monotonic()
        now = time.time_ns()
        since = period_start_ns(now) - 366 * 86_400 * 10**9
        newest = await asyncio.to_thread(self.reader.newest_timestamps)
        ids = self.runtime.table.ids
        for kiln in self.runtime.kilns:
            hours = await asyncio.to_thread(self.reader.hours, kiln.id, since, now + 86_400 * 10**9)
            self.engine.load_history(hours)
            hour_end = hours[-1].start_ns + HOUR_NS if hours else None
            open_from = max(hour_end or 0, now - REBUILD_MAX_AGE_NS)
            minutes = await asyncio.to_thread(self.reader.minutes, kiln.id, open_from, _INT64_MAX)
            in_reach = hour_end if hour_end is not None and hour_end >= open_from else None
            resume = self.engine.restore_minutes(kiln.id, minutes, in_reach)
            members = [ids[i] for i in kiln.signals]
            if resume is not None:
                lo, _ = self.engine.readings_window(kiln.id, resume, resume)
                self.engine.restore_held(kiln.id, await self._stored(members, lo, resume))
            stored_until = max((newest[n] for n in members if n in newest), default=None)
            # Readings stamped more than a slice ahead of the clock are not fed back.
            end = -1 if stored_until is None else min(stored_until, now + REBUILD_SLICE_NS)
            fed = await self._feed_back(members, open_from if resume is None else resume, end, fed_s)
            log.info(
                "%s rebuilt from the store: %d minutes of the open hour(s), %d readings after them",
                kiln.id,
                len(minutes),
                fed,
            )
        self.engine.restart_arrivals(fed_s, time.monotonic())
        log.info("engine rebuilt from the store in %.2f s", time.perf_counter() - started)

    async def _feed_back(self, members: list[str], start_ns: int, end_ns: int, fed_s: float) -> int:
        """Feed the stored readings of ``members`` from ``start`` to ``end`` (inclusive) to the engine
        as arriving at ``fed_s``, slice by slice in event time (empty stretches skipped), closing what
        the watermark allows after each; returns how many were fed."""
        fed, t = 0, await asyncio.to_thread(self.reader.first_timestamp, members, start_ns)
        while t is not None and t <= end_ns:
            batch = await self._stored(members, t, t + REBUILD_SLICE_NS)
            fed += len(batch)
            self.engine.ingest(batch, fed_s)
            while (out := self.engine.advance(fed_s)).more:  # bounded slices, the loop runs between
                self._emit(out)
                await asyncio.sleep(0)
            self._emit(out)
            if len(self._aggregate_writes) > 2:  # bounded: the ledger keeps up with the closing
                await asyncio.wait(self._aggregate_writes, return_when=asyncio.FIRST_COMPLETED)
            t = await asyncio.to_thread(self.reader.first_timestamp, members, t + REBUILD_SLICE_NS)
        await asyncio.gather(*self._aggregate_writes)
        return fed

    async def _stored(self, members: list[str], start_ns: int, end_ns: int) -> ReadingBatch:
        """Stored readings of ``members`` in [start, end), with the table's signal indexes."""
        names, batch = await asyncio.to_thread(self.reader.readings, members, start_ns, end_ns)
        index = [self.runtime.table.index(n) for n in names]
        return ReadingBatch(_remap(batch.signal, index), batch.ts, batch.value, batch.quality)

    def _on_batch(self, batch: ReadingBatch) -> None:
        now = time.monotonic()
        self.engine.ingest(batch, now)
        self._advance(now)

    def _advance(self, now: float | None = None) -> bool:
        """One bounded slice of closing (by event time, or by the clock for silent kilns); True
        when more is due."""
        now = time.monotonic() if now is None else now
        out = self.engine.advance(now, time.time_ns(), self._comm_loss())
        self._emit(out)
        if out.more:
            self._more_due.set()
        return out.more

    def _comm_loss(self) -> npt.NDArray[np.bool_]:
        """Per signal: True where its source is disconnected (as the health registry knows it)."""
        down = np.zeros(len(self.runtime.table), dtype=bool)
        for name, signals in self._source_signals.items():
            source = self.health.sources.get(name)
            if source is not None and not source.connected:
                down[signals] = True
        return down

    async def _tick(self) -> None:
        """Close minutes slice by slice, yielding to the loop between slices: at once when a slice
        left more, else every second (silent kilns close by the clock)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._more_due.wait(), 1.0)
            self._more_due.clear()
            while self._advance():  # noqa: ASYNC110 - not a wait: the loop runs between slices
                await asyncio.sleep(0)

    async def _recompute_late(self) -> None:
        """Recompute once late data has stopped arriving for half a second (a redelivered queue
        makes one revision, not one per second of its delivery), or after LATE_SETTLE_MAX_S."""
        seen, waited = 0, 0.0
        while True:
            await asyncio.sleep(0.5)
            count = self.engine.late_readings
            if count != seen and waited < LATE_SETTLE_MAX_S:
                seen, waited = count, waited + 0.5
                continue
            seen, waited = count, 0.0
            await self._late_data()

    def _emit(self, out: EngineOutput) -> asyncio.Future[None] | None:
        """Write the closed minutes and hours and tell the listeners; returns the write."""
        if not out.minutes and not out.hours:
            return None
        for m in out.minutes:
            self.metrics.minutes_closed.labels(m.kiln).inc()
        outbox = self.aggregate_outbox(out.minutes, out.hours) if self.aggregate_outbox else []
        task = asyncio.ensure_future(
            self.pipeline.on_store_thread(self.store.write_aggregates, out.minutes, out.hours, outbox)
        )
        self._aggregate_writes.add(task)
        task.add_done_callback(self._aggregate_writes.discard)
        for listener in self.listeners:
            try:
                listener(out)
            except Exception:
                log.exception("a listener of closed minutes failed")
        return task

    def _sources(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        from collector.sources.opcua.source import OpcUaSource

        runs: list[Callable[[], Coroutine[Any, Any, None]]] = []
        newest = self.reader.newest_timestamps()  # where each OPC UA node's history read resumes
        ids = self.runtime.table.ids
        for name, nodes in self.runtime.opcua_nodes.items():
            spec = self.plant.sources.opcua[name]
            opcua = OpcUaSource(
                name=f"opcua:{name}",
                spec=spec,
                nodes=[(i, b.node) for i, b in nodes],
                sink=self.pipeline,
                health=self.health.source(f"opcua:{name}", "opcua"),
                metrics=self.metrics,
                instance_id=self.settings.instance_id,
                signal_names=self.runtime.table.ids,
                resume_from_ns={i: newest[ids[i]] for i, _ in nodes if ids[i] in newest},
            )
            runs.append(opcua.run)
        for name, bindings in self.runtime.mqtt_bindings.items():
            from collector.sources.mqtt.source import MqttSource

            mqtt = MqttSource(
                name=f"mqtt:{name}",
                spec=self.plant.sources.mqtt[name],
                bindings=bindings,
                sink=self.pipeline,
                health=self.health.source(f"mqtt:{name}", "mqtt"),
                metrics=self.metrics,
                signal_names=self.runtime.table.ids,
                instance_id=self.settings.instance_id,
            )
            runs.append(mqtt.run)
        return runs

    def _publish_events(self, out: EngineOutput) -> None:
        for m in out.minutes:
            self.events.publish(
                {"type": "minute", "kiln": m.kiln, "start_ns": m.start_ns, "revision": m.revision}
            )
        for h in out.hours:
            self.events.publish(
                {"type": "hour", "kiln": h.kiln, "start_ns": h.start_ns, "revision": h.revision}
            )

    def api_context(self) -> ApiContext:
        return ApiContext(
            table=self.runtime.table,
            kilns=self.runtime.kilns,
            live=self.engine,
            history=self.reader,
            readiness=self.health,
            registry=self.metrics.registry,
            method=self.runtime.method(),
            kiln_names=self.runtime.kiln_names,
            events=self.events,
            sources=self.health,
            alarms=self.plant.alarms,
            page=self.plant.page,
        )

    async def _late_data(self) -> None:
        """Recompute minutes and hours that late readings touched, from the durable store, one
        slice (an hour at most) at a time: readings and computation on the recompute thread,
        the engine's state changed only here on the loop, so API and collectors stay live."""
        loop = asyncio.get_running_loop()
        for kiln_id, start, end in self.engine.late_ranges():
            members = [self.runtime.table.ids[i] for i in self.engine.kilns[kiln_id].spec.signals]
            job = self.engine.recomputation(kiln_id, start, end)
            n_minutes = n_hours = 0
            while not job.done:
                minutes = await loop.run_in_executor(
                    self._recompute_thread, self._compute_slice, job, members
                )
                if not minutes:
                    continue
                # On the store thread: after every minute already queued for the ledger is in it.
                stored = await self.pipeline.on_store_thread(
                    self.reader.minutes,
                    kiln_id,
                    minutes[0].start_ns // HOUR_NS * HOUR_NS,
                    (minutes[-1].start_ns // HOUR_NS + 1) * HOUR_NS,
                )
                out = self.engine.apply_recomputed(job, minutes, stored)
                n_minutes, n_hours = n_minutes + len(out.minutes), n_hours + len(out.hours)
                write = self._emit(out)
                if write is not None:  # one slice's aggregates in the store before the next is computed
                    await asyncio.wait([write])
            log.info("late data for %s recomputed %d minutes and %d hours", kiln_id, n_minutes, n_hours)

    def _compute_slice(self, job: Recomputation, members: Sequence[str]) -> list[MinuteAggregate]:
        """On the recompute thread: the next slice's stored readings, computed."""
        lo, hi = job.readings_window()
        names, batch = self.reader.readings(members, lo, hi)
        index = [self.runtime.table.index(n) for n in names]
        return job.compute(ReadingBatch(_remap(batch.signal, index), batch.ts, batch.value, batch.quality))

    # -- running --------------------------------------------------------------------------

    async def run(self) -> None:
        self._open_store()
        attach_historian(self)
        await self._rebuild()  # before the sources start: new data lands on the rebuilt engine
        config = uvicorn.Config(
            create_app(self.api_context()),
            host=self.settings.host,
            port=self.settings.port,
            log_level=self.settings.log_level.lower(),
            lifespan="on",  # runs the page's alarm watch without waiting for a request
            timeout_graceful_shutdown=5,
            access_log=False,
        )
        server = _ApiServer(config)
        tasks = [asyncio.create_task(self.pipeline.run(), name="pipeline")]
        tasks.append(asyncio.create_task(self._tick(), name="engine-tick"))
        tasks.append(asyncio.create_task(self._recompute_late(), name="late-data"))
        tasks += [asyncio.create_task(run(), name="source") for run in self._sources()]
        tasks += [asyncio.create_task(run(), name="extra") for run in self.extra_tasks]
        api = asyncio.create_task(server.serve(), name="api")
        try:
            while not server.started and not api.done():  # noqa: ASYNC110 - uvicorn offers a flag only
                await asyncio.sleep(0.05)
            if server.servers:
                self.bound_port = server.servers[0].sockets[0].getsockname()[1]
            # What start-up built lives as long as the process: out of the collector's full passes,
            # which would otherwise walk it all and stop the loop for 100s of ms each time (a
            # gc.collect() first would stop it once for as long, at start-up).
            gc.freeze()
            self._started.set()
            stop = asyncio.create_task(self._stop.wait())
            await asyncio.wait([api, stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                if t.done() and not t.cancelled() and t.exception():
                    log.error("task %s failed", t.get_name(), exc_info=t.exception())
        finally:
            await self._shutdown(server, api, tasks)

    async def _shutdown(
        self, server: uvicorn.Server, api: asyncio.Task[None], tasks: list[asyncio.Task[None]]
    ) -> None:
        pipeline_task = tasks[0]
        for t in tasks[1:]:
            t.cancel()
        await asyncio.gather(*tasks[1:], return_exceptions=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.pipeline.drain(), timeout=10)
        pipeline_task.cancel()
        await asyncio.gather(pipeline_task, return_exceptions=True)
        # A slice being computed ends within its bound; the queued ones are dropped.
        await asyncio.to_thread(self._recompute_thread.shutdown, wait=True, cancel_futures=True)
        if self._aggregate_writes:
            await asyncio.gather(*self._aggregate_writes, return_exceptions=True)
        self.events.close()
        server.should_exit = True
        await asyncio.gather(api, return_exceptions=True)
        self.pipeline.close()
        self.store.close()
        log.info("kilnwatch stopped; %d readings stored this run", self.pipeline.stored_readings)

    async def started(self) -> None:
        await self._started.wait()

    def stop(self) -> None:
        self._stop.set()


def _remap(local: npt.NDArray[np.int32], index: list[int]) -> npt.NDArray[np.int32]:
    return np.asarray(index, dtype=np.int32)[local] if len(local) else local.astype(np.int32)


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns SIGINT/SIGTERM."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()
