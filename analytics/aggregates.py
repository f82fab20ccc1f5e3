"""Aggregate records the engine produces: closed minutes, hours and the hours' IED half-hours per kiln."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class ParameterStats:
    """One parameter over one period, on the sampling grid.

    For a signal this is also its line of the completeness ledger: ``n_expected`` grid points, of which
    ``n_received`` had a value in force, ``n_valid`` were valid, and ``reasons`` counts each invalid
    point once under its first reason (in the order of ``analytics.ledger.LEDGER_REASONS``: missing,
    comm_loss, calibration, maintenance, fault, out_of_range, stuck, bad), so
    n_valid + sum(reasons) == n_expected.
    """

    mean: float | None  # mean of the valid grid points, None when none is valid
    n_valid: int
    n_expected: int
    min: float | None = None
    max: float | None = None
    reasons: dict[str, int] = field(default_factory=dict)  # invalid grid points by reason
    n_received: int | None = None  # grid points with a value in force; None for derived parameters
    substituted: bool = False  # the period's value is a substitute (hours only)
    substitute: float | None = None  # the value used instead of ``mean``
    substitution_method: str | None = None

    @property
    def availability(self) -> float:
        return self.n_valid / self.n_expected if self.n_expected else 0.0

    @property
    def reported(self) -> float | None:
        """The value that enters the reported numbers: the substitute where there is one."""
        return self.substitute if self.substituted else self.mean


@dataclass(slots=True)
class MinuteAggregate:
    kiln: str
    plant: str
    start_ns: int
    co2_t_per_h: float | None
    clinker_t_per_h: float | None
    intensity_kg_per_t: float | None
    valid: bool
    params: dict[str, ParameterStats]
    revision: int = 0
    co_as_co2_t_per_h: float | None = None  # included in co2_t_per_h when CO counts as CO2
    n_running: int | None = None  # grid points in which the kiln ran (None: no clinker signal)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class PollutantHalfHour:
    """One pollutant over one half-hour (IED Annex VI Part 8 pt 1.2) [mg/Nm3 at the reference O2, dry]."""

    mean_ref: float | None  # mean of the valid points at the reference O2, dry
    n_valid: int
    n_expected: int
    valid: bool  # enough valid points (half-hour availability rule)
    ci: float | None  # 95 % confidence interval subtracted [mg/Nm3]; None without an ELV
    validated: float | None  # mean_ref - ci (not below 0), for valid half-hours with an ELV
    elv: float | None  # daily ELV [mg/Nm3]
    above_elv: bool = False  # validated value above the daily ELV (information; compliance is daily)

    @property
    def availability(self) -> float:
        return self.n_valid / self.n_expected if self.n_expected else 0.0


@dataclass(slots=True)
class HalfHourAggregate:
    start_ns: int
    operating: bool  # within effective operating time
    running_fraction: float | None
    pollutants: dict[str, PollutantHalfHour] = field(default_factory=dict)


@dataclass(slots=True)
class CalculatedCO2:
    """The hour's CO2 by mass balance (MRR Art. 46 corroboration inputs) [t]."""

    calcination_t: float | None = None
    fuel_t: float | None = None
    toc_t: float | None = None
    total_t: float | None = None
    clinker_t: float | None = None


@dataclass(slots=True)
class HourAggregate:
    kiln: str
    plant: str
    start_ns: int
    co2_t: float | None  # reported CO2 of the hour [t]: substitutes applied, CO included under eu_mrr
    clinker_t: float | None
    intensity_kg_per_t: float | None
    valid: bool  # every required parameter met the hour validity rule (no substitution needed)
    completeness: float
    params: dict[str, ParameterStats]
    revision: int = 0
    co_as_co2_t: float | None = None  # CO counted as CO2 [t] (MRR Art. 43(1))
    #: CO2 measured as CO2 [t]: pro-rata means of the valid points, no substitution, no CO; for a valid
    #: eu_mrr hour co2_t = co2_t_measured + co_as_co2_t
    co2_t_measured: float | None = None
    co2_t_substituted: bool = False  # co2_t rests on at least one substituted parameter
    substitution_method: str | None = None  # "param=method;..." for the substituted parameters
    convention: str = "eu_mrr"
    co2_short_tons: float | None = None  # us_part75: Eq. F-2/F-11 result in short tons
    running_fraction: float | None = None
    #: False: operators marked the kiln stopped for most of the hour (analytics.overrides); such an
    #: hour is reported as measured (0 t without valid points), never substituted.
    operating: bool = True
    calculated: CalculatedCO2 = field(default_factory=CalculatedCO2)
    half_hours: list[HalfHourAggregate] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parameter_stats_from_dict(d: dict[str, Any]) -> ParameterStats:
    return ParameterStats(**d)


def minute_from_dict(d: dict[str, Any]) -> MinuteAggregate:
    params = {k: parameter_stats_from_dict(v) for k, v in d.pop("params").items()}
    return MinuteAggregate(params=params, **d)


def half_hour_from_dict(d: dict[str, Any]) -> HalfHourAggregate:
    pollutants = {k: PollutantHalfHour(**v) for k, v in d.pop("pollutants", {}).items()}
    return HalfHourAggregate(pollutants=pollutants, **d)


def hour_from_dict(d: dict[str, Any]) -> HourAggregate:
    params = {k: parameter_stats_from_dict(v) for k, v in d.pop("params").items()}
    half_hours = [half_hour_from_dict(h) for h in d.pop("half_hours", [])]
    calculated = CalculatedCO2(**d.pop("calculated", {}))
    d.pop("extra", None)  # a field of hours stored before it was dropped (never used)
    return HourAggregate(params=params, half_hours=half_hours, calculated=calculated, **d)
