"""The plant file: pydantic models, loading with errors that name the file and the path in it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from analytics import crosscheck as xc
from analytics import plant_time
from analytics import pollutants as pol
from analytics import rules as kr
from analytics.corrections import O2_REFERENCE_CEMENT_PCT
from analytics.emissions import CO2_DENSITY_KG_PER_NM3
from analytics.minute_window import MIN_FULL_MINUTES
from analytics.signals import SINGLE_ROLE_QUANTITIES, Quantity
from analytics.units import conversion
from api.page_config import AlarmSettings, PageSettings
from api.security.settings import AuthSettings
from collector import plausibility as pl
from collector.secret_values import SECRET_NAME, mask_urls
from collector.sources.mqtt.spec import MqttBinding, MqttBrokerSpec
from collector.sources.opcua.spec import OpcUaBinding, OpcUaServerSpec

from .results.config import ResultsConfig

_log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A plant file that cannot be used; ``errors`` holds one line per problem."""

    def __init__(self, path: Path | str, errors: list[str]) -> None:
        self.path = str(path)
        self.errors = errors
        super().__init__("\n".join(f"{self.path}: {e}" for e in errors))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignalSource(_Strict):
    # Kinds registered besides these two (collector.sources.registry): ``<kind>: {source: <name>, ...}``.
    model_config = ConfigDict(extra="allow")
    opcua: OpcUaBinding | None = None
    mqtt: MqttBinding | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SignalSource:
        kinds = [k for k in ("opcua", "mqtt") if getattr(self, k) is not None] + list(self.model_extra or {})
        if len(kinds) != 1:
            raise ValueError("a source needs exactly one of 'opcua', 'mqtt' or another registered kind")
        return self


class Qal2Calibration(_Strict):
    """EN 14181 QAL2 calibration function y = a + b*x, in the signal's configured unit (method.md § 3.3)."""

    a: float = Field(default=0.0, description="intercept [configured unit]")
    b: float = Field(default=1.0, description="slope [-]")
    valid_min: float | None = Field(default=None, description="valid calibration range, lower end")
    valid_max: float | None = Field(default=None, description="valid calibration range, upper end")
    valid_from: datetime | None = Field(default=None, description="in force from (ISO 8601; naive = UTC)")
    valid_to: datetime | None = Field(default=None, description="in force until, exclusive")
    invalidate_outside: bool = Field(
        default=False,
        description="values outside the valid calibration range are invalid (the permit decides)",
    )

    @field_validator("valid_from", "valid_to")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @model_validator(mode="after")
    def _ordered(self) -> Qal2Calibration:
        if self.valid_min is not None and self.valid_max is not None and self.valid_min > self.valid_max:
            raise ValueError(f"valid_min {self.valid_min} is above valid_max {self.valid_max}")
        if self.valid_from and self.valid_to and self.valid_from >= self.valid_to:
            raise ValueError("valid_from must be before valid_to")
        return self


class LoopScaling(_Strict):
    """The source delivers a 4-20 mA loop current [mA]; lo and hi are the range in the configured unit."""

    input: Literal["4-20mA"] = "4-20mA"
    lo: float
    hi: float

    @model_validator(mode="after")
    def _span(self) -> LoopScaling:
        if self.lo == self.hi:
            raise ValueError("lo and hi of a 4-20 mA range must differ")
        return self


class SignalConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    quantity: Quantity
    unit: str = ""
    basis: Literal["wet", "dry"] | None = Field(default=None, description="moisture basis of gas values")
    conditions: Literal["actual", "standard"] | None = Field(default=None, description="flow conditions")
    range: tuple[float, float] | None = Field(default=None, description="valid range [min, max]")
    source: SignalSource
    scaling: LoopScaling | None = Field(default=None, description="4-20 mA input with NAMUR NE 43 bands")
    calibration: Qal2Calibration | None = Field(default=None, description="EN 14181 QAL2 function")
    stuck_check: bool | None = Field(
        default=None, description="check for stuck values (default: analysers, flow and temperature)"
    )

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


