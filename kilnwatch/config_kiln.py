"""The plant file's kilns: their signals and where each comes from, and their emissions rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from analytics import crosscheck as xc
from analytics import pollutants as pol
from analytics import rules as kr
from analytics.corrections import O2_REFERENCE_CEMENT_PCT
from analytics.signals import SINGLE_ROLE_QUANTITIES, Quantity
from analytics.units import conversion
from collector.sources.mqtt.spec import MqttBinding
from collector.sources.opcua.spec import OpcUaBinding

from .config_base import Strict

_REQUIRED = (Quantity.FLOW, Quantity.CO2, Quantity.CLINKER_RATE)


class SignalSource(Strict):
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


class Qal2Calibration(Strict):
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


class LoopScaling(Strict):
    """The source delivers a 4-20 mA loop current [mA]; lo and hi are the range in the configured unit."""

    input: Literal["4-20mA"] = "4-20mA"
    lo: float
    hi: float

    @model_validator(mode="after")
    def _span(self) -> LoopScaling:
        if self.lo == self.hi:
            raise ValueError("lo and hi of a 4-20 mA range must differ")
        return self


class SignalConfig(Strict):
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


class PollutantLimit(Strict):
    """Daily ELV [mg/Nm3 at the reference O2, dry] and CI fraction; unset: IED Annex VI defaults."""

    elv_mg_per_nm3: float | None = Field(default=None, gt=0)
    ci_fraction: float | None = Field(default=None, ge=0, le=1)


class CompositionConfig(Strict):
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


class FuelConfig(Strict):
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


class AccountingConfig(Strict):
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


class KilnConfig(Strict):
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
