"""The fleet KPI report from the plants' kilnwatch instances: each instance gives its kilns' additive
sums per period (``GET /api/v1/kpi?level=kiln&sums=true``); they are rolled up per plant, company
and fleet with analytics.kpi.report_from_sums, the same roll-up one process with every kiln does.
An instance that does not answer: its kilns are reported missing (hours expected, none reported)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import numpy as np

from analytics import kpi
from analytics.plant_time import PlantClock
from analytics.tables import iso

from ..config import PlantFile
from ..kpi_setup import kpi_setup

#: The environment variable whose value is sent as ``Authorization: Bearer ...`` when set.
TOKEN_ENV = "KILNWATCH_FLEET_TOKEN"


def merged_setup(plant_files: Iterable[PlantFile]) -> kpi.KpiSetup:
    """One KPI setup of many plant files (the fleet name of the first); ValueError when two files
    name the same kiln."""
    plant_of: dict[str, str] = {}
    company_of: dict[str, str] = {}
    names: dict[str, str] = {}
    fuels: dict[str, Sequence[kpi.KpiFuel]] = {}
    rates: dict[str, float] = {}
    targets: dict[tuple[str, str], Any] = {}
    fleet = None
    for pf in plant_files:
        s = kpi_setup(pf)
        fleet = fleet or s.grouping.fleet
        for k in s.grouping.plant_of:
            if k in plant_of:
                raise ValueError(f"kiln {k!r} is in two plant files")
        plant_of.update(s.grouping.plant_of)
        company_of.update(s.grouping.company_of)
        names.update(s.grouping.names)
        fuels.update(s.fuels)
        rates.update(s.cementitious_t_per_h)
        targets.update(s.targets)
    grouping = kpi.Grouping(plant_of, company_of, fleet or "fleet", names)
    return kpi.KpiSetup(grouping, fuels, rates, targets)


@dataclass
class Pulled:
    url: str
    sums: dict[str, np.ndarray[Any, Any]]
    error: str | None = None


def pull(url: str, params: dict[str, str], bounds: np.ndarray[Any, Any], timeout: float = 60.0) -> Pulled:
    """One instance's kiln sums; an error (no answer, a refusal, other period bounds) in ``error``."""
    token = os.environ.get(TOKEN_ENV)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.get(f"{url.rstrip('/')}/api/v1/kpi", params=params, headers=headers, timeout=timeout)
        r.raise_for_status()
        block = r.json()["sums"]
    except (httpx.HTTPError, ValueError, KeyError) as err:
        return Pulled(url, {}, f"{type(err).__name__}: {err}")
    periods = block["periods"]
    got = [*(p["start_ns"] for p in periods), *(periods[-1:] and [periods[-1]["end_ns"]])]
    if got != [int(b) for b in bounds]:
        return Pulled(url, {}, "its periods are not the report's (another time zone or kilnwatch version?)")
    if list(block["fields"]) != list(kpi.SUM_FIELDS):
        return Pulled(url, {}, "its sum fields are not this kilnwatch's (another version?)")
    return Pulled(url, {k: np.asarray(v, dtype=float) for k, v in block["kilns"].items()})


def fleet_kpi_report(
    setup: kpi.KpiSetup, urls: Sequence[str], kind: kpi.PeriodKind, first: date, last: date, tz: str
) -> dict[str, Any]:
    """Every level's KPI rows of [first, last] (local days of ``tz``) from the instances' kiln sums.

    Targets apply when the plant file gives their baseline value (a baseline computed from a store
    needs the hours of its year: not in this mode)."""
    period = kpi.periods(PlantClock(tz), kind, first, last)
    params = {
        "level": "kiln", "period": kind, "start": first.isoformat(), "end": last.isoformat(),
        "tz": tz, "sums": "true",
    }  # fmt: skip
    pulled = [pull(u, params, period.bounds) for u in urls]
    sums: dict[str, np.ndarray[Any, Any]] = {}
    source: dict[str, str] = {}
    duplicated: list[str] = []
    unknown: list[str] = []
    for p in pulled:
        for k, s in p.sums.items():
            if k not in setup.grouping.plant_of:
                unknown.append(f"{k} ({p.url})")  # not in the plant files: not in the fleet
                continue
            if k in sums:
                duplicated.append(f"{k} ({source[k]} and {p.url}; the first counts)")
                continue
            sums[k], source[k] = s, p.url
    missing = sorted(k for k in setup.grouping.plant_of if k not in sums)
    for k in missing:  # hours expected, none reported
        sums[k] = kpi.kiln_sums([], (), period.bounds)
    targets = {}
    described: dict[str, Any] = {}
    for (lvl, entity), spec in setup.targets.items():
        t = spec.trajectory()
        if t is not None:
            targets[lvl, entity] = t
        described[f"{lvl}:{entity}"] = {
            "kpi": spec.kpi,
            "baseline": {
                "year": spec.baseline_year,
                "value": spec.baseline_value,
                "source": "plant file" if t else "none: a baseline from a store is not computed here",
            },
        }
    cem = setup.cementitious_t(period)
    rows = {
        lv: kpi.report_from_sums(sums, setup.grouping, period, lv, cem, targets, iso) for lv in kpi.LEVELS
    }
    method = {
        **kpi.method(),
        "source": "the plant instances' kiln sums (GET /api/v1/kpi?level=kiln&sums=true), rolled up here",
        "period": kind,
        "time_zone": tz,
        "targets_in_force": described,
        "missing": "a kiln of the plant files that no answering instance reports: its hours are expected "
        "and none reported (data completeness 0 %)",
    }
    return {
        "method": method,
        "rows": [r for lv in kpi.LEVELS for r in rows[lv]],
        "by_level": rows,
        "instances": [
            {"url": p.url, "ok": p.error is None, "kilns": sorted(p.sums), "error": p.error} for p in pulled
        ],
        "missing_kilns": missing,
        "duplicated_kilns": duplicated,
        "unknown_kilns": unknown,
    }
