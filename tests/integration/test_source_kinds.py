"""A source kind defined in this module, registered for one service, runs through it like the
built-in ones: no edit anywhere else (the plant file names it; the registry builds it)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analytics.batch import ReadingBatch
from collector.sources.registry import SourceContext, SourceKinds, SourcePlan
from collector.sources.supervisor import Availability, ConfigurationError
from kilnwatch.config import ConfigError, parse_plant
from kilnwatch.service import Service
from kilnwatch.settings import Settings
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.integration

KILN = "kilnc"
SIGNALS = {  # key: (unit, quantity, value)
    "flow": ("Nm3/h", "flow", 397_500.0),
    "co2": ("vol %", "co2", 22.0),
    "clinker": ("t/h", "clinker_rate", 208.0),
    "pressure": ("kPa", "absolute_pressure", 101.3),
}


class ConstantSource:
    """A test-only kind: every ``period_s``, one reading of each bound signal, its binding's value."""

    def __init__(self, plan: SourcePlan, context: SourceContext) -> None:
        if plan.spec.get("period_s", 0) <= 0:
            raise ConfigurationError(f"constant source {plan.source_name}: period_s must be > 0")
        self.name = plan.source_name
        self.health = context.health.source(self.name, plan.kind)
        self.status = Availability(f"constant source {self.name}", health=self.health)
        self._sink, self._period = context.sink, float(plan.spec["period_s"])
        self._signals = np.array([i for i, _ in plan.bindings], np.int32)
        self._values = np.array([float(b["value"]) for _, b in plan.bindings])
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        self.status.up()
        while not self._stopped.is_set():
            n = len(self._signals)
            ts = np.full(n, time.time_ns(), np.int64)
            batch = ReadingBatch(self._signals, ts, self._values.copy(), np.zeros(n, np.uint8))
            await self._sink.put(batch, source=self.name)
            self.health.mark_values(int(ts[0]))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self._period)

    async def stop(self) -> None:
        self._stopped.set()


def constant_plant(period_s: float) -> dict[str, Any]:
    def signal(key: str) -> dict[str, Any]:
        unit, quantity, value = SIGNALS[key]
        extra = {"basis": "dry", "conditions": "standard"} if key == "flow" else {}
        extra = {"basis": "dry"} if key == "co2" else extra
        binding = {"source": "c1", "value": value}
        return {
            "id": f"{KILN}.{key}",
            "quantity": quantity,
            "unit": unit,
            **extra,
            "source": {"constant": binding},
        }

    return {
        "plants": [{"id": "p", "kilns": [{"id": KILN, "signals": [signal(k) for k in SIGNALS]}]}],
        "sources": {"constant": {"c1": {"period_s": period_s}}},
    }


def kinds() -> SourceKinds:
    registered = SourceKinds()
    registered.register("constant", ConstantSource)
    return registered


async def test_a_registered_kind_feeds_the_store_and_health(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, port=free_port(), instance_id="kinds")
    service = Service(parse_plant(constant_plant(0.1), "test plant"), settings, kinds=kinds())
    run = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(30):
            await service.started()
            while service.pipeline.stored_readings < 4 * len(SIGNALS):  # noqa: ASYNC110 - a counter
                await asyncio.sleep(0.05)
        health = service.health.sources["constant:c1"]
        assert health.connected and health.kind == "constant" and health.last_event_ns is not None
        stored = {name: service.reader.count_readings(name) for name in service.runtime.table.ids}
        assert set(stored) == {f"{KILN}.{k}" for k in SIGNALS} and min(stored.values()) >= 4
    finally:
        service.stop()
        async with asyncio.timeout(30):
            await run


async def test_an_unknown_kind_or_a_bad_setting_stops_start_up_with_the_source_named(tmp_path: Path) -> None:
    plant = parse_plant(constant_plant(0.1), "test plant")
    with pytest.raises(ConfigurationError, match="unknown source kind 'constant'"):
        Service(plant, Settings(data_dir=tmp_path / "a")).open()
    bad = parse_plant(constant_plant(0.0), "test plant")
    with pytest.raises(ConfigurationError, match="constant source constant:c1: period_s"):
        Service(bad, Settings(data_dir=tmp_path / "b"), kinds=kinds()).open()


def test_a_signal_bound_to_an_undefined_source_of_a_kind_is_a_plant_file_error() -> None:
    data = constant_plant(0.1)
    data["sources"]["constant"] = {"c2": {"period_s": 0.1}}
    with pytest.raises(ConfigError, match=r"its constant source is not defined under sources\.constant"):
        parse_plant(data, "test plant")
