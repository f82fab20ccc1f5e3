"""Per-kiln hourly CO2 and clinker summed into kilns, plants, companies and the fleet, per month
and year: pure, no I/O. This is the seam for the KPI module: it takes the hours and the grouping
and returns rows; a KPI report built on the same inputs can take its place."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

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


@dataclass
class _Sum:
    co2_t: float = 0.0
    clinker_t: float = 0.0
    expected: int = 0
    reported: int = 0
    without_co2: int = 0
    missing: int = 0

    def add(self, other: _Sum) -> None:
        self.co2_t += other.co2_t
        self.clinker_t += other.clinker_t
        self.expected += other.expected
        self.reported += other.reported
        self.without_co2 += other.without_co2
        self.missing += other.missing


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _periods(clock: PlantClock, start_ns: int) -> tuple[str, str]:
    d = clock.date_of(start_ns)
    return f"{d.year:04d}-{d.month:02d}", f"{d.year:04d}"


def _keys(k: KilnRef) -> Iterator[tuple[str, str, str, str]]:
    yield "kiln", k.company, k.plant, k.kiln
    yield "plant", k.company, k.plant, ""
    yield "company", k.company, "", ""
    yield "fleet", "", "", ""


def fleet_totals(hours: Iterable[KilnHour], grouping: Grouping, start_ns: int, end_ns: int) -> dict[str, Any]:
    """Sums of [start_ns, end_ns) (whole hours) per level and period (plant-local month and year).

    Each kiln of ``grouping`` is expected to report every hour of the range; an hour it has not is
    missing (listed per kiln), an hour without a CO2 number is counted in ``hours_without_co2``.
    ``hours`` must hold each (kiln, hour) once: the reader keeps the newest revision. Hours of
    kilns outside the grouping are left out and counted as ``unknown_kiln_hours``.
    """
    first = -(-start_ns // HOUR_NS) * HOUR_NS
    grid = range(first, end_ns, HOUR_NS)
    clocks = {p: PlantClock(tz) for p, tz in grouping.timezones.items()}
    known = set(grouping.kilns)
    got: dict[KilnRef, dict[int, KilnHour]] = defaultdict(dict)
    unknown = 0
    for h in hours:
        if h.kiln not in known:
            unknown += 1
        elif first <= h.start_ns < end_ns:
            got[h.kiln][h.start_ns] = h
    sums: dict[tuple[str, str, str, str, str], _Sum] = defaultdict(_Sum)
    for k in grouping.kilns:
        clock, mine = clocks[k.plant], got.get(k, {})
        for t in grid:
            hour, one = mine.get(t), _Sum(expected=1)
            if hour is None:
                one.missing = 1
            else:
                one.reported = 1
                co2, clinker = _finite(hour.co2_t), _finite(hour.clinker_t)
                one.co2_t, one.clinker_t = co2 or 0.0, clinker or 0.0
                one.without_co2 = int(co2 is None)
            for period in _periods(clock, t):
                for key in _keys(k):
                    sums[(*key, period)].add(one)
    rows = [_row(key, s) for key, s in sorted(sums.items(), key=lambda kv: _order(kv[0]))]
    missing = {
        f"{k.plant}/{k.kiln}": [iso(t) for t in grid if t not in got.get(k, {})] for k in grouping.kilns
    }
    return {
        "start_ns": first,
        "end_ns": end_ns,
        "rows": rows,
        "missing_hours": {kiln: hours for kiln, hours in missing.items() if hours},
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
}


def _order(key: tuple[str, str, str, str, str]) -> tuple[int, int, str, str, str, str]:
    level, company, plant, kiln, period = key
    return (LEVELS.index(level), len(period), period, company, plant, kiln)


def _row(key: tuple[str, str, str, str, str], s: _Sum) -> dict[str, Any]:
    level, company, plant, kiln, period = key
    return {
        "level": level,
        "company": company if level != "fleet" else "",
        "plant": plant,
        "kiln": kiln,
        "period": period,
        "co2_t": s.co2_t,
        "clinker_t": s.clinker_t,
        "intensity_kg_per_t": s.co2_t / s.clinker_t * 1000.0 if s.clinker_t > 0 else None,
        "hours_expected": s.expected,
        "hours_reported": s.reported,
        "hours_missing": s.missing,
        "hours_without_co2": s.without_co2,
    }
