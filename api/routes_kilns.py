"""Kiln routes: list, live values, hourly aggregates (JSON or CSV)."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from analytics import kiln_params as kp
from analytics import tables
from analytics.aggregates import HourAggregate
from analytics.hours import HOUR_NS
from analytics.signals import KilnSpec, Quantity

from . import changes, hourly_rows, paging
from .changes import AsOf, PullSpan
from .context import ApiContext, ChangeSource
from .deps import Context, CsvDialect, Format, Kiln, ReportSlot, Tz, get_context, kiln_or_404
from .live import live_json
from .models import HourlyRow, KilnSummary, LiveResponse, Report
from .report_time import report_clock
from .timeparse import iso

router = APIRouter(prefix="/api/v1")

#: The rules used, as compact JSON, on every report response (lists stay lists for compatibility).
METHOD_HEADER = "X-Kilnwatch-Method"
_FEEDS = {
    Quantity.FLOW: kp.FLOW_N_DRY,
    Quantity.TEMPERATURE: kp.FLOW_N_DRY,
    Quantity.STATIC_PRESSURE: kp.FLOW_N_DRY,
    Quantity.BAROMETRIC_PRESSURE: kp.FLOW_N_DRY,
    Quantity.ABSOLUTE_PRESSURE: kp.FLOW_N_DRY,
    Quantity.H2O: kp.FLOW_N_DRY,
    Quantity.CO2: kp.CO2_DRY,
    Quantity.CO: kp.CO_DRY,
    Quantity.CLINKER_RATE: kp.CLINKER_RATE,
}


@router.get("/kilns", response_model=list[KilnSummary])
async def list_kilns(ctx: Context) -> list[KilnSummary]:
    return [
        KilnSummary(id=k.id, name=ctx.kiln_names.get(k.id, k.name) or k.id, plant=k.plant) for k in ctx.kilns
    ]


@router.get("/kilns/{kiln_id}/live", response_model=LiveResponse)
async def live(kiln_id: str, request: Request) -> Response:
    # The most polled route, kept lean: no dependency resolution, and the JSON written directly
    # (given a model, FastAPI dumps it to a dict, validates that again and then serialises it).
    # Together these were over a third of its time per request.
    ctx = get_context(request)
    return Response(live_json(ctx, kiln_or_404(ctx, kiln_id)), media_type="application/json")


def kiln_method(ctx: ApiContext, kiln_id: str | None = None) -> dict[str, Any]:
    """The method block for one kiln: the shared rules plus that kiln's own (``kiln``)."""
    method = {k: v for k, v in ctx.method.items() if k != "kilns"}
    if kiln_id is not None:
        method["kiln"] = ctx.method.get("kilns", {}).get(kiln_id, {})
    return method


def method_header(method: dict[str, Any]) -> dict[str, str]:
    return {METHOD_HEADER: json.dumps(method, separators=(",", ":"), ensure_ascii=True)}


def signal_feeds(ctx: ApiContext, kiln: KilnSpec) -> dict[str, str]:
    """Signal id -> the derived hourly parameter it feeds (for the ledger's ``substituted``)."""
    out = {}
    for g in kiln.signals:
        info = ctx.table.signals[g]
        if info.quantity in _FEEDS:
            out[info.id] = _FEEDS[info.quantity]
    return out