class PollutantLimit(_Strict):
    """Daily ELV [mg/Nm3 at the reference O2, dry] and CI fraction; unset: IED Annex VI defaults."""

    elv_mg_per_nm3: float | None = Field(default=None, gt=0)
    ci_fraction: float | None = Field(default=None, ge=0, le=1)


class CompositionConfig(_Strict):
    """Clinker and raw-meal composition for the mass balance (WE10; docs/method.md § 9.1)."""

    cao_pct: float | None = Field(default=None, ge=0, le=100, description="clinker CaO [wt %]")
    mgo_pct: float | None = Field(default=None, ge=0, le=100, description="clinker MgO [wt %]")
    cao_non_carbonate_pct: float = Field(default=0.0, ge=0, le=100)
    mgo_non_carbonate_pct: float = Field(default=0.0, ge=0, le=100)
    ef_clinker_t_per_t: float | None = Field(
        default=None, gt=0, description="calcination EF [t CO2/t clinker]; default: from CaO/MgO, else 0.525"
    )
    raw_meal_per_clinker: float = Field(default=xc.RAW_MEAL_PER_CLINKER_DEFAULT, gt=0)
    toc_pct: float = Field(default=xc.TOC_DEFAULT_PCT, ge=0, le=100, description="raw-meal TOC [wt %]")

    @model_validator(mode="after")
    def _both_oxides(self) -> CompositionConfig:
        if (self.cao_pct is None) != (self.mgo_pct is None):
            raise ValueError("give both cao_pct and mgo_pct, or neither")
        return self


