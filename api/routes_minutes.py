"""``GET /api/v1/kilns/{id}/minutes``: the minute values the live engine holds (for the page's trend)."""

from __future__ import annotations

import math
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from . import paging
from .routes_kilns import Context, Kiln
from .timeparse import iso, time_range

router = APIRouter(prefix="/api/v1")
_DEFAULT_SPAN_NS = 2 * 3600 * 1_000_000_000


class MinuteRow(BaseModel):
    minute: str = Field(description="start of the minute, ISO 8601 UTC")
    co2_t_per_h: float | None
    clinker_t_per_h: float | None
    intensity_kg_per_t: float | None
    valid: bool
    revision: int = 0


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


@router.get("/kilns/{kiln_id}/minutes", response_model=list[MinuteRow])
async def minutes(
    kiln: Kiln,
    ctx: Context,
    request: Request,
    start: Annotated[str | None, Query(description="ISO 8601, default: 2 h before end")] = None,
    end: Annotated[str | None, Query(description="ISO 8601, default: now")] = None,
) -> Response:
    """Closed minutes starting in [start, end), oldest first; only the recent ones the engine keeps
    in memory (its ``keep_minutes``; older periods: the hourly endpoint). At most ``max_rows`` per
    answer; the next page is in the ``Link: <url>; rel="next"`` header."""
    start_ns, end_ns = time_range(start, end, _DEFAULT_SPAN_NS, time.time_ns())
    kept = [m for m in ctx.live.recent_minutes(kiln.id, start_ns) if m.start_ns < end_ns]
    limit = ctx.limits.max_rows
    link = None
    if len(kept) > limit:
        link = paging.next_url(request, start=iso(kept[limit].start_ns), end=iso(end_ns))
    rows = [
        {
            "minute": iso(m.start_ns),
            "co2_t_per_h": _num(m.co2_t_per_h),
            "clinker_t_per_h": _num(m.clinker_t_per_h),
            "intensity_kg_per_t": _num(m.intensity_kg_per_t),
            "valid": m.valid,
            "revision": m.revision,
        }
        for m in kept[:limit]
    ]
    return paging.json_page(paging.rows_json(MinuteRow, rows), {}, link)
