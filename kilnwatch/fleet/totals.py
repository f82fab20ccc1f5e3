"""Per-kiln hourly CO2 and clinker summed into kilns, plants, companies and the fleet, per month
and year: pure, no I/O. This is the seam for the KPI module: it takes the hours and the grouping
and returns rows; a KPI report built on the same inputs can take its place."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from analytics.hours import HOUR_NS
from analytics.plant_time import PlantClock
from analytics.tables import iso

from .grouping import Grouping, KilnRef

LEVELS = ("kiln", "plant", "company", "fleet")
CSV_FIELDS = [
    "level", "company", "plant", "kiln", "period", "co2_t", "clinker_t", "intensity_kg_per_t",
    "hours_expected", "hours_reported", "hours_missing", "hours_without_co2",
]  # fmt: skip


@dataclass(frozen=True)
class KilnHour:
    """One kiln's hour as the historian holds it (its newest revision)."""

    kiln: KilnRef
    start_ns: int
    co2_t: float | None
    clinker_t: float | None
    revision: int = 0


#: Columns of the per-hour statistics summed per period: co2, clinker, expected, reported, missing,
#: without co2.
_N_STATS = 6


def _finite(x: float | None) -> float:
    return x if x is not None and math.isfinite(x) else math.nan


def _periods(clock: PlantClock, grid: npt.NDArray[np.int64]) -> tuple[list[str], npt.NDArray[np.intp]]:
    """The plant-local months the hours of ``grid`` fall in ("YYYY-MM") and each hour's month index."""
    bounds = clock.month_bounds(clock.date_of(int(grid[0])), clock.date_of(int(grid[-1])))
    labels = [f"{d.year:04d}-{d.month:02d}" for d in (clock.date_of(int(b)) for b in bounds[:-1])]
    return labels, np.searchsorted(bounds, grid, side="right") - 1


def _keys(k: KilnRef) -> Iterator[tuple[str, str, str, str]]:
    yield "kiln", k.company, k.plant, k.kiln
    yield "plant", k.company, k.plant, ""
    yield "company", k.company, "", ""
    yield "fleet", "", "", ""


def _kiln_stats(hours: list[KilnHour], grid: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Per hour of ``grid``: the statistics columns of one kiln (shape (hours, _N_STATS))."""
    out = np.zeros((len(grid), _N_STATS))
    out[:, 2] = 1.0  # expected
    if hours:
        idx = (np.array([h.start_ns for h in hours], dtype=np.int64) - grid[0]) // HOUR_NS
        co2 = np.array([_finite(h.co2_t) for h in hours])
        clinker = np.array([_finite(h.clinker_t) for h in hours])
        out[idx, 0] = np.nan_to_num(co2)
        out[idx, 1] = np.nan_to_num(clinker)
        out[idx, 3] = 1.0
        out[idx, 5] = np.isnan(co2)
    out[:, 4] = 1.0 - out[:, 3]
    return out


def fleet_totals(hours: Iterable[KilnHour], grouping: Grouping, start_ns: int, end_ns: int) -> dict[str, Any]:
    """Sums of [start_ns, end_ns) (whole hours) per level and period (plant-local month and year).

    Each kiln of ``grouping`` is expected to report every hour of the range; an hour it has not is
    missing (listed per kiln), an hour without a CO2 number is counted in ``hours_without_co2``.
    ``hours`` must hold each (plant, kiln, hour) once: the reader keeps the newest revision. A kiln
    is matched by plant and kiln id; its company is the grouping's. Hours of kilns outside the
    grouping are left out and counted as ``unknown_kiln_hours``.
    """
    first = -(-start_ns // HOUR_NS) * HOUR_NS
    grid = np.arange(first, end_ns, HOUR_NS, dtype=np.int64)
    # The plant files decide the company: a kiln is known by plant and kiln id, whatever company
    # tag its points carry (a plant moved to another company keeps its history).
    known = {(k.plant, k.kiln): k for k in grouping.kilns}
    got: dict[KilnRef, list[KilnHour]] = defaultdict(list)
    unknown = 0
    for h in hours:
        ref = known.get((h.kiln.plant, h.kiln.kiln))
        if ref is None:
            unknown += 1
        elif first <= h.start_ns < end_ns:
            got[ref].append(h)
    sums: dict[tuple[str, str, str, str, str], npt.NDArray[np.float64]] = {}
    missing: dict[str, list[str]] = {}
    periods = {p: _periods(PlantClock(tz), grid) for p, tz in grouping.timezones.items()} if len(grid) else {}
    for k in grouping.kilns if len(grid) else ():
        stats = _kiln_stats(got.get(k, []), grid)
        labels, month = periods[k.plant]
        by_month = np.stack([np.bincount(month, stats[:, c], len(labels)) for c in range(_N_STATS)], axis=1)
        per_period: dict[str, npt.NDArray[np.float64]] = {}
        for label, row in zip(labels, by_month, strict=True):
            if row[2] == 0:  # a month of the bounds without an hour of the range
                continue
            per_period[label] = row
            per_period[label[:4]] = per_period.get(label[:4], 0.0) + row
        for key in _keys(k):
            for period, row in per_period.items():
                sums[(*key, period)] = sums.get((*key, period), 0.0) + row
        gaps = grid[stats[:, 4] == 1.0]
        if len(gaps):
            missing[f"{k.plant}/{k.kiln}"] = [iso(int(t)) for t in gaps]
    rows = [_row(key, s) for key, s in sorted(sums.items(), key=lambda kv: _order(kv[0]))]
    return {
        "start_ns": first,
        "end_ns": end_ns,
        "rows": rows,
        "missing_hours": missing,
        "unknown_kiln_hours": unknown,
        "method": METHOD,
    }


METHOD = {
    "source": "the shared historian: measurement kiln_hour_rev, one point per kiln, hour and revision",
    "revisions": "each kiln hour counts once, with its newest revision",
    "co2_t": "sum of the hours' reported CO2 (kilnwatch /hourly co2_t); an hour without a number adds 0 "
    "and is counted in hours_without_co2",
    "intensity_kg_per_t": "sum CO2 / sum clinker x 1000 over the same hours",
    "periods": "months and years of each plant's own time zone (plants[].timezone); the fleet and a "
    "company add up their plants' local months",
    "missing": "an hour of the range that a kiln of the plant files has not written to the historian",
    "grouping": "kilns, plants, companies and time zones from the plant files; a kiln's points are "
    "matched by plant and kiln id, the company tag they carry is not used",
}


def _order(key: tuple[str, str, str, str, str]) -> tuple[int, int, str, str, str, str]:
    level, company, plant, kiln, period = key
    return (LEVELS.index(level), len(period), period, company, plant, kiln)


def _row(key: tuple[str, str, str, str, str], s: npt.NDArray[np.float64]) -> dict[str, Any]:
    level, company, plant, kiln, period = key
    co2, clinker = float(s[0]), float(s[1])
    return {
        "level": level,
        "company": company,
        "plant": plant,
        "kiln": kiln,
        "period": period,
        "co2_t": co2,
        "clinker_t": clinker,
        "intensity_kg_per_t": co2 / clinker * 1000.0 if clinker > 0 else None,
        "hours_expected": int(s[2]),
        "hours_reported": int(s[3]),
        "hours_missing": int(s[4]),
        "hours_without_co2": int(s[5]),
    }
