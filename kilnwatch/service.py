"""Service start-up: store, pipeline, engine, sources and API in one asyncio process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import uvicorn

from analytics.aggregates import HourAggregate, MinuteAggregate
from analytics.batch import ReadingBatch
from analytics.engine import EmissionsEngine, EngineOutput
from analytics.hours import HOUR_NS
from analytics.substitution import period_start_ns
from api.app import create_app
from api.context import ApiContext
from api.events import Broadcaster
from collector.health import HealthRegistry
from collector.metrics import Metrics
from collector.pipeline import Pipeline
from collector.store import LocalStore, StoreReader

from .config import PlantFile
from .historian import attach_historian
from .plant import Runtime, build_runtime
from .settings import Settings

log = logging.getLogger("kilnwatch")

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
        # Seed C-bar + 2 sigma substitution and hour revisions from the stored reporting period.
        now = time.time_ns()
        since = period_start_ns(now) - 366 * 86_400 * 10**9
        for kiln in self.runtime.kilns:
            hours = self.reader.hours(kiln.id, since, now + 86_400 * 10**9)
            self.engine.load_history(hours)
            # Minutes of the hour that was open when the last run stopped: that hour closes complete.
            open_from = hours[-1].start_ns + HOUR_NS if hours else now - 2 * HOUR_NS
            self.engine.restore_minutes(kiln.id, self.reader.minutes(kiln.id, open_from, now + HOUR_NS))

    def _on_batch(self, batch: ReadingBatch) -> None:
        now = time.monotonic()
        self.engine.ingest(batch, now)
        self._emit(self.engine.advance(now))

    async def _tick(self) -> None:
        """Close minutes of sources that went silent, and recompute what late data touched."""
        while True:
            await asyncio.sleep(1.0)
            self._emit(self.engine.advance(time.monotonic()))
            await self._late_data()

    def _emit(self, out: EngineOutput) -> None:
        if not out.minutes and not out.hours:
            return
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

    def _sources(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        from collector.opcua import OpcUaSource

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
            from collector.mqtt import MqttSource

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
        """Recompute minutes and hours that late readings touched, from the durable store."""
        for kiln_id, start, end in self.engine.late_ranges():
            members = [self.runtime.table.ids[i] for i in self.engine.kilns[kiln_id].spec.signals]
            lo, hi = self.engine.readings_window(kiln_id, start, end)
            names, batch = await asyncio.to_thread(self.reader.readings, members, lo, hi)
            index = [self.runtime.table.index(n) for n in names]
            batch = ReadingBatch(_remap(batch.signal, index), batch.ts, batch.value, batch.quality)
            # On the store thread: after every minute already queued for the ledger is in it.
            stored = await self.pipeline.on_store_thread(
                self.reader.minutes, kiln_id, start // HOUR_NS * HOUR_NS, -(-end // HOUR_NS) * HOUR_NS
            )
            out = self.engine.recompute(kiln_id, batch, start, end, stored)
            log.info(
                "late data for %s recomputed %d minutes and %d hours",
                kiln_id,
                len(out.minutes),
                len(out.hours),
            )
            self._emit(out)

    # -- running --------------------------------------------------------------------------

    async def run(self) -> None:
        self._open_store()
        attach_historian(self)
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
        tasks += [asyncio.create_task(run(), name="source") for run in self._sources()]
        tasks += [asyncio.create_task(run(), name="extra") for run in self.extra_tasks]
        api = asyncio.create_task(server.serve(), name="api")
        try:
            while not server.started and not api.done():  # noqa: ASYNC110 - uvicorn offers a flag only
                await asyncio.sleep(0.05)
            if server.servers:
                self.bound_port = server.servers[0].sockets[0].getsockname()[1]
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
