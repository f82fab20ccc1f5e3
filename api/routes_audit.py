"""``GET /api/v1/audit`` (admin): the append-only audit trail, filtered, as JSON or CSV; and
``GET /api/v1/kilns/{id}/raw``: one signal's stored readings (as they came and as computed) with the
QAL2 functions in force over the span. Only reading routes: nothing here changes the trail."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from analytics import quality as q

from .csv_dialect import csv_text
from .deps import Context, CsvDialect, Format, Kiln, Last2h
from .security.auth import Admin
from .timeparse import iso, parse_time

router = APIRouter(prefix="/api/v1")
_FIELDS = ["id", "time", "actor", "action", "subject", "before", "after", "reason"]


class AuditOut(BaseModel):
    id: int
    time: str
    actor: str = Field(description="the token's name, or 'kilnwatch' for what the service itself saw")
    action: str = Field(description="e.g. alarm.acknowledge, alarm.shelve, config.loaded")
    subject: str
    before: Any
    after: Any
    reason: str


@router.get("/audit", response_model=list[AuditOut], tags=["audit"])
async def audit(
    ctx: Context,
    who: Admin,
    start: str | None = None,
    end: str | None = None,
    actor: str | None = None,
    action: Annotated[str | None, Query(description="exact, or a prefix ending in '.' (alarm.)")] = None,
    subject: Annotated[str | None, Query(description="prefix of the subject, e.g. alarm/")] = None,
    after_id: Annotated[int, Query(ge=0, description="rows after this id (paging)")] = 0,
    format: Format = "json",
    dialect: CsvDialect = "rfc4180",
) -> Response | list[AuditOut]:
    """Audit rows in id (time) order, at most ``max_rows`` per answer; the next page starts after the
    last id."""
    if ctx.audit is None:
        raise HTTPException(503, detail="this kilnwatch keeps no audit trail")
    rows = await run_in_threadpool(
        ctx.audit.entries,
        start_ns=None if start is None else parse_time(start, "start"),
        end_ns=None if end is None else parse_time(end, "end"),
        actor=actor,
        action=action,
        subject_prefix=subject,
        after_id=after_id,
        limit=ctx.limits.max_rows,
    )
    out = [
        AuditOut(
            id=e.id,
            time=iso(e.at_ns),
            actor=e.actor,
            action=e.action,
            subject=e.subject,
            before=e.before,
            after=e.after,
            reason=e.reason,
        )
        for e in rows
    ]
    if format == "csv":
        text = csv_text(
            (
                {
                    **o.model_dump(),
                    "before": _json(o.before),
                    "after": _json(o.after),
                }
                for o in out
            ),
            _FIELDS,
            dialect,
        )
        return PlainTextResponse(
            text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="kilnwatch-audit.csv"'},
        )
    return out


def _json(value: Any) -> str:
    return "" if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


class RawReading(BaseModel):
    ts: str
    raw: float | None = Field(description="the value as it came from the source")
    value: float | None = Field(description="as kilnwatch computed it (calibrated, canonical unit)")
    quality: int
    quality_word: str


class CalibrationOut(BaseModel):
    signal: str
    a: float
    b: float
    valid_min: float | None
    valid_max: float | None
    in_force_from: str | None
    in_force_to: str | None
    invalidate_outside: bool
    recorded: str = Field(description="when kilnwatch first ran with this function")


class RawResponse(BaseModel):
    kiln: str
    signal: str
    start: str
    end: str
    readings: list[RawReading]
    truncated: bool = Field(description="more readings than max_rows: narrow the span")
    calibrations: list[CalibrationOut] = Field(description="QAL2 functions y = a + b·x in force in the span")


@router.get("/kilns/{kiln_id}/raw", response_model=RawResponse, tags=["audit"])
async def raw(kiln: Kiln, ctx: Context, span: Last2h, signal: str) -> RawResponse:
    """One signal's stored readings in [start, end) (default: the last 2 hours), raw and computed."""
    ids = {ctx.table.signals[i].id for i in kiln.signals}
    full = signal if signal in ids else f"{kiln.id}.{signal}"
    if full not in ids:
        raise HTTPException(404, detail=f"no signal {signal!r} on kiln {kiln.id}; known: {sorted(ids)}")
    store = ctx.history
    if not hasattr(store, "audit") or not hasattr(store, "calibrations"):
        raise HTTPException(503, detail="this kilnwatch has no store of raw readings")
    rows = await run_in_threadpool(store.audit, full, span.start_ns, span.end_ns)
    calibrations = await run_in_threadpool(store.calibrations)
    limit = ctx.limits.max_rows
    in_force = [
        c
        for c in calibrations
        if c.signal == full
        and (c.in_force_from_ns is None or c.in_force_from_ns < span.end_ns)
        and (c.in_force_to_ns is None or c.in_force_to_ns > span.start_ns)
    ]
    return RawResponse(
        kiln=kiln.id,
        signal=full,
        start=iso(span.start_ns),
        end=iso(span.end_ns),
        readings=[
            RawReading(
                ts=iso(r.ts_ns),
                raw=r.raw,
                value=r.value,
                quality=r.quality,
                quality_word=q.describe(r.quality),
            )
            for r in rows[:limit]
        ],
        truncated=len(rows) > limit,
        calibrations=[
            CalibrationOut(
                signal=c.signal,
                a=c.a,
                b=c.b,
                valid_min=c.valid_min,
                valid_max=c.valid_max,
                in_force_from=None if c.in_force_from_ns is None else iso(c.in_force_from_ns),
                in_force_to=None if c.in_force_to_ns is None else iso(c.in_force_to_ns),
                invalidate_outside=c.invalidate_outside,
                recorded=iso(c.recorded_ns),
            )
            for c in in_force
        ],
    )
