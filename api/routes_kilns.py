"""Kiln routes: list, live values, hourly aggregates (JSON or CSV)."""

from __future__ import annotations

import functools
import json
import math
import time
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from analytics import kiln_params as kp
from analytics import quality as q
from analytics import tables
from analytics.aggregates import HourAggregate, MinuteAggregate
from analytics.minutes import MINUTE_NS
from analytics.signals import KilnSpec, Quantity

from . import paging
from .context import ApiContext
from .csv_dialect import Dialect
from .limits import ReportSlot
from .models import HourlyRow, KilnSummary, LiveResponse, Report
from .report_time import Tz, report_clock
from .timeparse import iso, time_range

router = APIRouter(prefix="/api/v1")

HOURLY_FIELDS = tables.HOURLY_FIELDS
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


def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.context
    return ctx


async def context_dependency(request: Request) -> ApiContext:
    # async: a plain function dependency would run on a worker thread, for every request
    return get_context(request)


Context = Annotated[ApiContext, Depends(context_dependency)]


async def get_kiln(kiln_id: str, ctx: Context) -> KilnSpec:
    return kiln_or_404(ctx, kiln_id)


def kiln_or_404(ctx: ApiContext, kiln_id: str) -> KilnSpec:
    kiln = ctx.kiln(kiln_id)
    if kiln is None:
        raise HTTPException(404, detail=f"no kiln {kiln_id!r}; known kilns: {[k.id for k in ctx.kilns]}")
    return kiln


Kiln = Annotated[KilnSpec, Depends(get_kiln)]


#: Signal times repeat from one request to the next until new readings arrive; formatting them
#: anew was a third of the cost of a live payload.
_iso_cached = functools.lru_cache(maxsize=4096)(iso)


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


@router.get("/kilns", response_model=list[KilnSummary])
async def list_kilns(ctx: Context) -> list[KilnSummary]:
    return [
        KilnSummary(id=k.id, name=ctx.kiln_names.get(k.id, k.name) or k.id, plant=k.plant) for k in ctx.kilns
    ]


def live_body(ctx: ApiContext, kiln: KilnSpec) -> dict[str, Any]:
    """The live values of a kiln as plain data, keys in :class:`LiveResponse`'s field order."""
    minute: MinuteAggregate | None = ctx.live.newest_minute(kiln.id)
    signals: dict[str, dict[str, Any]] = {}
    for idx in kiln.signals:
        info = ctx.table.signals[idx]
        now = ctx.live.signal_now(idx)
        signals[info.id] = {
            "value": None if now is None else _num(now.value),
            "unit": info.unit,
            "quality": None if now is None else q.describe(now.quality),
            "time": None if now is None else _iso_cached(now.ts_ns),
        }
    return {
        "kiln": kiln.id,
        "time": None if minute is None else _iso_cached(minute.start_ns),
        "co2_t_per_h": None if minute is None else _num(minute.co2_t_per_h),
        "clinker_t_per_h": None if minute is None else _num(minute.clinker_t_per_h),
        "intensity_kg_per_t": None if minute is None else _num(minute.intensity_kg_per_t),
        "valid": False if minute is None else minute.valid,
        "age_s": None if minute is None else round(time.time() - (minute.start_ns + MINUTE_NS) / 1e9, 3),
        "signals": signals,
        "method": ctx.method,
    }


def live_payload(ctx: ApiContext, kiln: KilnSpec) -> LiveResponse:
    return LiveResponse.model_validate(live_body(ctx, kiln))


def live_json(ctx: ApiContext, kiln: KilnSpec) -> bytes:
    """``live_payload(...).model_dump_json()`` without building and validating the model.

    The body is built again only when the engine changed since (``live.changes``); between
    batches every poll gets the same body with its age brought up to date.
    """
    changes = ctx.live.changes
    cached = ctx.live_bodies.get(kiln.id)
    if cached is None or cached[0] != changes:
        body = live_body(ctx, kiln)
        body["method"] = orjson.Fragment(orjson.dumps(body["method"]))
        minute = ctx.live.newest_minute(kiln.id)
        ctx.live_bodies[kiln.id] = cached = (changes, body, _minute_end_s(minute))
    _, body, minute_end_s = cached
    if minute_end_s is not None:
        body["age_s"] = round(time.time() - minute_end_s, 3)
    return orjson.dumps(body)


def _minute_end_s(minute: MinuteAggregate | None) -> float | None:
    return None if minute is None else (minute.start_ns + MINUTE_NS) / 1e9


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
    start: Annotated[str | None, Query(description="ISO 8601, default: 24 h before end")] = None,
    end: Annotated[str | None, Query(description="ISO 8601, default: now")] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
    dialect: Annotated[
        Dialect, Query(description="CSV: rfc4180 (comma, dot) or excel-comma (semicolon, decimal comma, BOM)")
    ] = "rfc4180",
    tz: Tz = None,
    envelope: Annotated[
        bool,
        Query(
            description="JSON as {method, rows, next} instead of a bare list (the method is always in the "
            f"{METHOD_HEADER} header)"
        ),
    ] = False,
    ledger: Annotated[bool, Query(description="add the per-signal completeness ledger")] = False,
) -> Any:
    """Hourly CO2 of a kiln. ``co2_t`` is the reported value: invalid parameters substituted (see
    ``substitution_method``), CO counted as CO2 under eu_mrr; revised hours carry a higher ``revision``.
    JSON pages hold at most ``max_rows`` hours; the next page is in the ``Link: <url>; rel="next"``
    header (and ``next`` of the envelope). CSV streams the whole range."""
    start_ns, end_ns = time_range(start, end, 24 * 3600 * 10**9, time.time_ns())
    feeds = signal_feeds(ctx, kiln)
    headers = method_header(kiln_method(ctx, kiln.id))

    clock = report_clock(ctx, [kiln.id], tz)

    def row(h: HourAggregate) -> list[dict[str, Any]]:
        r = tables.with_local_times([tables.hourly_row(h, feeds)], clock)[0]
        if not ledger:
            r["ledger"] = None
        return [r]

    load = paging.hour_groups(ctx.history, kiln.id, row)
    if format == "csv":
        return paging.csv_stream(
            load, start_ns, end_ns, paging.CHUNK_NS, HOURLY_FIELDS, f"{kiln.id}-hourly.csv", headers, dialect
        )
    rows, cursor = await paging.page(load, start_ns, end_ns, paging.CHUNK_NS, ctx.limits.max_rows, HourlyRow)
    link = None if cursor is None else paging.next_url(request, start=iso(cursor), end=iso(end_ns))
    return paging.json_page(rows, headers, link, kiln_method(ctx, kiln.id) if envelope else None)
