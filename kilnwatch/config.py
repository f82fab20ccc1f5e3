"""The plant file: pydantic models, loading with errors that name the file and the path in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from analytics.emissions import CO2_DENSITY_KG_PER_NM3
from analytics.signals import Quantity
from analytics.units import conversion
from collector.mqtt_spec import MqttBinding, MqttBrokerSpec
from collector.opcua_spec import OpcUaBinding, OpcUaServerSpec

DEMO_PLANT = Path(__file__).with_name("demo_plant.yaml")


class ConfigError(Exception):
    """A plant file that cannot be used; ``errors`` holds one line per problem."""

    def __init__(self, path: Path | str, errors: list[str]) -> None:
        self.path = str(path)
        self.errors = errors
        super().__init__("\n".join(f"{self.path}: {e}" for e in errors))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignalSource(_Strict):
    opcua: OpcUaBinding | None = None
    mqtt: MqttBinding | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SignalSource:
        if (self.opcua is None) == (self.mqtt is None):
            raise ValueError("a source needs exactly one of 'opcua' or 'mqtt'")
        return self


class SignalConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    quantity: Quantity
    unit: str = ""
    basis: Literal["wet", "dry"] | None = Field(default=None, description="moisture basis of gas values")
    conditions: Literal["actual", "standard"] | None = Field(default=None, description="flow conditions")
    range: tuple[float, float] | None = Field(default=None, description="valid range [min, max]")
    source: SignalSource

    @model_validator(mode="after")
    def _unit_fits_quantity(self) -> SignalConfig:
        conversion(self.quantity, self.unit)
        if self.quantity is Quantity.FLOW and self.conditions is None:
            self.conditions = "standard" if self.unit.lower().startswith("nm3") else "actual"
        if self.quantity in (Quantity.FLOW, Quantity.CO2, Quantity.O2) and self.basis is None:
            self.basis = "wet" if self.quantity is Quantity.FLOW else "dry"
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"range minimum {self.range[0]} is above maximum {self.range[1]}")
        return self


class KilnConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    name: str = ""
    signals: list[SignalConfig]

    @model_validator(mode="after")
    def _roles(self) -> KilnConfig:
        seen: dict[Quantity, str] = {}
        for s in self.signals:
            if s.quantity in seen and s.quantity in _SINGLE:
                raise ValueError(f"two {s.quantity.value} signals: {seen[s.quantity]} and {s.id}")
            seen[s.quantity] = s.id
        missing = [q.value for q in _REQUIRED if q not in seen]
        if missing:
            raise ValueError(f"kiln {self.id} lacks signals for: {', '.join(missing)}")
        if Quantity.ABSOLUTE_PRESSURE not in seen and Quantity.BAROMETRIC_PRESSURE not in seen:
            raise ValueError(f"kiln {self.id} needs a barometric_pressure or an absolute_pressure signal")
        return self


class PlantConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    name: str = ""
    kilns: list[KilnConfig] = Field(min_length=1)


class SourcesConfig(_Strict):
    opcua: dict[str, OpcUaServerSpec] = Field(default_factory=dict)
    mqtt: dict[str, MqttBrokerSpec] = Field(default_factory=dict)


class EngineConfig(_Strict):
    grid_s: float = Field(default=1.0, gt=0, le=60, description="sampling grid of the step functions [s]")
    max_hold_s: float = Field(default=60.0, gt=0, description="a value older than this counts as missing [s]")
    lateness_s: float = Field(
        default=10.0, ge=0, description="event-time lateness before a minute closes [s]"
    )
    hour_valid_fraction: float = Field(default=0.8, gt=0, le=1, description="MRR Art. 44(2): 80 %")
    co2_density_kg_per_nm3: float = Field(default=CO2_DENSITY_KG_PER_NM3, gt=0)


class PlantFile(_Strict):
    plants: list[PlantConfig] = Field(min_length=1)
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)

    @model_validator(mode="after")
    def _bindings_resolve(self) -> PlantFile:
        ids: set[str] = set()
        for plant in self.plants:
            for kiln in plant.kilns:
                for s in kiln.signals:
                    if s.id in ids:
                        raise ValueError(f"signal id {s.id} is used twice")
                    ids.add(s.id)
                    if s.source.opcua and s.source.opcua.server not in self.sources.opcua:
                        raise ValueError(
                            f"signal {s.id}: OPC UA server {s.source.opcua.server!r} is not defined "
                            f"under sources.opcua (defined: {sorted(self.sources.opcua)})"
                        )
                    if s.source.mqtt and s.source.mqtt.broker not in self.sources.mqtt:
                        raise ValueError(
                            f"signal {s.id}: MQTT broker {s.source.mqtt.broker!r} is not defined "
                            f"under sources.mqtt (defined: {sorted(self.sources.mqtt)})"
                        )
        return self

    def kilns(self) -> list[tuple[PlantConfig, KilnConfig]]:
        return [(p, k) for p in self.plants for k in p.kilns]


_SINGLE = frozenset(
    {
        Quantity.FLOW,
        Quantity.TEMPERATURE,
        Quantity.STATIC_PRESSURE,
        Quantity.BAROMETRIC_PRESSURE,
        Quantity.ABSOLUTE_PRESSURE,
        Quantity.H2O,
        Quantity.CO2,
        Quantity.O2,
        Quantity.CO,
        Quantity.CLINKER_RATE,
    }
)
_REQUIRED = (Quantity.FLOW, Quantity.CO2, Quantity.CLINKER_RATE)


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def format_validation_error(err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors():
        got = e.get("input")
        shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{_location(tuple(e['loc']))}: {msg}{shown}")
    return lines


def parse_plant(data: Any, path: Path | str = "<plant>") -> PlantFile:
    try:
        return PlantFile.model_validate(data)
    except ValidationError as err:
        raise ConfigError(path, format_validation_error(err)) from err


def load_plant_file(path: Path | str) -> PlantFile:
    """Read and validate a plant file; ConfigError names the file and each path that is wrong."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(p, [f"cannot read the file: {err.strerror}"]) from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(p, [f"{where}not valid YAML: {getattr(err, 'problem', err)}"]) from err
    if not isinstance(data, dict):
        raise ConfigError(p, ["(top level): expected a mapping with 'plants' and 'sources'"])
    return parse_plant(data, p)
