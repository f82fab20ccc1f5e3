"""Report rows as plain dicts, shared by the API and the ``kilnwatch report`` command.

JSON rows may hold nested parts (``parameters``, ``ledger``); the CSV field lists name the flat
columns, in a fixed order whose first columns never change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from .aggregates import HourAggregate
from .kiln_params import CLINKER_RATE, CO2_DRY, CO_DRY, FLOW_N_DRY
from .ledger import LEDGER_REASONS
from .periods import DailyPollutant
from .plant_time import PlantClock, period_bounds
from .reporting import DailyCrossCheck, PeriodTotals, PlantHour

#: Derived parameters shown per hour, with their availability column in CSV.
HOUR_PARAMETERS = (FLOW_N_DRY, CO2_DRY, CLINKER_RATE, CO_DRY)

#: A local period's bounds, in UTC and in the report's time zone (analytics.plant_time.period_bounds).
PERIOD_FIELDS = ["start", "end", "start_local", "end_local"]

HOURLY_FIELDS = [
    "hour",
    "co2_t",
    "clinker_t",
    "intensity_kg_per_t",
    "valid",
    "completeness",
    "revision",
    "co_as_co2_t",
    "co2_t_measured",
    "co2_t_substituted",
    "substitution_method",
    "convention",
    "co2_short_tons",
    "calculated_co2_t",
    "running_fraction",
    *(f"availability_{p}" for p in HOUR_PARAMETERS),
    "hour_local",
]
HALFHOURLY_FIELDS = [
    "half_hour",
    "pollutant",
    "concentration_ref_mg_per_nm3",
    "availability",
    "valid",
    "operating",
    "ci_mg_per_nm3",
    "validated_mg_per_nm3",
    "elv_mg_per_nm3",
    "above_elv",
    "revision",
    "half_hour_local",
]
DAILY_FIELDS = [
    "day",
    "pollutant",
    "mean_ref_mg_per_nm3",
    "validated_mg_per_nm3",
    "elv_mg_per_nm3",
    "exceedance",
    "valid",
    "complete",
    "n_valid",
    "n_discarded",
    "n_not_operating",
    "n_pending",
    "revision",
    "n_half_hours",
    *PERIOD_FIELDS,
]
CROSSCHECK_FIELDS = [
    "day",
    "kiln",
    "cems_co2_t",
    "co_as_co2_t",
    "calculated_co2_t",
    "calcination_t",
    "fuel_t",
    "toc_t",
    "clinker_t",
    "deviation_pct",
    "threshold_pct",
    "flagged",
    "n_hours",
    "n_hours_compared",
    "n_substituted_hours",
    "cems_intensity_kg_per_t",
    "calculated_intensity_kg_per_t",
    "revision",
    *PERIOD_FIELDS,
]
PERIOD_TOTALS_FIELDS = [
    "period",
    "kiln",
    "co2_t",
    "clinker_t",
    "intensity_kg_per_t",
    "co_as_co2_t",
    "calculated_co2_t",
    "deviation_pct",
    "n_hours",
    "n_valid_hours",
    "n_substituted_hours",
    "revision",
    *PERIOD_FIELDS,
]
LEDGER_FIELDS = [
    "hour",
    "signal",
    "expected",
    "received",
    "valid",
    *LEDGER_REASONS,
    "substituted",
    "revision",
    "hour_local",
]
PLANT_HOURLY_FIELDS = [
    "hour",
    "plant",
    "co2_t",
    "clinker_t",
    "intensity_kg_per_t",
    "co_as_co2_t",
    "valid",
    "completeness",
    "co2_t_substituted",
    "kilns",
    "missing_kilns",
    "revision",
    "hour_local",
]


def iso(ns: int) -> str:
    """ISO 8601 UTC with a Z, seconds resolution unless finer is needed."""
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


def day_iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).date().isoformat()


def num(x: float | None, digits: int | None = None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(x, digits) if digits is not None else x


def hourly_row(h: HourAggregate, signal_param: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One hour of a kiln; ``signal_param`` maps a signal id to the derived parameter it feeds
    (for the ledger's ``substituted``)."""
    row: dict[str, Any] = {
        "hour": iso(h.start_ns),
        "co2_t": num(h.co2_t),
        "clinker_t": num(h.clinker_t),
        "intensity_kg_per_t": num(h.intensity_kg_per_t),
        "valid": h.valid,
        "completeness": round(h.completeness, 6),
        "revision": h.revision,
        "co_as_co2_t": num(h.co_as_co2_t),
        "co2_t_measured": num(h.co2_t_measured),
        "co2_t_substituted": h.co2_t_substituted,
        "substitution_method": h.substitution_method,
        "convention": h.convention,
        "co2_short_tons": num(h.co2_short_tons),
        "calculated_co2_t": num(h.calculated.total_t),
        "running_fraction": num(h.running_fraction, 6),
    }
    params = {}
    for name in HOUR_PARAMETERS:
        s = h.params.get(name)
        row[f"availability_{name}"] = None if s is None else round(s.availability, 6)
        if s is not None:
            params[name] = {
                "mean": num(s.mean),
                "availability": round(s.availability, 6),
                "n_valid": s.n_valid,
                "n_expected": s.n_expected,
                "substituted": s.substituted,
                "substitute": num(s.substitute),
                "substitution_method": s.substitution_method,
            }
    row["parameters"] = params
    row["ledger"] = {
        r["signal"]: {k: v for k, v in r.items() if k not in ("hour", "signal", "revision")}
        for r in ledger_rows(h, signal_param)
    }
    return row


