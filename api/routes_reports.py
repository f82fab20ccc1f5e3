"""Report routes: IED half-hours and days, the daily mass-balance cross-check, the completeness
ledger, and a plant's hourly sum over its kilns. JSON and CSV for each.

Shape: every JSON answer here is ``{"method": {...}, "rows": [...], "next": url | null}`` (the rules
used, the rows, and the next page when there are more than ``max_rows`` rows, also as a
``Link: <url>; rel="next"`` header); CSV answers carry the same method block, as compact JSON, in
the ``X-Kilnwatch-Method`` header and stream the whole range. All of them read the stored hours,
so revised hours (late data) show at once, with their revision.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from analytics import pollutants as pol
from analytics import tables
from analytics.aggregates import HourAggregate
from analytics.crosscheck import DEFAULT_DEVIATION_THRESHOLD_PCT
from analytics.hours import HOUR_NS
from analytics.periods import DAY_NS
from analytics.plant_time import PlantClock
from analytics.reporting import daily_crosscheck, daily_from_hours, plant_hours
from analytics.schema import Schema
from analytics.signals import KilnSpec

from . import changes, paging
from .changes import AsOf, ChangedSince
from .context import ApiContext
from .deps import Context, CsvDialect, Format, Kiln, ReportSlot, Tz
from .models import CrossCheckRow, DailyRow, HalfHourRow, LedgerRow, PlantHourRow, Report
from .report_time import report_clock
from .routes_kilns import kiln_method, method_header, signal_feeds
from .timeparse import EARLIEST, LATEST, iso, time_range

router = APIRouter(prefix="/api/v1")

Start = Annotated[str | None, Query(description="ISO 8601, default: 24 h before end")]
End = Annotated[str | None, Query(description="ISO 8601, default: now")]
_DAY_SPAN_NS = 7 * DAY_NS


async def _answer(
    request: Request,
    load: paging.Loader,
    lo: int,
    hi: int,
    fields: Schema,
    method: dict[str, Any],
    format: str,
    filename: str,
    header_method: dict[str, Any] | None = None,
    next_params: Callable[[int], dict[str, str]] | None = None,
    dialect: str = "rfc4180",
    pull: changes.Pull | None = None,
    changed_since: int | None = None,
) -> Any:
    """Rows of [lo, hi) as a JSON page or a CSV stream. ``header_method``: a shorter method block for
    the header (default: ``method``); ``next_params``: the query of the next page from its cursor
    (default: ``start`` = the cursor, ``end`` = ``hi``); ``dialect``: of the CSV; ``pull``: its change
    number and validator (:mod:`api.changes`)."""
    headers = method_header(header_method or method)
    if pull is not None:
        headers.update(pull.headers())
    if format == "csv":
        return paging.csv_stream(load, lo, hi, paging.CHUNK_NS, fields, filename, headers, dialect)
    nxt = next_params
    if pull is not None:
        given = next_params or (lambda cursor: {"start": iso(cursor), "end": iso(hi)})
        carried = pull.next_params(changed_since)

        def nxt(cursor: int) -> dict[str, str]:
            return {**given(cursor), **carried}

    return await _json(request, load, lo, hi, method, headers, nxt, pull)


async def _json(
    request: Request,
    load: paging.Loader,
    lo: int,
    hi: int,
    method: dict[str, Any],
    headers: dict[str, str],
    next_params: Callable[[int], dict[str, str]] | None,
    pull: changes.Pull | None = None,
) -> Response:
    ctx: ApiContext = request.app.state.context
    rows, cursor = await paging.page(load, lo, hi, paging.CHUNK_NS, ctx.limits.max_rows)
    link = None
    if cursor is not None:
        params = next_params(cursor) if next_params else {"start": iso(cursor), "end": iso(hi)}
        link = paging.next_url(request, **params)
    return paging.json_page(rows, headers, link, method, None if pull is None else pull.seq)


def _newest_hour_end(ctx: ApiContext, kiln: str, lo: int, hi: int) -> int:
    """End of the newest stored hour in [lo, hi) (``lo`` without any), read backwards a chunk at a time."""
    t = hi
    while t > lo:
        a = max(lo, t - paging.CHUNK_NS)
        hours = ctx.history.hours(kiln, a, t)
        if hours:
            return hours[-1].start_ns + HOUR_NS
        t = a
    return lo


def _days(clock: PlantClock, start: str | None, end: str | None) -> list[int]:
    """Bounds of the whole local days overlapping [start, end) [ns]; default the last 7 days up to now."""
    start_ns, end_ns = time_range(start, end, _DAY_SPAN_NS, time.time_ns())
    return [int(b) for b in clock.days_over(start_ns, end_ns)]


def _local_day(clock: PlantClock, value: str | None) -> date:
    """``YYYY-MM-DD`` as a local date (default: today in ``clock``'s zone); 422 when not a date."""
    if value is None:
        return clock.date_of(time.time_ns())
    try:
        d = date.fromisoformat(value)
    except ValueError as err:
        raise HTTPException(422, detail=f"day={value!r} is not a date such as 2026-11-28") from err
    if not EARLIEST.date() < d < LATEST.date() - timedelta(days=366):
        raise HTTPException(422, detail=f"day={value!r} is outside the supported times")
    return d


def _starting_in(bounds: list[int], a: int, b: int) -> list[tuple[int, int]]:
    """(start, end) of the days in ``bounds`` that start in [a, b)."""
    return [(s, e) for s, e in itertools.pairwise(bounds) if a <= s < b]


def _kiln_rule(ctx: ApiContext, kiln: KilnSpec, *path: str, default: Any) -> Any:
    node: Any = ctx.method.get("kilns", {}).get(kiln.id, {})
    for key in path:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    return default if node in ({}, None) else node


@router.get("/kilns/{kiln_id}/halfhourly", response_model=Report[HalfHourRow])
async def halfhourly(
    kiln: Kiln,
    ctx: Context,
    request: Request,
    _slot: ReportSlot,
    start: Start = None,
    end: End = None,
    pollutant: Annotated[str | None, Query(description="nox, so2, dust, toc, co; default all")] = None,
    format: Format = "json",
    dialect: CsvDialect = "rfc4180",
    tz: Tz = None,
    changed_since: ChangedSince = None,
    as_of: AsOf = None,
) -> Any:
    """IED half-hours per pollutant: mean at the reference O2 (10 %), dry; validity; confidence interval;
    validated value; daily ELV; whether the validated value lies above it (information only: for
    cement kilns the daily average decides compliance)."""
    start_ns, end_ns = time_range(start, end, DAY_NS, time.time_ns())
    clock = report_clock(ctx, [kiln.id], tz)
    method = kiln_method(ctx, kiln.id)
    lo = start_ns // HOUR_NS * HOUR_NS
    window = changes.window_of(start_ns, end_ns, HOUR_NS // 2)
    began = await changes.begin(request, ctx, window, method, changed_since, [kiln.id], (lo, end_ns), as_of)
    if isinstance(began, Response):
        return began
    pull = began

    def rows(h: HourAggregate) -> list[dict[str, Any]]:
        if not pull.keeps(h.start_ns, h.start_ns + HOUR_NS):
            return []
        return tables.halfhourly_rows([h], pollutant, start_ns, end_ns, clock)

    load = paging.hour_groups(ctx.history, kiln.id, rows)
    filename = f"{kiln.id}-halfhourly.csv"
    return await _answer(
        request, load, lo, end_ns, tables.HALFHOURLY, method, format, filename,
        dialect=dialect, pull=pull, changed_since=changed_since,
    )  # fmt: skip


@router.get("/kilns/{kiln_id}/daily", response_model=Report[DailyRow])
async def daily(
    kiln: Kiln,
    ctx: Context,
    request: Request,
    _slot: ReportSlot,
    start: Annotated[str | None, Query(description="ISO 8601; whole local days, default: the last 7")] = None,
    end: End = None,
    format: Format = "json",
    dialect: CsvDialect = "rfc4180",
    tz: Tz = None,
    changed_since: ChangedSince = None,
    as_of: AsOf = None,
) -> Any:
    """IED daily averages per pollutant from the validated half-hours, their validity (at most
    ``max_discarded_half_hours_per_day`` discarded of the day's 46, 48 or 50) and exceedance of the
    daily ELV, per local day of the plant's time zone (or ``tz``)."""
    clock = report_clock(ctx, [kiln.id], tz)
    bounds = _days(clock, start, end)
    lo, hi = bounds[0], bounds[-1]
    method = kiln_method(ctx, kiln.id)
    began = await changes.begin(request, ctx, (lo, hi), method, changed_since, [kiln.id], (lo, hi), as_of)
    if isinstance(began, Response):
        return began
    pull = began
    closed_until = await run_in_threadpool(_newest_hour_end, ctx, kiln.id, lo, hi)
    max_discarded = int(
        _kiln_rule(
            ctx, kiln, "max_discarded_half_hours_per_day", default=pol.MAX_DISCARDED_HALF_HOURS_PER_DAY
        )
    )

    def read(a: int, b: int) -> list[paging.Group]:
        days = [(d, e) for d, e in _starting_in(bounds, a, b) if pull.keeps(d, e)]
        if not days:
            return []
        hours = ctx.history.hours(kiln.id, days[0][0], days[-1][1])
        return [
            (d, tables.daily_rows(daily_from_hours(d, hours, closed_until, max_discarded, e), clock))
            for d, e in days
        ]

    async def load(a: int, b: int) -> list[paging.Group]:
        return await run_in_threadpool(read, a, b)

    filename = f"{kiln.id}-daily.csv"
    return await _answer(
        request, load, lo, hi, tables.DAILY, method, format, filename,
        dialect=dialect, pull=pull, changed_since=changed_since,
    )  # fmt: skip


@router.get("/kilns/{kiln_id}/crosscheck", response_model=Report[CrossCheckRow])
async def crosscheck(
    kiln: Kiln,
    ctx: Context,
    request: Request,
    _slot: ReportSlot,
    day: Annotated[str | None, Query(description="YYYY-MM-DD, a local date; default today")] = None,
    days: Annotated[int, Query(ge=1, le=366, description="number of days from ``day``")] = 1,
    format: Format = "json",
    dialect: CsvDialect = "rfc4180",
    tz: Tz = None,
    changed_since: ChangedSince = None,
    as_of: AsOf = None,
) -> Any:
    """Mass-balance corroboration (MRR Art. 46; WE10): the local day's CEMS CO2 against calcination +
    fuels + raw-meal TOC, with the deviation in % and a flag above the kiln's threshold."""
    clock = report_clock(ctx, [kiln.id], tz)
    d0 = _local_day(clock, day)
    bounds = [int(b) for b in clock.day_bounds(d0, d0 + timedelta(days=days - 1))]
    first, last = bounds[0], bounds[-1]
    method = kiln_method(ctx, kiln.id)
    span = (first, last)
    began = await changes.begin(request, ctx, span, method, changed_since, [kiln.id], span, as_of)
    if isinstance(began, Response):
        return began
    pull = began
    threshold = float(
        _kiln_rule(
            ctx, kiln, "mass_balance", "deviation_threshold_pct", default=DEFAULT_DEVIATION_THRESHOLD_PCT
        )
    )

    def read(a: int, b: int) -> list[paging.Group]:
        days = [(d, e) for d, e in _starting_in(bounds, a, b) if pull.keeps(d, e)]
        if not days:
            return []
        hours = ctx.history.hours(kiln.id, days[0][0], days[-1][1])
        return [
            (d, [tables.crosscheck_row(daily_crosscheck(kiln.id, d, hours, threshold, e), clock)])
            for d, e in days
        ]

    async def load(a: int, b: int) -> list[paging.Group]:
        return await run_in_threadpool(read, a, b)

    def next_params(cursor: int) -> dict[str, str]:
        return {
            "day": clock.date_of(cursor).isoformat(),
            "days": str(len(_starting_in(bounds, cursor, last))),
        }

    filename = f"{kiln.id}-crosscheck.csv"
    fields = tables.CROSSCHECK
    return await _answer(
        request, load, first, last, fields, method, format, filename, None, next_params, dialect,
        pull, changed_since,
    )  # fmt: skip


@router.get("/kilns/{kiln_id}/ledger", response_model=Report[LedgerRow])
async def ledger(
    kiln: Kiln,
    ctx: Context,
    request: Request,
    _slot: ReportSlot,
    start: Start = None,
    end: End = None,
    format: Format = "json",
    dialect: CsvDialect = "rfc4180",
    tz: Tz = None,
    changed_since: ChangedSince = None,
    as_of: AsOf = None,
) -> Any:
    """Completeness per signal and hour: expected, received and valid grid points, the invalid ones
    by reason, and whether the hourly value the signal feeds was substituted."""
    start_ns, end_ns = time_range(start, end, DAY_NS, time.time_ns())
    feeds = signal_feeds(ctx, kiln)
    clock = report_clock(ctx, [kiln.id], tz)
    method = kiln_method(ctx, kiln.id)
    span = (start_ns, end_ns)
    window = changes.window_of(start_ns, end_ns, HOUR_NS)
    began = await changes.begin(request, ctx, window, method, changed_since, [kiln.id], span, as_of)
    if isinstance(began, Response):
        return began
    pull = began

    def rows(h: HourAggregate) -> list[dict[str, Any]]:
        return tables.ledger_rows(h, feeds, clock) if pull.keeps(h.start_ns, h.start_ns + HOUR_NS) else []

    load = paging.hour_groups(ctx.history, kiln.id, rows)
    filename = f"{kiln.id}-ledger.csv"
    fields = tables.LEDGER
    return await _answer(
        request, load, start_ns, end_ns, fields, method, format, filename,
        dialect=dialect, pull=pull, changed_since=changed_since,
    )  # fmt: skip


@router.get("/plants/{plant_id}/hourly", response_model=Report[PlantHourRow])
async def plant_hourly(
    plant_id: str,
    ctx: Context,
    request: Request,
    _slot: ReportSlot,
    start: Start = None,
    end: End = None,
    format: Format = "json",
    dialect: CsvDialect = "rfc4180",
    tz: Tz = None,
    changed_since: ChangedSince = None,
    as_of: AsOf = None,
) -> Any:
    """A plant's hourly CO2 and clinker summed over its kilns; intensity = sum CO2 / sum clinker."""
    kilns = [k for k in ctx.kilns if k.plant == plant_id]
    if not kilns:
        known = sorted({k.plant for k in ctx.kilns})
        raise HTTPException(404, detail=f"no plant {plant_id!r}; known plants: {known}")
    start_ns, end_ns = time_range(start, end, DAY_NS, time.time_ns())
    clock = report_clock(ctx, [k.id for k in kilns], tz)
    shared = kiln_method(ctx)  # the header keeps to the shared rules: a plant may have many kilns
    method = {**shared, "kilns": {k.id: ctx.method.get("kilns", {}).get(k.id, {}) for k in kilns}}
    window = changes.window_of(start_ns, end_ns, HOUR_NS)
    ids = [k.id for k in kilns]
    began = await changes.begin(request, ctx, window, method, changed_since, ids, (start_ns, end_ns), as_of)
    if isinstance(began, Response):
        return began
    pull = began

    def read(a: int, b: int) -> list[paging.Group]:
        by_kiln = {k.id: ctx.history.hours(k.id, a, b) for k in kilns}
        sums = [h for h in plant_hours(plant_id, by_kiln) if pull.keeps(h.start_ns, h.start_ns + HOUR_NS)]
        rows = tables.plant_hourly_rows(sums, clock)
        return [(h.start_ns, [r]) for h, r in zip(sums, rows, strict=True)]

    async def load(a: int, b: int) -> list[paging.Group]:
        return await run_in_threadpool(read, a, b)

    filename = f"{plant_id}-hourly.csv"
    fields = tables.PLANT_HOURLY
    return await _answer(
        request, load, start_ns, end_ns, fields, method, format, filename, shared, None, dialect,
        pull, changed_since,
    )  # fmt: skip
