"""Report routes: IED half-hours and days, the daily mass-balance cross-check, the completeness
ledger, and a plant's hourly sum over its kilns. JSON and CSV for each.

Shape: every JSON answer here is ``{"method": {...}, "rows": [...]}`` (the rules used, then the rows);
CSV answers carry the same method block, as compact JSON, in the ``X-Kilnwatch-Method`` header.
All of them read the stored hours, so revised hours (late data) show at once, with their revision.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.concurrency import run_in_threadpool

from analytics import pollutants as pol
from analytics import tables
from analytics.aggregates import HourAggregate
from analytics.crosscheck import DEFAULT_DEVIATION_THRESHOLD_PCT
from analytics.hours import HOUR_NS
from analytics.periods import DAY_NS
from analytics.reporting import daily_crosscheck, daily_from_hours, plant_hours
from analytics.signals import KilnSpec

from .context import ApiContext
from .models import CrossCheckRow, DailyRow, HalfHourRow, LedgerRow, PlantHourRow, Report
from .routes_kilns import Context, Kiln, csv_response, kiln_method, method_header, signal_feeds
from .timeparse import time_range

router = APIRouter(prefix="/api/v1")

Format = Annotated[Literal["json", "csv"], Query()]
Start = Annotated[str | None, Query(description="ISO 8601, default: 24 h before end")]
End = Annotated[str | None, Query(description="ISO 8601, default: now")]
_DAY_SPAN_NS = 7 * DAY_NS


def _answer(
    rows: list[dict[str, Any]],
    model: type[Any],
    fields: list[str],
    method: dict[str, Any],
    format: str,
    filename: str,
    response: Response,
    header_method: dict[str, Any] | None = None,
) -> Any:
    """``header_method``: a shorter method block for the header (default: ``method``)."""
    if format == "csv":
        return csv_response(rows, fields, filename, header_method or method)
    response.headers.update(method_header(header_method or method))
    return Report[model](method=method, rows=[model.model_validate(r) for r in rows])  # type: ignore[valid-type]


async def _hours(ctx: ApiContext, kiln: str, start_ns: int, end_ns: int) -> list[HourAggregate]:
    return await run_in_threadpool(ctx.history.hours, kiln, start_ns, end_ns)


def _days(start: str | None, end: str | None) -> tuple[int, int]:
    """Whole UTC days overlapping [start, end) [ns]; default the last 7 days up to now."""
    start_ns, end_ns = time_range(start, end, _DAY_SPAN_NS, time.time_ns())
    return start_ns // DAY_NS * DAY_NS, -(-end_ns // DAY_NS) * DAY_NS


def _kiln_rule(ctx: ApiContext, kiln: KilnSpec, *path: str, default: Any) -> Any:
    node: Any = ctx.method.get("kilns", {}).get(kiln.id, {})
    for key in path:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    return default if node in ({}, None) else node


@router.get("/kilns/{kiln_id}/halfhourly", response_model=Report[HalfHourRow])
async def halfhourly(
    kiln: Kiln,
    ctx: Context,
    response: Response,
    start: Start = None,
    end: End = None,
    pollutant: Annotated[str | None, Query(description="nox, so2, dust, toc, co; default all")] = None,
    format: Format = "json",
) -> Any:
    """IED half-hours per pollutant: mean at the reference O2 (10 %), dry; validity; confidence interval;
    validated value; daily ELV; whether the validated value lies above it (information only: for
    cement kilns the daily average decides compliance)."""
    start_ns, end_ns = time_range(start, end, DAY_NS, time.time_ns())
    hours = await _hours(ctx, kiln.id, start_ns // HOUR_NS * HOUR_NS, end_ns)
    rows = tables.halfhourly_rows(hours, pollutant, start_ns, end_ns)
    method = kiln_method(ctx, kiln.id)
    return _answer(
        rows, HalfHourRow, tables.HALFHOURLY_FIELDS, method, format, f"{kiln.id}-halfhourly.csv", response
    )


@router.get("/kilns/{kiln_id}/daily", response_model=Report[DailyRow])
async def daily(
    kiln: Kiln,
    ctx: Context,
    response: Response,
    start: Annotated[str | None, Query(description="ISO 8601; whole UTC days, default: the last 7")] = None,
    end: End = None,
    format: Format = "json",
) -> Any:
    """IED daily averages per pollutant from the validated half-hours, their validity (at most
    ``max_discarded_half_hours_per_day`` discarded) and exceedance of the daily ELV."""
    lo, hi = _days(start, end)
    hours = await _hours(ctx, kiln.id, lo, hi)
    closed_until = max((h.start_ns + HOUR_NS for h in hours), default=lo)
    max_discarded = _kiln_rule(
        ctx, kiln, "max_discarded_half_hours_per_day", default=pol.MAX_DISCARDED_HALF_HOURS_PER_DAY
    )
    days = []
    for d in range(lo, hi, DAY_NS):
        days += daily_from_hours(d, hours, closed_until, int(max_discarded))
    method = kiln_method(ctx, kiln.id)
    return _answer(
        tables.daily_rows(days),
        DailyRow,
        tables.DAILY_FIELDS,
        method,
        format,
        f"{kiln.id}-daily.csv",
        response,
    )


@router.get("/kilns/{kiln_id}/crosscheck", response_model=Report[CrossCheckRow])
async def crosscheck(
    kiln: Kiln,
    ctx: Context,
    response: Response,
    day: Annotated[str | None, Query(description="YYYY-MM-DD (UTC); default today")] = None,
    days: Annotated[int, Query(ge=1, le=366, description="number of days from ``day``")] = 1,
    format: Format = "json",
) -> Any:
    """Mass-balance corroboration (MRR Art. 46; WE10): the day's CEMS CO2 against calcination +
    fuels + raw-meal TOC, with the deviation in % and a flag above the kiln's threshold."""
    first = _day_start(day)
    hours = await _hours(ctx, kiln.id, first, first + days * DAY_NS)
    threshold = float(
        _kiln_rule(
            ctx, kiln, "mass_balance", "deviation_threshold_pct", default=DEFAULT_DEVIATION_THRESHOLD_PCT
        )
    )
    rows = [
        tables.crosscheck_row(daily_crosscheck(kiln.id, d, hours, threshold))
        for d in range(first, first + days * DAY_NS, DAY_NS)
    ]
    method = kiln_method(ctx, kiln.id)
    return _answer(
        rows, CrossCheckRow, tables.CROSSCHECK_FIELDS, method, format, f"{kiln.id}-crosscheck.csv", response
    )


