"""``GET /api/v1/kpi``: the fleet KPI report (analytics.kpi) per kiln, plant, company or fleet and per
local month, year or one range; JSON ``{"method", "rows", "next": null}``, CSV, or an Excel workbook
holding every level (one sheet each) and the method."""

from __future__ import annotations

import json
import re
import time
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from analytics import kpi

from . import kpi_report
from .context import ApiContext
from .deps import Context, CsvDialect, ReportSlot, Tz
from .report_time import report_clock
from .routes_kilns import method_header

router = APIRouter(prefix="/api/v1")

_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")


def _date(value: str, name: str, end: bool) -> date:
    """``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``; for ``end`` the last day it names (inclusive)."""
    m = _DATE.fullmatch(value)
    try:
        if m is None:
            raise ValueError
        y, mo, d = int(m[1]), int(m[2] or (12 if end else 1)), m[3]
        if d is not None:
            out = date(y, mo, int(d))
        elif end:
            nxt = date(y + (mo == 12), mo % 12 + 1, 1)
            out = date.fromordinal(nxt.toordinal() - 1)
        else:
            out = date(y, mo, 1)
    except ValueError:
        raise HTTPException(422, detail=f"{name}={value!r} is not like 2026, 2026-03 or 2026-03-31") from None
    if not 1971 <= out.year <= 2150:
        raise HTTPException(422, detail=f"{name}={value!r} is outside the supported times")
    return out


def kpi_setup_of(ctx: ApiContext) -> kpi.KpiSetup:
    """The context's KPI setup; without one (contexts built by hand) each kiln's plant, no fuels."""
    if ctx.kpi is not None:
        setup: kpi.KpiSetup = ctx.kpi
        return setup
    return kpi.KpiSetup(kpi.Grouping({k.id: k.plant for k in ctx.kilns}, names=dict(ctx.kiln_names)))


@router.get("/kpi")
async def kpi_route(
    ctx: Context,
    _slot: ReportSlot,
    level: Annotated[Literal["kiln", "plant", "company", "fleet"], Query()] = "plant",
    period: Annotated[Literal["month", "year", "range"], Query()] = "month",
    start: Annotated[
        str | None, Query(description="YYYY, YYYY-MM or YYYY-MM-DD (local); default Jan 1")
    ] = None,
    end: Annotated[
        str | None, Query(description="YYYY, YYYY-MM or YYYY-MM-DD, included; default today")
    ] = None,
    format: Annotated[Literal["json", "csv", "xlsx"], Query()] = "json",
    dialect: CsvDialect = "rfc4180",
    tz: Tz = None,
    sums: Annotated[
        bool, Query(description="JSON: add each kiln's additive sums per period (for kilnwatch fleet)")
    ] = False,
) -> Any:
    """Clinker, CEMS and calculated CO2 with their deviation, gross and net CO2 per t clinker,
    calcination and fuel CO2, thermal energy, alternative fuel rate, biomass share, CO2 per t
    cementitious product, completeness and substituted hours, and the targets (actual vs trajectory,
    on/off track, reduction still needed per year). ``format=xlsx``: every level, one sheet each."""
    setup = kpi_setup_of(ctx)
    clock = report_clock(ctx, list(setup.grouping.plant_of)[:1], tz)  # the first plant's zone
    today = clock.date_of(time.time_ns())
    first = _date(start, "start", False) if start else date(today.year, 1, 1)
    last = _date(end, "end", True) if end else today
    if last < first:
        raise HTTPException(422, detail=f"end {last} is before start {first}")
    if (last.year - first.year) * 12 + last.month - first.month >= 12 * 30:
        raise HTTPException(422, detail="at most 30 years per report")
    periods = kpi.periods(clock, period, first, last)
    read = ctx.history.hours
    levels = kpi.LEVELS if format == "xlsx" else (level,)

    def compute() -> dict[str, dict[str, Any]]:
        return {lv: kpi_report.build(setup, read, lv, periods, clock) for lv in levels}

    reports = await run_in_threadpool(compute)
    report = reports[level] if level in reports else next(iter(reports.values()))
    headers = method_header({k: v for k, v in report["method"].items() if k != "kpis"})
    name = f"kpi-{level}-{period}-{first.isoformat()}-{last.isoformat()}"
    if format == "xlsx":
        xlsx = await run_in_threadpool(kpi_report.workbook, reports)
        headers["Content-Disposition"] = f'attachment; filename="{name.replace(f"-{level}", "")}.xlsx"'
        return Response(xlsx, media_type=_XLSX, headers=headers)
    if format == "csv":
        text = kpi_report.csv_of(report, dialect)
        headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        media = "text/csv; charset=utf-8"
        return Response(text.encode("utf-8"), media_type=media, headers=headers)
    body = {"method": report["method"], "rows": report["rows"], "next": None}
    if sums:
        body["sums"] = await run_in_threadpool(kpi_report.sums_block, setup, read, periods)
    text = json.dumps(body)
    return Response(text, media_type="application/json", headers=headers)
