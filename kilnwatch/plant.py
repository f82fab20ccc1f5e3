"""From a validated plant file to the runtime pieces: signal table, kilns, conditioning, bindings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analytics.engine import EngineParams
from analytics.signals import KilnSpec, SignalInfo, SignalTable
from analytics.units import CANONICAL_UNIT, conversion
from collector.conditioning import Conditioner
from collector.mqtt_spec import MqttBinding
from collector.opcua_spec import OpcUaBinding

from .config import PlantFile


@dataclass
class Runtime:
    table: SignalTable
    kilns: list[KilnSpec]
    kiln_names: dict[str, str]
    conditioner: Conditioner
    engine_params: EngineParams
    opcua_nodes: dict[str, list[tuple[int, OpcUaBinding]]] = field(default_factory=dict)
    mqtt_bindings: dict[str, list[tuple[int, MqttBinding]]] = field(default_factory=dict)

    def method(self) -> dict[str, Any]:
        """The rules behind the numbers, reported with every API response."""
        p = self.engine_params
        return {
            "co2_density_kg_per_nm3": p.co2_density_kg_per_nm3,
            "reference_conditions": {"temperature_K": 273.15, "pressure_kPa": 101.325, "basis": "dry"},
            "hourly_co2": "hourly mean dry CO2 x hourly mean normal dry flow (EU MRR 2018/2066 Art. 43/44)",
            "valid_fraction": p.valid_fraction,
            "grid_s": p.grid_s,
            "max_hold_s": p.max_hold_s,
            "lateness_s": p.lateness_s,
            "intensity": "sum CO2 / sum clinker over the same window",
        }


def build_runtime(plant: PlantFile) -> Runtime:
    infos: list[SignalInfo] = []
    scale: list[float] = []
    offset: list[float] = []
    opcua: dict[str, list[tuple[int, OpcUaBinding]]] = {}
    mqtt: dict[str, list[tuple[int, MqttBinding]]] = {}
    names: dict[str, str] = {}
    for p, k in plant.kilns():
        names[k.id] = k.name or k.id
        for s in k.signals:
            lo, hi = s.range if s.range is not None else (-np.inf, np.inf)
            a, b = conversion(s.quantity, s.unit)
            idx = len(infos)
            infos.append(
                SignalInfo(
                    id=s.id,
                    plant=p.id,
                    kiln=k.id,
                    quantity=s.quantity,
                    unit=CANONICAL_UNIT[s.quantity]
                    if s.quantity.value != "flow"
                    else _flow_unit(s.conditions),
                    moisture_basis=s.basis,
                    conditions=s.conditions,
                    valid_min=lo * a + b,
                    valid_max=hi * a + b,
                )
            )
            scale.append(a)
            offset.append(b)
            if s.source.opcua is not None:
                opcua.setdefault(s.source.opcua.server, []).append((idx, s.source.opcua))
            if s.source.mqtt is not None:
                mqtt.setdefault(s.source.mqtt.broker, []).append((idx, s.source.mqtt))
    table = SignalTable(infos)
    kilns = [KilnSpec.from_table(table, k.id, k.name or k.id, p.id) for p, k in plant.kilns()]
    e = plant.engine
    params = EngineParams(
        grid_s=e.grid_s,
        max_hold_s=e.max_hold_s,
        lateness_s=e.lateness_s,
        valid_fraction=e.hour_valid_fraction,
        co2_density_kg_per_nm3=e.co2_density_kg_per_nm3,
    )
    conditioner = Conditioner(scale, offset, table.valid_min, table.valid_max)
    return Runtime(table, kilns, names, conditioner, params, opcua, mqtt)


def _flow_unit(conditions: str | None) -> str:
    return "Nm3/h" if conditions == "standard" else "m3/h"