@router.get("/kilns/{kiln_id}/hourly", response_model=list[HourlyRow] | Report[HourlyRow])
async def hourly(
    kiln: Kiln,
    ctx: Context,
    request: Request,
    _slot: ReportSlot,
    span: PullSpan,
    format: Format = "json",
    dialect: CsvDialect = "rfc4180",
    tz: Tz = None,
    envelope: Annotated[
        bool,
        Query(
            description="JSON as {method, rows, next} instead of a bare list (the method is always in the "
            f"{METHOD_HEADER} header)"
        ),
    ] = False,
    ledger: Annotated[bool, Query(description="add the per-signal completeness ledger")] = False,
    as_of: AsOf = None,
) -> Any:
    """Hourly CO2 of a kiln. ``co2_t`` is the reported value: invalid parameters substituted (see
    ``substitution_method``), CO counted as CO2 under eu_mrr; revised hours carry a higher ``revision``.
    JSON pages hold at most ``max_rows`` hours; the next page is in the ``Link: <url>; rel="next"``
    header (and ``next`` of the envelope). CSV streams the whole range. ``changed_since``: only the
    hours added or revised after that change number (``X-Kilnwatch-Change-Seq`` of an earlier answer)."""
    start_ns, end_ns, changed_since = span.start_ns, span.end_ns, span.changed_since
    feeds = signal_feeds(ctx, kiln)
    method = kiln_method(ctx, kiln.id)
    clock = report_clock(ctx, [kiln.id], tz)
    window = changes.window_of(start_ns, end_ns, HOUR_NS)
    history = ctx.history
    notes = [] if ctx.annotations is None else ctx.annotations.current(kiln.id, start_ns - HOUR_NS, end_ns)
    # Stored rows (decision 0031) carry no annotations: a range with some takes the general path.
    stored_rows = isinstance(history, ChangeSource) and not ledger and not notes
    span_ns = (start_ns, end_ns)
    pull = await changes.begin(
        request, ctx, window, method, changed_since, [kiln.id], span_ns, as_of, filters_itself=stored_rows
    )
    if isinstance(pull, Response):
        return pull
    headers = {**method_header(method), **pull.headers()}
    if stored_rows and isinstance(history, ChangeSource):
        if format == "csv":
            name = f"{kiln.id}-hourly.csv"
            return hourly_rows.csv_stream(
                history, kiln.id, start_ns, end_ns, changed_since, clock, dialect, headers, name
            )
        stored, cursor = await run_in_threadpool(
            hourly_rows.read_page, history, kiln.id, start_ns, end_ns, changed_since, ctx.limits.max_rows
        )
        body = await run_in_threadpool(hourly_rows.json_array, stored, clock)
        if as_of is None:  # complete up to the number of its own read
            pull = dataclasses.replace(
                pull, seq=stored.newest_seq, etag=changes.etag(request, stored.newest_seq, window, method)
            )
            headers.update(pull.headers())
        return _hourly_page(
            request, body, cursor, end_ns, headers, method if envelope else None, pull, changed_since
        )

    if pull.changed_hours is not None:  # the general path reads only the stretch that changed
        start_ns = max(start_ns, min(pull.changed_hours, default=end_ns))
        end_ns = min(end_ns, max(pull.changed_hours, default=start_ns - HOUR_NS) + HOUR_NS)

    def row(h: HourAggregate) -> list[dict[str, Any]]:
        if pull.changed_hours is not None and h.start_ns not in pull.changed_hours:
            return []
        r = tables.hourly_row(h, feeds, ledger=ledger, clock=clock)
        if notes:
            r["annotations"] = [
                f"{a.id}:{a.kind}" for a in notes if a.covers(h.start_ns, h.start_ns + HOUR_NS)
            ]
        return [r]

    load = paging.hour_groups(ctx.history, kiln.id, row)
    if format == "csv":
        return paging.csv_stream(
            load, start_ns, end_ns, paging.CHUNK_NS, tables.HOURLY, f"{kiln.id}-hourly.csv", headers, dialect
        )
    rows, cursor = await paging.page(load, start_ns, end_ns, paging.CHUNK_NS, ctx.limits.max_rows)
    return _hourly_page(
        request, rows, cursor, end_ns, headers, method if envelope else None, pull, changed_since
    )


def _hourly_page(
    request: Request,
    rows: bytes | memoryview,
    cursor: int | None,
    end_ns: int,
    headers: dict[str, str],
    method: dict[str, Any] | None,
    pull: changes.Pull,
    changed_since: int | None,
) -> Response:
    link = None
    if cursor is not None:
        link = paging.next_url(request, start=iso(cursor), end=iso(end_ns), **pull.next_params(changed_since))
    return paging.json_page(rows, headers, link, method, pull.seq)