def ledger_rows(h: HourAggregate, signal_param: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The completeness ledger of one hour: one row per signal (parameters with a received count)."""
    mapping = signal_param or {}
    out = []
    for name, s in h.params.items():
        if s.n_received is None:
            continue
        feeds = h.params.get(mapping.get(name, ""))
        row: dict[str, Any] = {
            "hour": iso(h.start_ns),
            "signal": name,
            "expected": s.n_expected,
            "received": s.n_received,
            "valid": s.n_valid,
        }
        row.update({r: s.reasons.get(r, 0) for r in LEDGER_FIELDS[5:13]})
        row["substituted"] = bool(feeds is not None and feeds.substituted)
        row["revision"] = h.revision
        out.append(row)
    return out


def halfhourly_rows(
    hours: Sequence[HourAggregate],
    pollutant: str | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> list[dict[str, Any]]:
    """Half-hour rows per pollutant, for half-hours starting in [start_ns, end_ns) when given."""
    out = []
    for h in hours:
        for hh in h.half_hours:
            if (start_ns is not None and hh.start_ns < start_ns) or (
                end_ns is not None and hh.start_ns >= end_ns
            ):
                continue
            for name, p in sorted(hh.pollutants.items()):
                if pollutant is not None and name != pollutant:
                    continue
                out.append(
                    {
                        "half_hour": iso(hh.start_ns),
                        "pollutant": name,
                        "concentration_ref_mg_per_nm3": num(p.mean_ref),
                        "availability": round(p.availability, 6),
                        "valid": p.valid,
                        "operating": hh.operating,
                        "ci_mg_per_nm3": num(p.ci),
                        "validated_mg_per_nm3": num(p.validated),
                        "elv_mg_per_nm3": num(p.elv),
                        "above_elv": p.above_elv,
                        "revision": h.revision,
                    }
                )
    return out


def daily_rows(days: Sequence[DailyPollutant], clock: PlantClock | None = None) -> list[dict[str, Any]]:
    """IED days; ``day`` is the local date in ``clock``'s zone (UTC without one)."""
    clock = clock or PlantClock()
    out = []
    for d in days:
        row = asdict(d)
        out.append(
            {
                "day": clock.date_of(d.day_start_ns).isoformat(),
                "pollutant": d.pollutant,
                "mean_ref_mg_per_nm3": num(d.mean_ref),
                "validated_mg_per_nm3": num(d.validated),
                "elv_mg_per_nm3": num(d.elv),
                **{k: row[k] for k in DAILY_FIELDS[5:14]},
                **period_bounds(clock, d.day_start_ns, d.day_end_ns),
            }
        )
    return out


def crosscheck_row(c: DailyCrossCheck, clock: PlantClock | None = None) -> dict[str, Any]:
    """A kiln-day's cross-check; ``day`` is the local date in ``clock``'s zone (UTC without one)."""
    clock = clock or PlantClock()
    row = {k: (num(v) if isinstance(v, float) else v) for k, v in asdict(c).items()}
    row.pop("day_start_ns")
    row.pop("day_end_ns")
    day = clock.date_of(c.day_start_ns).isoformat()
    return {"day": day, **row, **period_bounds(clock, c.day_start_ns, c.day_end_ns)}


def period_totals_row(p: PeriodTotals, label: str, clock: PlantClock) -> dict[str, Any]:
    """A local month or year of one kiln; ``label`` names it (``2026-03``, ``2026``)."""
    row = {k: (num(v) if isinstance(v, float) else v) for k, v in asdict(p).items() if k[0] != "_"}
    row.pop("start_ns")
    row.pop("end_ns")
    return {"period": label, **row, **period_bounds(clock, p.start_ns, p.end_ns)}


def plant_hourly_rows(hours: Sequence[PlantHour]) -> list[dict[str, Any]]:
    out = []
    for p in hours:
        row = {k: (num(v) if isinstance(v, float) else v) for k, v in asdict(p).items()}
        row.pop("start_ns")
        out.append({"hour": iso(p.start_ns), **row})
    return out


#: Row keys holding a UTC period start, and the key of the same time in local time beside each.
LOCAL_TIME_KEYS = {"hour": "hour_local", "half_hour": "half_hour_local"}


def with_local_times(rows: list[dict[str, Any]], clock: PlantClock) -> list[dict[str, Any]]:
    """Add ``hour_local`` / ``half_hour_local`` (ISO 8601 with the offset in ``clock``'s zone) to
    rows that have ``hour`` / ``half_hour`` (in place; also returned)."""
    seen: dict[str, str] = {}
    for row in rows:
        for key, local in LOCAL_TIME_KEYS.items():
            t = row.get(key)
            if isinstance(t, str):
                if t not in seen:
                    seen[t] = clock.local_of(t)
                row[local] = seen[t]
    return rows


def csv_value(v: Any) -> Any:
    """Lists as ``a|b`` in CSV cells."""
    return "|".join(map(str, v)) if isinstance(v, list) else v
