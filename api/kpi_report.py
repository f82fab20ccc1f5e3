"""The KPI report from stored hours (for ``GET /api/v1/kpi`` and ``kilnwatch report --table kpi``):
reads the kilns' hours, resolves the targets' baselines from the store where the plant file gives no
value, and writes JSON-ready rows, CSV or an Excel workbook (one sheet per level and a method sheet)."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from openpyxl import Workbook

from analytics import kpi
from analytics.aggregates import HourAggregate
from analytics.plant_time import PlantClock
from analytics.tables import iso
from analytics.targets import Trajectory

from .csv_dialect import csv_text

#: (kiln, start_ns, end_ns) -> the kiln's stored hours of [start, end)
HourReader = Callable[[str, int, int], Sequence[HourAggregate]]


def read_kilns(read: HourReader, kilns: Sequence[str], bounds: Any) -> dict[str, list[HourAggregate]]:
    """Each kiln's hours of [bounds[0], bounds[-1]), read a period at a time."""
    return {k: [h for a, b in itertools.pairwise(bounds) for h in read(k, int(a), int(b))] for k in kilns}


def targets_for(
    setup: kpi.KpiSetup, read: HourReader, level: str, clock: PlantClock
) -> tuple[dict[tuple[str, str], Trajectory], dict[str, Any]]:
    """The trajectories of ``level``'s entities; a baseline without a value is the KPI of its year,
    computed from the store (None, and no trajectory, when the store has nothing for it). Also what
    was done, for the method block."""
    out: dict[tuple[str, str], Trajectory] = {}
    described: dict[str, Any] = {}
    for (lvl, entity), spec in setup.targets.items():
        if lvl != level:
            continue
        value, source = spec.baseline_value, "plant file"
        if value is None:
            y = spec.baseline_year
            period = kpi.periods(clock, "year", date(y, 1, 1), date(y, 12, 31))
            rows = kpi.kpi_report(
                read_kilns(read, setup.kilns_of(level, entity), period.bounds),
                setup.grouping,
                setup.fuels,
                period,
                level,  # type: ignore[arg-type]
                setup.cementitious_t(period),
            )
            value = next((r[spec.kpi] for r in rows if r["id"] == entity), None)
            source = f"computed from the stored hours of {y}"
        t = spec.trajectory(value)
        if t is not None:
            out[lvl, entity] = t
        described[f"{lvl}:{entity}"] = {
            "kpi": spec.kpi,
            "baseline": {"year": spec.baseline_year, "value": value, "source": source},
            "milestones": [m._asdict() for m in spec.milestones],
            "shape": spec.shape,
        }
    return out, described


def build(
    setup: kpi.KpiSetup, read: HourReader, level: str, period: kpi.Periods, clock: PlantClock
) -> dict[str, Any]:
    """``{"method": ..., "rows": [...]}`` of one level."""
    kilns = sorted(setup.grouping.plant_of)
    targets, described = targets_for(setup, read, level, clock)
    rows = kpi.kpi_report(
        read_kilns(read, kilns, period.bounds),
        setup.grouping,
        setup.fuels,
        period,
        level,  # type: ignore[arg-type]
        setup.cementitious_t(period),
        targets,
        iso,
    )
    method = {
        **kpi.method(),
        "level": level,
        "period": period.kind,
        "time_zone": clock.name,
        "targets_in_force": described,
    }
    return {"method": method, "rows": rows}


def sums_block(setup: kpi.KpiSetup, read: HourReader, period: kpi.Periods) -> dict[str, Any]:
    """Each kiln's additive sums per period (analytics.kpi.kiln_sums): what ``kilnwatch fleet
    --from-instances`` rolls up over many instances with analytics.kpi.report_from_sums."""
    kilns = sorted(setup.grouping.plant_of)
    hours = read_kilns(read, kilns, period.bounds)
    return {
        "fields": list(kpi.SUM_FIELDS),
        "periods": [
            {"period": label, "start_ns": int(a), "end_ns": int(b)}
            for label, a, b in zip(period.labels, period.bounds[:-1], period.bounds[1:], strict=True)
        ],
        "kilns": {k: kpi.kiln_sums(hours[k], setup.fuels.get(k, ()), period.bounds).tolist() for k in kilns},
    }


def csv_of(report: dict[str, Any], dialect: str = "rfc4180") -> str:
    return csv_text(report["rows"], list(kpi.COLUMNS), dialect)


def workbook(reports: dict[str, dict[str, Any]]) -> bytes:
    """An .xlsx with one sheet per level (the CSV's columns and numbers) and a ``method`` sheet."""
    wb = Workbook()
    first = wb.active
    assert first is not None
    wb.remove(first)
    columns = list(kpi.COLUMNS)
    for level, report in reports.items():
        ws = wb.create_sheet(level)
        ws.append(columns)
        for row in report["rows"]:
            ws.append([row.get(c) for c in columns])
        ws.freeze_panes = "A2"
    ws = wb.create_sheet("method")
    ws.append(["kpi", "unit", "definition", "rests on the hours in"])
    for k in kpi.KPI_FIELDS:
        ws.append([k.name, k.unit, k.definition, k.hours])
    ws.append([])
    ws.append(["hour count", "", "definition"])
    for name, what in kpi.HOUR_FIELDS:
        ws.append([name, "", what])
    ws.append([])
    ws.append(["target column", "unit", "definition"])
    for name, unit, what in kpi.TARGET_FIELDS:
        ws.append([name, unit, what])
    ws.append([])
    any_method = next(iter(reports.values()))["method"] if reports else {}
    for key in ("sums", "gross_co2", "periods", "time_zone", "period"):
        if key in any_method:
            ws.append([key, "", str(any_method[key])])
    for level, report in reports.items():
        ws.append([f"targets ({level})", "", json.dumps(report["method"].get("targets_in_force", {}))])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
