"""Monthly and yearly totals of a kiln over the local months and years of its plant's time zone (or
``?tz=``): CO2, clinker, intensity = sum CO2 / sum clinker, the mass balance beside the CEMS, and
the period's bounds in UTC and in local time. Same answer shape as the other reports."""

from __future__ import annotations

import itertools
import re
import time
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from analytics import tables
from analytics.plant_time import PlantClock
from analytics.reporting import PeriodTotals

from . import changes, paging
from .changes import AsOf, ChangedSince
from .context import ApiContext
from .deps import Context, CsvDialect, Format, Kiln, ReportSlot, Tz
from .models import PeriodTotalsRow, Report
from .report_time import report_clock
from .routes_kilns import kiln_method, method_header
from .timeparse import EARLIEST, LATEST

router = APIRouter(prefix="/api/v1")

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def _first_month(clock: PlantClock, value: str | None, name: str, year_only: bool) -> date:
    """``YYYY-MM`` (``YYYY`` for years) as the first day of that local month; default: the current."""
    if value is None:
        today = clock.date_of(time.time_ns())
        return date(today.year, 1 if year_only else today.month, 1)
    m = re.fullmatch(r"\d{4}", value) if year_only else _MONTH.fullmatch(value)
    try:
        if m is None:
            raise ValueError
        first = date(int(value), 1, 1) if year_only else date(int(m[1]), int(m[2]), 1)
    except ValueError:
        example = "2026" if year_only else "2026-03"
        raise HTTPException(422, detail=f"{name}={value!r} is not like {example}") from None
    if not EARLIEST.year < first.year < LATEST.year - 10:
        raise HTTPException(422, detail=f"{name}={value!r} is outside the supported times")
    return first


async def _totals(
    ctx: ApiContext,
    request: Request,
    kiln_id: str,
    clock: PlantClock,
    bounds: list[int],
    step_months: int,
    format: str,
    dialect: str,
    name: str,
    changed_since: int | None,
    as_of: int | None,
) -> Any:
    """One row per period of ``bounds``; each period is read a month at a time."""
    width = 4 if step_months == 12 else 7  # 2026 or 2026-03
    method = kiln_method(ctx, kiln_id)
    span = (bounds[0], bounds[-1])
    began = await changes.begin(request, ctx, span, method, changed_since, [kiln_id], span, as_of)
    if isinstance(began, Response):
        return began
    pull = began
    periods = [(lo, hi) for lo, hi in itertools.pairwise(bounds) if pull.keeps(lo, hi)]

    def label(ns: int) -> str:
        return clock.date_of(ns).isoformat()[:width]

    def read(a: int, b: int) -> list[paging.Group]:
        out: list[paging.Group] = []
        for lo, hi in periods:
            if not a <= lo < b:
                continue
            totals = PeriodTotals(kiln_id, lo, hi)
            first = clock.date_of(lo)
            months = clock.month_bounds(first, clock.date_of(hi - 1))
            for m_lo, m_hi in itertools.pairwise(months):
                totals.add(ctx.history.hours(kiln_id, int(m_lo), int(m_hi)))
            out.append((lo, [tables.period_totals_row(totals, label(lo), clock)]))
        return out

    async def load(a: int, b: int) -> list[paging.Group]:
        return await run_in_threadpool(read, a, b)

    headers = {**method_header(method), **pull.headers()}
    lo, hi = bounds[0], bounds[-1]
    if format == "csv":
        fields, filename = tables.PERIOD_TOTALS, f"{kiln_id}-{name}.csv"
        return paging.csv_stream(load, lo, hi, paging.CHUNK_NS, fields, filename, headers, dialect)
    rows, cursor = await paging.page(load, lo, hi, paging.CHUNK_NS, ctx.limits.max_rows)
    link = None
    if cursor is not None:
        left = sum(1 for s in bounds[:-1] if s >= cursor)
        key = "year" if step_months == 12 else "month"
        params = {key: label(cursor), f"{key}s": str(left), **pull.next_params(changed_since)}
        link = paging.next_url(request, **params)
    return paging.json_page(rows, headers, link, method, pull.seq)


@router.get("/kilns/{kiln_id}/monthly", response_model=Report[PeriodTotalsRow])
async def monthly(
    kiln: Kiln,
    ctx: Context,
    request: Request,
    _slot: ReportSlot,
    month: Annotated[str | None, Query(description="YYYY-MM, a local month; default this one")] = None,
    months: Annotated[int, Query(ge=1, le=120, description="number of months from ``month``")] = 1,
    format: Format = "json",
    dialect: CsvDialect = "rfc4180",
    tz: Tz = None,
    changed_since: ChangedSince = None,
    as_of: AsOf = None,
) -> Any:
    """A kiln's totals per local month of its plant's time zone (or ``tz``)."""
    clock = report_clock(ctx, [kiln.id], tz)
    first = _first_month(clock, month, "month", year_only=False)
    y, m = divmod(first.year * 12 + first.month - 1 + months - 1, 12)
    bounds = [int(b) for b in clock.month_bounds(first, date(y, m + 1, 1))]
    since = changed_since
    return await _totals(ctx, request, kiln.id, clock, bounds, 1, format, dialect, "monthly", since, as_of)


@router.get("/kilns/{kiln_id}/yearly", response_model=Report[PeriodTotalsRow])
async def yearly(
    kiln: Kiln,
    ctx: Context,
    request: Request,
    _slot: ReportSlot,
    year: Annotated[str | None, Query(description="YYYY, a local year; default this one")] = None,
    years: Annotated[int, Query(ge=1, le=10, description="number of years from ``year``")] = 1,
    format: Format = "json",
    dialect: CsvDialect = "rfc4180",
    tz: Tz = None,
    changed_since: ChangedSince = None,
    as_of: AsOf = None,
) -> Any:
    """A kiln's totals per local year of its plant's time zone (or ``tz``)."""
    clock = report_clock(ctx, [kiln.id], tz)
    first = _first_month(clock, year, "year", year_only=True)
    bounds = [clock.midnight_ns(date(first.year + i, 1, 1)) for i in range(years + 1)]
    since = changed_since
    return await _totals(ctx, request, kiln.id, clock, bounds, 12, format, dialect, "yearly", since, as_of)
