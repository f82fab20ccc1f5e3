"""Kiln routes: list, live values, hourly aggregates (JSON or CSV)."""

from __future__ import annotations

import csv
import io
import math
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from analytics import quality as q
from analytics.aggregates import HourAggregate, MinuteAggregate
from analytics.minutes import MINUTE_NS
from analytics.signals import KilnSpec

from .context import ApiContext
from .models import HourlyRow, KilnSummary, LiveResponse, SignalValue
from .timeparse import iso, time_range

router = APIRouter(prefix="/api/v1")

HOURLY_FIELDS = ["hour", "co2_t", "clinker_t", "intensity_kg_per_t", "valid", "completeness", "revision"]


def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.context
    return ctx


Context = Annotated[ApiContext, Depends(get_context)]


def get_kiln(kiln_id: str, ctx: Context) -> KilnSpec:
    kiln = ctx.kiln(kiln_id)
    if kiln is None:
        raise HTTPException(404, detail=f"no kiln {kiln_id!r}; known kilns: {[k.id for k in ctx.kilns]}")
    return kiln


Kiln = Annotated[KilnSpec, Depends(get_kiln)]


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


@router.get("/kilns", response_model=list[KilnSummary])
async def list_kilns(ctx: Context) -> list[KilnSummary]:
    return [
        KilnSummary(id=k.id, name=ctx.kiln_names.get(k.id, k.name) or k.id, plant=k.plant) for k in ctx.kilns
    ]


def live_payload(ctx: ApiContext, kiln: KilnSpec) -> LiveResponse:
    minute: MinuteAggregate | None = ctx.live.newest_minute(kiln.id)
    signals: dict[str, SignalValue] = {}
    for idx in kiln.signals:
        info = ctx.table.signals[idx]
        now = ctx.live.signal_now(idx)
        signals[info.id] = SignalValue(
            value=None if now is None else _num(now.value),
            unit=info.unit,
            quality=None if now is None else q.describe(now.quality),
            time=None if now is None else iso(now.ts_ns),
        )
    if minute is None:
        return LiveResponse(kiln=kiln.id, signals=signals, method=ctx.method)
    return LiveResponse(
        kiln=kiln.id,
        time=iso(minute.start_ns),
        co2_t_per_h=_num(minute.co2_t_per_h),
        clinker_t_per_h=_num(minute.clinker_t_per_h),
        intensity_kg_per_t=_num(minute.intensity_kg_per_t),
        valid=minute.valid,
        age_s=round(time.time() - (minute.start_ns + MINUTE_NS) / 1e9, 3),
        signals=signals,
        method=ctx.method,
    )


@router.get("/kilns/{kiln_id}/live", response_model=LiveResponse)
async def live(kiln: Kiln, ctx: Context) -> LiveResponse:
    return live_payload(ctx, kiln)


def hourly_row(h: HourAggregate) -> HourlyRow:
    return HourlyRow(
        hour=iso(h.start_ns),
        co2_t=_num(h.co2_t),
        clinker_t=_num(h.clinker_t),
        intensity_kg_per_t=_num(h.intensity_kg_per_t),
        valid=h.valid,
        completeness=round(h.completeness, 6),
        revision=h.revision,
    )


def csv_response(rows: list[dict[str, Any]], fields: list[str], filename: str) -> Response:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        buf.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/kilns/{kiln_id}/hourly", response_model=list[HourlyRow])
async def hourly(
    kiln: Kiln,
    ctx: Context,
    start: Annotated[str | None, Query(description="ISO 8601, default: 24 h before end")] = None,
    end: Annotated[str | None, Query(description="ISO 8601, default: now")] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Any:
    start_ns, end_ns = time_range(start, end, 24 * 3600 * 10**9, time.time_ns())
    hours = await run_in_threadpool(ctx.history.hours, kiln.id, start_ns, end_ns)
    rows = [hourly_row(h) for h in hours]
    if format == "csv":
        return csv_response([r.model_dump() for r in rows], HOURLY_FIELDS, f"{kiln.id}-hourly.csv")
    return rows
