"""The one place where a service's parts are built and wired, each given what it needs when built."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from analytics.batch import ReadingBatch
from collector.file_modes import private_dir
from collector.health import HealthRegistry
from collector.metrics import Metrics
from collector.outputs.historian.writer import InfluxWriter
from collector.pipeline import Pipeline
from collector.sources.registry import SourceContext, SourceKinds, SourcePlan
from collector.sources.supervisor import Supervisor
from collector.store.local import LocalStore
from collector.store.reader import StoreReader

from .config import PlantFile
from .historian import AggregateRows, historian, retention_task
from .installation import installation_id
from .plant import Runtime
from .settings import Settings

Task = Callable[[], Coroutine[Any, Any, None]]


def source_plans(plant: PlantFile, runtime: Runtime) -> list[SourcePlan]:
    """Every source of the plant file with the signals bound to it, built-in kinds first."""
    plans = [SourcePlan("opcua", n, plant.sources.opcua[n], b) for n, b in runtime.opcua_nodes.items()]
    plans += [SourcePlan("mqtt", n, plant.sources.mqtt[n], b) for n, b in runtime.mqtt_bindings.items()]
    other: dict[tuple[str, str], list[tuple[int, Any]]] = {}
    for _, kiln in plant.kilns():
        for s in kiln.signals:
            for kind, binding in (s.source.model_extra or {}).items():
                other.setdefault((kind, binding["source"]), []).append((runtime.table.index(s.id), binding))
    specs = plant.sources.model_extra or {}
    plans += [SourcePlan(kind, name, specs[kind][name], b) for (kind, name), b in other.items()]
    return plans


@dataclass
class Assembly:
    store: LocalStore
    reader: StoreReader
    pipeline: Pipeline
    sources: list[Supervisor]
    writer: InfluxWriter | None
    #: Run for the life of the service besides the sources: retention, the InfluxDB writer.
    tasks: list[Task]
    #: With InfluxDB: the outbox rows of closed aggregates, committed with them.
    aggregate_rows: AggregateRows | None


def assemble(
    settings: Settings,
    runtime: Runtime,
    plans: list[SourcePlan],
    kinds: SourceKinds,
    metrics: Metrics,
    health: HealthRegistry,
    on_batch: Callable[[ReadingBatch], None],
) -> Assembly:
    """Open the store and build the pipeline, the historian and the sources.

    A source whose configuration cannot work raises ConfigurationError here, with its name.
    """
    group = settings.data_group_readable
    private_dir(settings.data_dir, group)
    ids = runtime.table.ids
    hist = historian(settings, runtime.table, health, runtime.companies)
    store = LocalStore(settings.store_path, ids, outbox_formatter=hist.formatter, group_readable=group)
    if runtime.conditioner.corrections is not None:
        store.record_calibrations(ids, runtime.conditioner.corrections)
    reader = StoreReader(settings.store_path)
    pipeline = Pipeline(
        store,
        runtime.conditioner,
        ids,
        metrics,
        maxsize=settings.queue_batches,
        window=runtime.window,
        ack_gate=hist.ack_gate,
        consumers=[on_batch],
    )
    context = SourceContext(
        pipeline,
        health,
        metrics,
        ids,
        settings.instance_id,
        reader.newest_timestamps(),
        installation_id(settings.data_dir, group),
    )
    try:
        sources = [kinds.build(plan, context) for plan in plans]
    except BaseException:
        pipeline.close()
        store.close()
        raise
    writer = hist.writer(pipeline, metrics)
    tasks: list[Task] = [retention_task(settings, pipeline, store)]
    if writer is not None:
        tasks.append(Supervisor(writer).run)
    return Assembly(store, reader, pipeline, sources, writer, tasks, hist.aggregate_rows)
