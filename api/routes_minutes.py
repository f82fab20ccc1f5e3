"""``GET /api/v1/kilns/{id}/minutes``: the minute values the live engine holds (for the page's trend)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from analytics import tables

from . import paging
from .deps import Context, Kiln, Last2h
from .models import MinuteRow
from .timeparse import iso

router = APIRouter(prefix="/api/v1")


@router.get("/kilns/{kiln_id}/minutes", response_model=list[MinuteRow])
async def minutes(
    kiln: Kiln,
    ctx: Context,
    request: Request,
    span: Last2h,
) -> Response:
    """Closed minutes starting in [start, end), oldest first; only the recent ones the engine keeps
    in memory (``engine.trend_minutes`` of the plant file; older periods: the hourly endpoint). At
    most ``max_rows`` per answer; the next page is in the ``Link: <url>; rel="next"`` header."""
    start_ns, end_ns = span.start_ns, span.end_ns
    kept = [m for m in ctx.live.recent_minutes(kiln.id, start_ns) if m.start_ns < end_ns]
    limit = ctx.limits.max_rows
    link = None
    if len(kept) > limit:
        link = paging.next_url(request, start=iso(kept[limit].start_ns), end=iso(end_ns))
    rows = [tables.MINUTE.row(m) for m in kept[:limit]]
    return paging.json_page(orjson.dumps(rows), {}, link)
