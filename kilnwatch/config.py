"""The plant file: pydantic models, loading with errors that name the file and the path in it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from analytics import plant_time
from analytics.emissions import CO2_DENSITY_KG_PER_NM3
from analytics.minute_window import MIN_FULL_MINUTES
from api.page_config import AlarmSettings, PageSettings
from api.security.settings import AuthSettings
from collector import plausibility as pl
from collector.secret_values import SECRET_NAME, mask_urls
from collector.sources.mqtt.spec import MqttBrokerSpec
from collector.sources.opcua.spec import OpcUaServerSpec

from .config_base import Strict
from .config_kiln import KilnConfig
from .config_targets import CompanyConfig, FleetConfig, TargetConfig
from .results.config import ResultsConfig

_log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A plant file that cannot be used; ``errors`` holds one line per problem."""

    def __init__(self, path: Path | str, errors: list[str]) -> None:
        self.path = str(path)
        self.errors = errors
        super().__init__("\n".join(f"{self.path}: {e}" for e in errors))


class PlantConfig(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    name: str = ""
    #: The id of the company the plant belongs to (under ``companies`` when those are listed): the
    #: KPI report's grouping and the historian's ``company`` tag (fleet reports).
    company: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="id of the company the plant belongs to; the historian's `company` tag",
    )
    kilns: list[KilnConfig] = Field(min_length=1)
    cementitious_t_per_h: float | None = Field(
        default=None, ge=0, description="mean cementitious product rate [t/h] until manual data comes"
    )
    target: TargetConfig | None = None
    reporting: Literal["eu_mrr", "us_part75", "us_part98"] = Field(
        default="eu_mrr", description="EU MRR Art. 43, or 40 CFR 75 App. F / 40 CFR 98 Eq. C-6 mass rates"
    )
    timezone: str = Field(
        default=plant_time.DEFAULT_ZONE,
        description="the plant's time zone (IANA name, e.g. Asia/Baku): its local days, months and years",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        plant_time.zone(value)
        return value


class SourcesConfig(Strict):
    # Other registered kinds: ``<kind>: {<name>: settings}``, checked by the kind's builder.
    model_config = ConfigDict(extra="allow")
    opcua: dict[str, OpcUaServerSpec] = Field(default_factory=dict)
    mqtt: dict[str, MqttBrokerSpec] = Field(default_factory=dict)


class EngineConfig(Strict):
    grid_s: float = Field(default=1.0, gt=0, le=60, description="sampling grid of the step functions [s]")
    max_hold_s: float = Field(default=60.0, gt=0, description="a value older than this counts as missing [s]")
    lateness_s: float = Field(
        default=10.0, ge=0, description="event-time lateness before a minute closes [s]"
    )
    idle_after_s: float = Field(
        default=10.0, gt=0, description="wall-clock silence before a signal stops holding minutes open [s]"
    )
    silent_grace_s: float = Field(
        default=120.0,
        ge=0,
        description="a kiln with no active signal closes a minute by the wall clock this long after "
        "its end + lateness_s [s]",
    )
    hour_valid_fraction: float = Field(default=0.8, gt=0, le=1, description="MRR Art. 44(2): 80 %")
    co2_density_kg_per_nm3: float = Field(default=CO2_DENSITY_KG_PER_NM3, gt=0)
    trend_minutes: int = Field(
        default=360,
        ge=MIN_FULL_MINUTES,
        le=7 * 1440,
        description="closed minutes each kiln keeps in memory (the trend and /minutes; the newest 60 "
        "with every parameter's statistics, ~7.6 KiB each, the older ones ~0.5 KiB)",
    )


class PlausibilityConfig(Strict):
    """The time window every reading must fall in, whatever its source (collector.plausibility)."""

    max_reading_age_days: float = Field(
        default=pl.DEFAULT_MAX_READING_AGE_S / 86_400,
        gt=0,
        le=3660,
        description="readings older than this before the wall clock are rejected [days]",
    )
    max_future_skew_s: float = Field(
        default=pl.DEFAULT_MAX_FUTURE_SKEW_S,
        ge=0,
        le=86_400,
        description="readings further ahead of the wall clock are rejected [s]",
    )
    commissioning_date: datetime | None = Field(
        default=None, description="readings before this time are rejected (ISO 8601; naive = UTC)"
    )

    @field_validator("commissioning_date")
    @classmethod
    def _utc_in_past(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
        if value > datetime.now(UTC):
            raise ValueError("commissioning_date is in the future: every reading would be rejected")
        return value


class PlantFile(Strict):
    plants: list[PlantConfig] = Field(min_length=1)
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    plausibility: PlausibilityConfig = Field(default_factory=PlausibilityConfig)
    alarms: AlarmSettings = Field(default_factory=AlarmSettings)
    page: PageSettings = Field(default_factory=PageSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    results: ResultsConfig = Field(default_factory=ResultsConfig)
    companies: list[CompanyConfig] = Field(default_factory=list)
    fleet: FleetConfig = Field(default_factory=FleetConfig)

    @model_validator(mode="after")
    def _companies_resolve(self) -> PlantFile:
        ids = [c.id for c in self.companies]
        if len(set(ids)) != len(ids):
            raise ValueError(f"companies: an id is used twice: {ids}")
        if not ids:
            return self
        for i, plant in enumerate(self.plants):
            if plant.company is None:
                raise ValueError(f"plants[{i}].company: plant {plant.id} names no company (known: {ids})")
            if plant.company not in ids:
                raise ValueError(
                    f"plants[{i}].company: {plant.company!r} is not under companies (known: {ids})"
                )
        return self

    @model_validator(mode="after")
    def _one_time_zone_setting(self) -> PlantFile:
        """``page.timezone`` is the deprecated place of the plants' ``timezone``: it fills in the
        plants that name none and must agree with those that do. The page shows the first plant's."""
        if "timezone" in self.page.model_fields_set:
            old = self.page.timezone
            _log.warning("page.timezone is deprecated: write `timezone: %s` under each plant", old)
            for i, plant in enumerate(self.plants):
                if "timezone" not in plant.model_fields_set:
                    plant.timezone = old
                elif plant.timezone != old:
                    raise ValueError(
                        f"page.timezone ({old}) disagrees with plants[{i}].timezone ({plant.timezone}); "
                        "page.timezone is deprecated: keep only the plant's timezone"
                    )
        self.page.timezone = self.plants[0].timezone
        return self

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
                    for kind, binding in (s.source.model_extra or {}).items():
                        named = (self.sources.model_extra or {}).get(kind) or {}
                        if not isinstance(binding, dict) or binding.get("source") not in named:
                            raise ValueError(
                                f"signal {s.id}: its {kind} source is not defined under sources.{kind}"
                            )
        return self

    def kilns(self) -> list[tuple[PlantConfig, KilnConfig]]:
        return [(p, k) for p in self.plants for k in p.kilns]


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
    """One line per error: its path, the reason and the offending value, except that the value of a
    secret field (password, token, ...) is never shown and URLs lose their credentials."""
    lines = []
    for e in err.errors(include_input=True, include_url=False):
        got = e.get("input")
        secret = any(isinstance(part, str) and SECRET_NAME.search(part) for part in e["loc"])
        shown = "" if secret or isinstance(got, dict | list) else f" (got {got!r})"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(mask_urls(f"{_location(tuple(e['loc']))}: {msg}{shown}"))
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
    plant = parse_plant(data, p)
    if plant.auth.tokens_file is not None:  # relative to the plant file
        plant.auth.tokens_file = p.parent / plant.auth.tokens_file
    return plant
