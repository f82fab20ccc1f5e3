"""Response models: field names here are a contract that downstream tools rely on."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field


class KilnSummary(BaseModel):
    id: str
    name: str
    plant: str


class SignalValue(BaseModel):
    value: float | None
    unit: str
    quality: str | None = Field(description="good, uncertain, bad, maintenance, calibration, fault, ...")
    time: str | None = Field(description="source time of the value, ISO 8601 UTC")


class LiveResponse(BaseModel):
    kiln: str
    time: str | None = Field(default=None, description="start of the newest closed minute, ISO 8601 UTC")
    co2_t_per_h: float | None = None
    clinker_t_per_h: float | None = None
    intensity_kg_per_t: float | None = None
    valid: bool = False
    age_s: float | None = Field(default=None, description="seconds since the end of that minute")
    signals: dict[str, SignalValue] = Field(default_factory=dict)
    method: dict[str, Any] = Field(default_factory=dict)


class ParameterSummary(BaseModel):
    mean: float | None = Field(description="mean of the valid points (pro rata)")
    availability: float
    n_valid: int
    n_expected: int
    substituted: bool = False
    substitute: float | None = None
    substitution_method: str | None = None


class LedgerEntry(BaseModel):
    """Completeness of one signal in one hour [grid points]; valid + the reasons = expected."""

    expected: int
    received: int
    valid: int
    missing: int = 0
    comm_loss: int = 0
    calibration: int = 0
    maintenance: int = 0
    fault: int = 0
    out_of_range: int = 0
    stuck: int = 0
    bad: int = 0
    substituted: bool = Field(default=False, description="the hourly value this signal feeds was substituted")


class HourlyRow(BaseModel):
    hour: str = Field(description="start of the hour, ISO 8601 UTC")
    hour_local: str = Field(description="start of the hour in the report's time zone, with its offset")
    co2_t: float | None = Field(
        description="reported CO2 [t]: substitutes applied, CO as CO2 included (eu_mrr)"
    )
    clinker_t: float | None
    intensity_kg_per_t: float | None
    valid: bool = Field(description="flow, CO2 and clinker each met the hour validity rule")
    completeness: float
    revision: int = 0
    co_as_co2_t: float | None = Field(default=None, description="CO counted as CO2 [t] (MRR Art. 43(1))")
    co2_t_measured: float | None = Field(
        default=None,
        description="CO2 analyser part from the valid points only: no substitute, no CO "
        "(valid eu_mrr hour: co2_t = co2_t_measured + co_as_co2_t)",
    )
    co2_t_substituted: bool = Field(default=False, description="co2_t rests on a substituted parameter")
    substitution_method: str | None = Field(default=None, description="parameter=method;...")
    convention: str = "eu_mrr"
    co2_short_tons: float | None = Field(default=None, description="us_part75: Eq. F-2 result [short ton]")
    calculated_co2_t: float | None = Field(default=None, description="mass balance of the hour [t]")
    running_fraction: float | None = None
    availability_flow_n_dry: float | None = None
    availability_co2_dry: float | None = None
    availability_clinker_rate: float | None = None
    availability_co_dry: float | None = None
    parameters: dict[str, ParameterSummary] = Field(default_factory=dict)
    ledger: dict[str, LedgerEntry] | None = Field(default=None, description="per signal, with ?ledger=true")


class HalfHourRow(BaseModel):
    half_hour: str = Field(description="start, ISO 8601 UTC")
    half_hour_local: str = Field(description="start in the report's time zone, with its offset")
    pollutant: str
    concentration_ref_mg_per_nm3: float | None = Field(description="mean at the reference O2 (10 %), dry")
    availability: float
    valid: bool
    operating: bool
    ci_mg_per_nm3: float | None
    validated_mg_per_nm3: float | None
    elv_mg_per_nm3: float | None = Field(description="daily ELV")
    above_elv: bool
    revision: int


class DailyRow(BaseModel):
    day: str
    pollutant: str
    mean_ref_mg_per_nm3: float | None
    validated_mg_per_nm3: float | None = Field(description="mean of the validated half-hours")
    elv_mg_per_nm3: float | None
    exceedance: bool
    valid: bool
    complete: bool
    n_valid: int
    n_discarded: int
    n_not_operating: int
    n_pending: int
    revision: int = Field(description="sum of the revisions of the day's hours")
    n_half_hours: int = Field(description="half-hours in the local day: 46, 48 or 50")
    start: str = Field(description="the local day's start, UTC (ISO 8601)")
    end: str = Field(description="the local day's end, UTC (ISO 8601)")
    start_local: str = Field(description="the day's start in the report's time zone, with its offset")
    end_local: str = Field(description="the day's end in the report's time zone, with its offset")


class CrossCheckRow(BaseModel):
    day: str
    kiln: str
    cems_co2_t: float | None
    co_as_co2_t: float | None
    calculated_co2_t: float | None
    calcination_t: float | None
    fuel_t: float | None
    toc_t: float | None
    clinker_t: float | None
    deviation_pct: float | None = Field(description="(CEMS - calculated)/calculated, hours with both")
    threshold_pct: float
    flagged: bool
    n_hours: int
    n_hours_compared: int
    n_substituted_hours: int
    cems_intensity_kg_per_t: float | None
    calculated_intensity_kg_per_t: float | None
    revision: int
    start: str = Field(description="the local day's start, UTC (ISO 8601)")
    end: str = Field(description="the local day's end, UTC (ISO 8601)")
    start_local: str = Field(description="the day's start in the report's time zone, with its offset")
    end_local: str = Field(description="the day's end in the report's time zone, with its offset")


class PeriodTotalsRow(BaseModel):
    period: str = Field(description="the local month (YYYY-MM) or year (YYYY)")
    kiln: str
    n_hours: int
    n_valid_hours: int
    n_substituted_hours: int
    co2_t: float | None = Field(description="sum of the reported hourly CO2 [t]")
    co_as_co2_t: float | None
    clinker_t: float | None
    intensity_kg_per_t: float | None = Field(description="sum CO2 / sum clinker")
    calculated_co2_t: float | None = Field(description="mass balance [t], hours that have it")
    deviation_pct: float | None = Field(description="(CEMS - calculated)/calculated, hours with both")
    revision: int
    start: str = Field(description="the local period's start, UTC (ISO 8601)")
    end: str = Field(description="the local period's end, UTC (ISO 8601)")
    start_local: str = Field(description="the period's start in the report's time zone, with its offset")
    end_local: str = Field(description="the period's end in the report's time zone, with its offset")


class LedgerRow(LedgerEntry):
    hour: str
    hour_local: str = Field(description="start of the hour in the report's time zone, with its offset")
    signal: str
    revision: int


class PlantHourRow(BaseModel):
    hour: str
    hour_local: str = Field(description="start of the hour in the report's time zone, with its offset")
    plant: str
    co2_t: float | None
    clinker_t: float | None
    intensity_kg_per_t: float | None
    co_as_co2_t: float | None
    valid: bool
    completeness: float
    co2_t_substituted: bool
    kilns: list[str]
    missing_kilns: list[str]
    revision: int = Field(description="sum of the kilns' revisions")


RowT = TypeVar("RowT", bound=BaseModel)


class Report(BaseModel, Generic[RowT]):
    """The shape of every report list: the rules used, then the rows."""

    method: dict[str, Any]
    rows: list[RowT]
    next: str | None = Field(
        default=None, description="URL of the next page (also as Link: rel=next); null on the last page"
    )
