"""The service: engine, closing by event time and by the clock, start-up rebuild and the API in one
asyncio process; its store, pipeline, historian and sources come from :mod:`kilnwatch.assembly`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import uvicorn
from prometheus_client import Counter

from analytics.batch import ReadingBatch
from analytics.engine import EmissionsEngine, EngineOutput
from analytics.hours import HOUR_NS
from analytics.overrides import KilnOverrides, StoppedRanges
from analytics.substitution import period_start_ns
from api.app import create_app
from api.context import ApiContext
from api.events import Broadcaster
from collector.health import HealthRegistry
from collector.metrics import Metrics
from collector.outputs.historian.writer import InfluxWriter
from collector.pipeline import Pipeline
from collector.sources.registry import SourceKinds
from collector.sources.supervisor import Supervisor
from collector.store.alarm_state import AlarmStateStore
from collector.store.annotations import AnnotationStore
from collector.store.audit import AuditTrail
from collector.store.local import LocalStore
from collector.store.manual_data import ManualDataStore
from collector.store.reader import StoreReader

from .access import build_auth, log_policy
from .assembly import Assembly, assemble, source_plans
from .config import PlantFile
from .config_audit import plant_digest, record_config_loaded
from .kpi_setup import kpi_setup
from .late_data import LateData, stored_readings
from .plant import Runtime, build_runtime
from .results.wiring import ResultsServers, results_servers
from .running_minutes import RunningMinutes
from .settings import Settings

log = logging.getLogger("kilnwatch")

#: How far back the start-up rebuild looks for hours still open (older data is not rebuilt) [ns].
REBUILD_MAX_AGE_NS = 7 * 86_400 * 10**9
#: The stored readings fed back at start-up are read in slices of this much event time [ns].
REBUILD_SLICE_NS = HOUR_NS
_INT64_MAX = 2**63 - 1

#: Listeners of closed minutes/hours (the SSE stream); called on the event loop.
OutputListener = Callable[[EngineOutput], None]


@dataclass
class Service:
    """One kilnwatch instance. ``await service.run()`` until stopped.

    ``kinds``: the source kinds the plant file may use (the built-in ones unless given).
    ``open()`` (or ``run()``) builds the store, pipeline, historian and sources.
    """

    plant: PlantFile
    settings: Settings
    kinds: SourceKinds = field(default_factory=SourceKinds)
    runtime: Runtime = field(init=False)
    metrics: Metrics = field(init=False)
    health: HealthRegistry = field(init=False)
    engine: EmissionsEngine = field(init=False)
    store: LocalStore = field(init=False)
    reader: StoreReader = field(init=False)
    audit: AuditTrail = field(init=False)
    annotations: AnnotationStore = field(init=False)
    manual: ManualDataStore = field(init=False)
    pipeline: Pipeline = field(init=False)
    sources: list[Supervisor] = field(init=False)
    writer: InfluxWriter | None = field(init=False)
    late_data: LateData = field(init=False)
    listeners: list[OutputListener] = field(default_factory=list)
    extra_tasks: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    bound_port: int | None = None
    #: The plant file read (for the ``config.loaded`` audit row); None: a plant built in code.
    plant_path: Path | None = None
    alarm_state: AlarmStateStore = field(init=False)
    results: ResultsServers | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.runtime = build_runtime(self.plant)
        self.auth = build_auth(self.plant.auth, self.settings)  # AccessError: may not serve like this
        self.metrics = Metrics()
        self.health = HealthRegistry()
        self.engine = EmissionsEngine(self.runtime.table, self.runtime.kilns, self.runtime.engine_params)
        self._stop = asyncio.Event()
        self._aggregate_writes: set[asyncio.Task[None]] = set()
        self._started = asyncio.Event()
        # room for a minute's burst of every kiln (minute, running minute and hour events) on top
        dropped = Counter(
            "kilnwatch_stream_events_dropped_total",
            "Events a slow /api/v1/stream client lost (its queue was full), by event type",
            ["type"],
            registry=self.metrics.registry,
        )
        self.events = Broadcaster(max(256, 8 * len(self.runtime.kilns)), lambda t: dropped.labels(t).inc())
        self.listeners.append(self._publish_events)
        self.running_minutes = RunningMinutes(self.engine, self.events)  # provisional, never stored
        self.extra_tasks.append(self.running_minutes.run)
        self._more_due = asyncio.Event()  # advance() stopped at its budget
        self._plans = source_plans(self.plant, self.runtime)
        self._source_signals = {
            plan.source_name: np.array([i for i, _ in plan.bindings], np.int64) for plan in self._plans
        }
        self._parts: Assembly | None = None

    def open(self) -> None:
        """Open the store and build the pipeline, the historian and the sources (once); a source
        whose configuration cannot work raises ConfigurationError here."""
        if self._parts is not None:
            return
        parts = assemble(
            self.settings, self.runtime, self._plans, self.kinds, self.metrics, self.health, self._on_batch
        )
        self.store, self.reader, self.pipeline = parts.store, parts.reader, parts.pipeline
        self.audit = AuditTrail(self.settings.store_path)
        record_config_loaded(self.audit, *plant_digest(self.plant, self.plant_path))
        self.alarm_state = AlarmStateStore(self.settings.store_path)
        plants = {k.id: k.plant for k in self.runtime.kilns}
        export = parts.aggregate_rows is not None  # with InfluxDB: annotations go into the outbox too
        self.annotations = AnnotationStore(self.settings.store_path, plants, export=export)
        self.manual = ManualDataStore(self.settings.store_path)
        for kiln in self.runtime.kilns:
            self.overrides_changed(kiln.id, 0, None)  # nothing is closed yet: nothing recomputed
        self.sources, self.writer = parts.sources, parts.writer
        self.late_data = LateData(
            self.engine,
            self.runtime.table,
            self.reader,
            self.pipeline,
            self.emit,
            self.metrics,
            self.runtime.window.max_age_ns,
        )
        self._parts = parts

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
                self.emit(out)
                await asyncio.sleep(0)
            self.emit(out)
            if len(self._aggregate_writes) > 2:  # bounded: the ledger keeps up with the closing
                await asyncio.wait(self._aggregate_writes, return_when=asyncio.FIRST_COMPLETED)
            t = await asyncio.to_thread(self.reader.first_timestamp, members, t + REBUILD_SLICE_NS)
        await asyncio.gather(*self._aggregate_writes)
        return fed

    async def _stored(self, members: list[str], start_ns: int, end_ns: int) -> ReadingBatch:
        """Stored readings of ``members`` in [start, end), with the table's signal indexes."""
        return await asyncio.to_thread(
            stored_readings, self.reader, self.runtime.table, members, start_ns, end_ns
        )

    def _on_batch(self, batch: ReadingBatch) -> None:
        now = time.monotonic()
        self.engine.ingest(batch, now)
        self.late_data.count()
        self._advance(now)

    def _advance(self, now: float | None = None) -> bool:
        """One bounded slice of closing (by event time, or by the clock for silent kilns); True
        when more is due."""
        now = time.monotonic() if now is None else now
        out = self.engine.advance(now, time.time_ns(), self._comm_loss())
        self.emit(out)
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

    def emit(self, out: EngineOutput) -> asyncio.Future[None] | None:
        """Write closed (or recomputed) minutes and hours, with their outbox rows when InfluxDB is
        configured, and tell the listeners; returns the write."""
        if not out.minutes and not out.hours:
            return None
        for m in out.minutes:
            self.metrics.minutes_closed.labels(m.kiln).inc()
        rows = self._parts.aggregate_rows if self._parts is not None else None
        outbox = rows(out.minutes, out.hours) if rows is not None else []
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

    def overrides_changed(self, kiln_id: str, start_ns: int, end_ns: int | None) -> None:
        """Give the engine the kiln's current stops and manual values; the closed hours of
        [start, end) (None: up to now) are recomputed by the late-data task (revision + 1)."""
        overrides = KilnOverrides(
            StoppedRanges.of(self.annotations.stopped_ranges(kiln_id)), self.manual.values(kiln_id)
        )
        self.engine.set_overrides(kiln_id, overrides, start_ns, end_ns)

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
            auth=self.auth,
            audit=self.audit,
            alarm_store=self.alarm_state,
            annotations=self.annotations,
            manual=self.manual,
            overrides_changed=self.overrides_changed,
            kpi=kpi_setup(self.plant),
            provisional=self.running_minutes,
        )

    # -- running --------------------------------------------------------------------------

    async def run(self) -> None:
        self.open()
        assert self._parts is not None
        await self._rebuild()  # before the sources start: new data lands on the rebuilt engine
        config = uvicorn.Config(
            create_app(self.api_context()),
            host=self.settings.host,
            port=self.settings.port,
            log_level=self.settings.log_level.lower(),
            lifespan="on",  # runs the page's alarm watch without waiting for a request
            timeout_graceful_shutdown=5,
            access_log=False,
            ssl_certfile=self.settings.tls_cert,
            ssl_keyfile=self.settings.tls_key,
        )
        log_policy(self.auth, self.settings)
        server = _ApiServer(config)
        tasks = [asyncio.create_task(self.pipeline.run(), name="pipeline")]
        tasks.append(asyncio.create_task(self._tick(), name="engine-tick"))
        tasks.append(asyncio.create_task(self.late_data.run(), name="late-data"))
        tasks += [asyncio.create_task(source.run(), name=source.name) for source in self.sources]
        tasks += [asyncio.create_task(run(), name="extra") for run in self._parts.tasks + self.extra_tasks]
        self.results = results_servers(self)
        tasks += [asyncio.create_task(self.results.run(), name="results")] if self.results else []
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
        # Sources first hand nothing new on, the pipeline commits what it holds and its acks go out
        # while the links are still open; only then are the sources stopped.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(s.quiesce() for s in self.sources)), timeout=5)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.pipeline.drain(), timeout=10)
        # The sources disconnect before the other tasks end: those may hold what a source talks to
        # (the demo's broker and simulators).
        names = {s.name for s in self.sources}
        sources = [t for t in tasks[1:] if t.get_name() in names]
        for t in sources:
            t.cancel()
        await asyncio.gather(*sources, return_exceptions=True)
        for t in tasks[1:]:
            t.cancel()
        await asyncio.gather(*tasks[1:], return_exceptions=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.pipeline.drain(), timeout=10)
        pipeline_task.cancel()
        await asyncio.gather(pipeline_task, return_exceptions=True)
        await self.late_data.close()
        if self._aggregate_writes:
            await asyncio.gather(*self._aggregate_writes, return_exceptions=True)
        self.events.close()
        server.should_exit = True
        await asyncio.gather(api, return_exceptions=True)
        self.pipeline.close()
        self.store.close()
        self.audit.close()
        self.alarm_state.close()
        self.annotations.close()
        self.manual.close()
        log.info("kilnwatch stopped; %d readings stored this run", self.pipeline.stored_readings)

    async def started(self) -> None:
        await self._started.wait()

    def stop(self) -> None:
        self._stop.set()


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns SIGINT/SIGTERM."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()
