"""Reports built from stored hours: the daily mass-balance cross-check, IED days, plant sums.

They read the hours as the ledger holds them, so a revised hour (late data) changes every report
built on it, and each report carries the sum of its hours' revisions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import crosscheck as xc
from .aggregates import HalfHourAggregate, HourAggregate
from .emissions import intensity_kg_per_t
from .hours import HOUR_NS
from .periods import DAY_NS, DailyPollutant, daily_pollutants


@dataclass(slots=True)
class DailyCrossCheck:
    """MRR Art. 46 corroboration of one kiln-day (WE10) [t]; deviation [%] over the hours both cover."""

    kiln: str
    day_start_ns: int
    day_end_ns: int  # a local day: 23, 24 or 25 h (analytics.plant_time)
    n_hours: int
    n_hours_compared: int
    n_substituted_hours: int
    cems_co2_t: float | None  # sum of the reported hourly CO2 (CO and substitutes included)
    co_as_co2_t: float | None
    clinker_t: float | None
    calcination_t: float | None
    fuel_t: float | None
    toc_t: float | None
    calculated_co2_t: float | None
    deviation_pct: float | None  # (CEMS - calculated) / calculated over the hours with both
    threshold_pct: float
    flagged: bool
    cems_intensity_kg_per_t: float | None
    calculated_intensity_kg_per_t: float | None
    revision: int
    n_not_operating_hours: int = 0  # hours operators marked stopped (kiln_stopped annotations)


def _sum(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(sum(known)) if known else None


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def daily_crosscheck(
    kiln: str,
    day_start_ns: int,
    hours: Sequence[HourAggregate],
    threshold_pct: float,
    day_end_ns: int | None = None,
) -> DailyCrossCheck:
    """Sum the hours of one kiln-day [day_start_ns, day_end_ns) (default 24 h) and compare the CEMS
    CO2 with the mass balance."""
    end = day_start_ns + DAY_NS if day_end_ns is None else day_end_ns
    day = [h for h in hours if day_start_ns <= h.start_ns < end]
    both = [h for h in day if h.co2_t is not None and h.calculated.total_t is not None]
    cems_both = sum(h.co2_t or 0.0 for h in both)
    calc_both = sum(h.calculated.total_t or 0.0 for h in both)
    dev = _finite(float(xc.deviation_pct(cems_both, calc_both))) if both else None
    cems = _sum([h.co2_t for h in day])
    clinker = _sum([h.clinker_t for h in day])
    calc = _sum([h.calculated.total_t for h in day])
    clinker_both = sum(h.calculated.clinker_t or 0.0 for h in both)
    return DailyCrossCheck(
        kiln=kiln,
        day_start_ns=day_start_ns,
        day_end_ns=end,
        n_hours=len(day),
        n_hours_compared=len(both),
        n_substituted_hours=sum(1 for h in day if h.co2_t_substituted),
        cems_co2_t=cems,
        co_as_co2_t=_sum([h.co_as_co2_t for h in day]),
        clinker_t=clinker,
        calcination_t=_sum([h.calculated.calcination_t for h in day]),
        fuel_t=_sum([h.calculated.fuel_t for h in day]),
        toc_t=_sum([h.calculated.toc_t for h in day]),
        calculated_co2_t=calc,
        deviation_pct=dev,
        threshold_pct=threshold_pct,
        flagged=bool(xc.exceeds_threshold(np.nan if dev is None else dev, threshold_pct)),
        cems_intensity_kg_per_t=_finite(float(intensity_kg_per_t(cems_both, clinker_both))) if both else None,
        calculated_intensity_kg_per_t=_finite(float(intensity_kg_per_t(calc_both, clinker_both)))
        if both
        else None,
        revision=sum(h.revision for h in day),
        n_not_operating_hours=sum(1 for h in day if not h.operating),
    )


def daily_from_hours(
    day_start_ns: int,
    hours: Sequence[HourAggregate],
    closed_until_ns: int,
    max_discarded: int,
    day_end_ns: int | None = None,
) -> list[DailyPollutant]:
    """IED daily values per pollutant from the stored hours of [day_start_ns, day_end_ns) (default
    24 h; their half-hours)."""
    end = day_start_ns + DAY_NS if day_end_ns is None else day_end_ns
    halves: list[tuple[HalfHourAggregate, int]] = [
        (hh, h.revision) for h in hours if day_start_ns <= h.start_ns < end for hh in h.half_hours
    ]
    return daily_pollutants(day_start_ns, halves, closed_until_ns, max_discarded, end)


@dataclass(slots=True)
class PlantHour:
    """One hour of a plant: the sum over its kilns."""

    plant: str
    start_ns: int
    co2_t: float | None
    clinker_t: float | None
    intensity_kg_per_t: float | None
    co_as_co2_t: float | None
    valid: bool  # every kiln has the hour and it is valid
    completeness: float  # the lowest of the kilns (0 for a kiln without the hour)
    co2_t_substituted: bool
    kilns: list[str] = field(default_factory=list)
    missing_kilns: list[str] = field(default_factory=list)
    revision: int = 0  # sum of the kilns' revisions


def plant_hours(plant: str, hours_by_kiln: Mapping[str, Sequence[HourAggregate]]) -> list[PlantHour]:
    """Sum the kilns hour by hour; intensity = sum CO2 / sum clinker (never a mean of ratios)."""
    by_start: dict[int, dict[str, HourAggregate]] = {}
    for kiln, hours in hours_by_kiln.items():
        for h in hours:
            by_start.setdefault(h.start_ns // HOUR_NS * HOUR_NS, {})[kiln] = h
    out = []
    for start in sorted(by_start):
        present = by_start[start]
        hs = list(present.values())
        co2 = _sum([h.co2_t for h in hs])
        clinker = _sum([h.clinker_t for h in hs])
        intensity = None
        if co2 is not None and clinker is not None and clinker > 0:
            intensity = float(intensity_kg_per_t(co2, clinker))
        missing = sorted(set(hours_by_kiln) - set(present))
        out.append(
            PlantHour(
                plant=plant,
                start_ns=start,
                co2_t=co2,
                clinker_t=clinker,
                intensity_kg_per_t=intensity,
                co_as_co2_t=_sum([h.co_as_co2_t for h in hs]),
                valid=not missing and all(h.valid for h in hs),
                completeness=0.0 if missing else min(h.completeness for h in hs),
                co2_t_substituted=any(h.co2_t_substituted for h in hs),
                kilns=sorted(present),
                missing_kilns=missing,
                revision=sum(h.revision for h in hs),
            )
        )
    return out


@dataclass(slots=True)
class PeriodTotals:
    """One kiln over a local month or year [t]: sums of its stored hours, intensity = sum / sum."""

    kiln: str
    start_ns: int
    end_ns: int
    n_hours: int = 0
    n_valid_hours: int = 0
    n_substituted_hours: int = 0
    co2_t: float | None = None
    co_as_co2_t: float | None = None
    clinker_t: float | None = None
    intensity_kg_per_t: float | None = None
    calculated_co2_t: float | None = None
    deviation_pct: float | None = None  # (CEMS - calculated) / calculated over the hours with both
    revision: int = 0
    _cems_both: float = 0.0
    _calc_both: float = 0.0

    def add(self, hours: Sequence[HourAggregate]) -> None:
        """Add the hours of [start_ns, end_ns) among ``hours`` (a period may be read in parts)."""
        inside = [h for h in hours if self.start_ns <= h.start_ns < self.end_ns]
        self.n_hours += len(inside)
        self.n_valid_hours += sum(1 for h in inside if h.valid)
        self.n_substituted_hours += sum(1 for h in inside if h.co2_t_substituted)
        self.co2_t = _plus(self.co2_t, [h.co2_t for h in inside])
        self.co_as_co2_t = _plus(self.co_as_co2_t, [h.co_as_co2_t for h in inside])
        self.clinker_t = _plus(self.clinker_t, [h.clinker_t for h in inside])
        self.calculated_co2_t = _plus(self.calculated_co2_t, [h.calculated.total_t for h in inside])
        both = [h for h in inside if h.co2_t is not None and h.calculated.total_t is not None]
        self._cems_both += sum(h.co2_t or 0.0 for h in both)
        self._calc_both += sum(h.calculated.total_t or 0.0 for h in both)
        self.revision += sum(h.revision for h in inside)
        self.intensity_kg_per_t = None
        if self.co2_t is not None and self.clinker_t is not None and self.clinker_t > 0:
            self.intensity_kg_per_t = float(intensity_kg_per_t(self.co2_t, self.clinker_t))
        self.deviation_pct = (
            _finite(float(xc.deviation_pct(self._cems_both, self._calc_both))) if self._calc_both else None
        )


def _plus(total: float | None, values: Sequence[float | None]) -> float | None:
    part = _sum(values)
    return total if part is None else (part if total is None else total + part)
