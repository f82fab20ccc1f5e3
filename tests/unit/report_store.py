"""A local store holding many hours of one demo kiln, for the API's limits: the engine computes a few
hours from the kiln simulator's model at 1 Hz (pollutants, half-hours, ledger and mass balance
included), and those hours are repeated with shifted times to fill months or years."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from analytics.aggregates import HourAggregate
from analytics.batch import NS_PER_S, ReadingBatch
from analytics.engine import EmissionsEngine
from api.context import ApiContext
from collector.health import HealthRegistry
from collector.metrics import Metrics
from collector.store.local import LocalStore
from collector.store.reader import StoreReader
from kilnwatch.config import parse_plant
from kilnwatch.demo import demo_plant
from kilnwatch.plant import Runtime, build_runtime
from simulators.model import SIGNAL_KEYS, KilnModel

HOUR_NS = 3600 * NS_PER_S
KILN = "kiln1"


def demo_runtime(timezone: str = "UTC") -> Runtime:
    plant = demo_plant(opcua_port=4840, mqtt_port=None, kilns=(KILN,))
    plant["plants"][0]["timezone"] = timezone
    plant["plants"][0]["kilns"][0]["accounting"] = {
        "fuels": [{"name": "coal", "signal": f"{KILN}.fuel.rate", "ncv_gj_per_t": 25.8, "ef_t_per_tj": 94.6}]
    }
    return build_runtime(parse_plant(plant, "report store plant"))


def model_hours(rt: Runtime, start_ns: int, hours: int = 2) -> tuple[EmissionsEngine, list[HourAggregate]]:
    """``hours`` closed hours of the simulator's model through the engine (and the engine itself)."""
    engine = EmissionsEngine(rt.table, rt.kilns, rt.engine_params)
    t = start_ns + np.arange(hours * 3600 + 120, dtype=np.int64) * NS_PER_S
    values = KilnModel(KILN, seed=5).sample(t)
    parts = [
        ReadingBatch(
            np.full(len(t), rt.table.index(f"{KILN}.{key}"), np.int32),
            t,
            values[key],
            np.zeros(len(t), np.uint8),
        )
        for key in SIGNAL_KEYS
    ]
    engine.ingest(rt.conditioner.apply(ReadingBatch.concat(parts))[0])
    out = engine.advance_all()
    return engine, [h for h in out.hours if h.start_ns < start_ns + hours * HOUR_NS]


def shifted(h: HourAggregate, start_ns: int, revision: int) -> HourAggregate:
    shift = start_ns - h.start_ns
    halves = [dataclasses.replace(hh, start_ns=hh.start_ns + shift) for hh in h.half_hours]
    return dataclasses.replace(h, start_ns=start_ns, revision=revision, half_hours=halves)


def fill_store(path: Path, rt: Runtime, start_ns: int, n_hours: int) -> EmissionsEngine:
    """``n_hours`` consecutive hours from ``start_ns`` (revision = index % 7, so rows differ)."""
    engine, template = model_hours(rt, start_ns)
    store = LocalStore(path, rt.table.ids)
    chunk = 1000
    for lo in range(0, n_hours, chunk):
        hours = [
            shifted(template[i % len(template)], start_ns + i * HOUR_NS, i % 7)
            for i in range(lo, min(n_hours, lo + chunk))
        ]
        store.write_aggregates(hours=hours)
    store.close()
    return engine


def context(rt: Runtime, engine: EmissionsEngine, path: Path) -> ApiContext:
    return ApiContext(
        table=rt.table,
        kilns=rt.kilns,
        live=engine,
        history=StoreReader(path),
        readiness=HealthRegistry(),
        registry=Metrics().registry,
        method=rt.method(),
        kiln_names=rt.kiln_names,
    )