@router.get("/kilns/{kiln_id}/ledger", response_model=Report[LedgerRow])
async def ledger(
    kiln: Kiln,
    ctx: Context,
    response: Response,
    start: Start = None,
    end: End = None,
    format: Format = "json",
) -> Any:
    """Completeness per signal and hour: expected, received and valid grid points, the invalid ones
    by reason, and whether the hourly value the signal feeds was substituted."""
    start_ns, end_ns = time_range(start, end, DAY_NS, time.time_ns())
    hours = await _hours(ctx, kiln.id, start_ns, end_ns)
    feeds = signal_feeds(ctx, kiln)
    rows = [r for h in hours for r in tables.ledger_rows(h, feeds)]
    method = kiln_method(ctx, kiln.id)
    return _answer(rows, LedgerRow, tables.LEDGER_FIELDS, method, format, f"{kiln.id}-ledger.csv", response)


@router.get("/plants/{plant_id}/hourly", response_model=Report[PlantHourRow])
async def plant_hourly(
    plant_id: str,
    ctx: Context,
    response: Response,
    start: Start = None,
    end: End = None,
    format: Format = "json",
) -> Any:
    """A plant's hourly CO2 and clinker summed over its kilns; intensity = sum CO2 / sum clinker."""
    kilns = [k for k in ctx.kilns if k.plant == plant_id]
    if not kilns:
        known = sorted({k.plant for k in ctx.kilns})
        raise HTTPException(404, detail=f"no plant {plant_id!r}; known plants: {known}")
    start_ns, end_ns = time_range(start, end, DAY_NS, time.time_ns())
    by_kiln = {k.id: await _hours(ctx, k.id, start_ns, end_ns) for k in kilns}
    rows = tables.plant_hourly_rows(plant_hours(plant_id, by_kiln))
    shared = kiln_method(ctx)  # the header keeps to the shared rules: a plant may have many kilns
    method = {**shared, "kilns": {k.id: ctx.method.get("kilns", {}).get(k.id, {}) for k in kilns}}
    filename = f"{plant_id}-hourly.csv"
    return _answer(rows, PlantHourRow, tables.PLANT_HOURLY_FIELDS, method, format, filename, response, shared)


def _day_start(day: str | None) -> int:
    if day is None:
        return time.time_ns() // DAY_NS * DAY_NS
    try:
        d = date.fromisoformat(day)
    except ValueError as err:
        raise HTTPException(422, detail=f"day={day!r} is not a date such as 2026-11-28") from err
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * 1_000_000_000