class FuelConfig(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str
    signal: str = Field(description="id of the kiln's fuel_rate signal [t/h]")
    ncv_gj_per_t: float = Field(gt=0)
    ef_t_per_tj: float = Field(ge=0, description="EF of all the fuel's carbon, biogenic included")
    oxidation_factor: float = Field(default=1.0, gt=0, le=1)
    fuel_class: Literal["conventional_fossil", "alternative_fossil", "biomass", "mixed"] = Field(
        default="conventional_fossil", alias="class", description="GCCA protocol fuel class (KPI report)"
    )
    biomass_fraction: float | None = Field(
        default=None, ge=0, le=1, description="biomass share of a mixed fuel's carbon and energy"
    )

    @model_validator(mode="after")
    def _fraction_for_mixed(self) -> FuelConfig:
        if self.fuel_class == "mixed" and self.biomass_fraction is None:
            raise ValueError(f"fuel {self.name!r}: a mixed fuel needs biomass_fraction (0..1)")
        if self.fuel_class != "mixed" and self.biomass_fraction is not None:
            raise ValueError(f"fuel {self.name!r}: biomass_fraction is for class mixed only")
        return self


class AccountingConfig(_Strict):
    """Emissions rules of a kiln; every default is documented in analytics.rules / docs/method.md § 13."""

    pollutants: dict[str, PollutantLimit] = Field(default_factory=dict)
    reference_o2_pct: float = Field(default=O2_REFERENCE_CEMENT_PCT, ge=0, lt=21)
    half_hour_valid_fraction: float = Field(default=pol.HALF_HOUR_MIN_AVAILABILITY, gt=0, le=1)
    operating_fraction: float = Field(default=kr.DEFAULT_OPERATING_FRACTION, ge=0, le=1)
    max_discarded_half_hours: int = Field(default=pol.MAX_DISCARDED_HALF_HOURS_PER_DAY, ge=0, le=48)
    stuck_minutes: float = Field(default=kr.DEFAULT_STUCK_S / 60, gt=0)
    running_min_clinker_t_per_h: float = Field(default=kr.DEFAULT_RUNNING_MIN_CLINKER_T_PER_H, ge=0)
    composition: CompositionConfig = Field(default_factory=CompositionConfig)
    fuels: list[FuelConfig] = Field(default_factory=list)
    deviation_threshold_pct: float = Field(default=xc.DEFAULT_DEVIATION_THRESHOLD_PCT, gt=0)

    @field_validator("pollutants")
    @classmethod
    def _known_pollutants(cls, value: dict[str, PollutantLimit]) -> dict[str, PollutantLimit]:
        known = set(kr.POLLUTANT_QUANTITIES.values())
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown pollutants {unknown}; known: {sorted(known)}")
        return value


class KilnConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    name: str = ""
    signals: list[SignalConfig]
    accounting: AccountingConfig = Field(default_factory=AccountingConfig)

    @model_validator(mode="after")
    def _roles(self) -> KilnConfig:
        seen: dict[Quantity, str] = {}
        for s in self.signals:
            if s.quantity in seen and s.quantity in SINGLE_ROLE_QUANTITIES:
                raise ValueError(f"two {s.quantity.value} signals: {seen[s.quantity]} and {s.id}")
            seen[s.quantity] = s.id
        missing = [q.value for q in _REQUIRED if q not in seen]
        if missing:
            raise ValueError(f"kiln {self.id} lacks signals for: {', '.join(missing)}")
        if Quantity.ABSOLUTE_PRESSURE not in seen and Quantity.BAROMETRIC_PRESSURE not in seen:
            raise ValueError(f"kiln {self.id} needs a barometric_pressure or an absolute_pressure signal")
        fuel_signals = {s.id for s in self.signals if s.quantity is Quantity.FUEL_RATE}
        for f in self.accounting.fuels:
            if f.signal not in fuel_signals:
                raise ValueError(
                    f"fuel {f.name!r}: {f.signal!r} is not a fuel_rate signal of kiln {self.id} "
                    f"(fuel_rate signals: {sorted(fuel_signals)})"
                )
        return self


class BaselineConfig(_Strict):
    year: int = Field(ge=1990, le=2100)
    value: float | None = Field(
        default=None, ge=0, description="default: the KPI of that year, from the store"
    )


class MilestoneConfig(_Strict):
    year: int = Field(ge=1990, le=2100)
    value: float | None = Field(default=None, ge=0, description="the KPI's value in that year")
    reduction_pct: float | None = Field(
        default=None, ge=0, le=100, description="from the baseline; 100: zero"
    )

    @model_validator(mode="after")
    def _one_of(self) -> MilestoneConfig:
        if (self.value is None) == (self.reduction_pct is None):
            raise ValueError(f"milestone {self.year}: give value or reduction_pct, not both or neither")
        return self


class TargetConfig(_Strict):
    """A reduction target on one KPI (README "Fleet KPIs and targets"; analytics.targets)."""

    kpi: Literal[
        "gross_co2_kg_per_t_clinker",
        "net_co2_kg_per_t_clinker",
        "net_co2_kg_per_t_cementitious",
        "thermal_energy_mj_per_t_clinker",
    ] = "gross_co2_kg_per_t_clinker"
    baseline: BaselineConfig
    milestones: list[MilestoneConfig] = Field(min_length=1)
    shape: Literal["linear", "stepwise"] = "linear"

    @model_validator(mode="after")
    def _after_baseline(self) -> TargetConfig:
        years = [m.year for m in self.milestones]
        if len(set(years)) != len(years):
            raise ValueError(f"milestone years repeat: {years}")
        if min(years) <= self.baseline.year:
            raise ValueError(f"milestones must come after the baseline year {self.baseline.year}")
        return self


class CompanyConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    name: str = ""
    target: TargetConfig | None = None


class FleetConfig(_Strict):
    name: str = "fleet"
    target: TargetConfig | None = None


class PlantConfig(_Strict):
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


class SourcesConfig(_Strict):
    # Other registered kinds: ``<kind>: {<name>: settings}``, checked by the kind's builder.
    model_config = ConfigDict(extra="allow")
    opcua: dict[str, OpcUaServerSpec] = Field(default_factory=dict)
    mqtt: dict[str, MqttBrokerSpec] = Field(default_factory=dict)


class EngineConfig(_Strict):
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


class PlausibilityConfig(_Strict):
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


class PlantFile(_Strict):
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
