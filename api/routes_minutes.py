"""``GET /api/v1/kilns/{id}/minutes``: the minute values the live engine holds (for the page's trend)."""

from __future__ import annotations

import math
import time
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

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
    start: Annotated[str | None, Query(description="ISO 8601, default: 2 h before end")] = None,
    end: Annotated[str | None, Query(description="ISO 8601, default: now")] = None,
) -> list[MinuteRow]:
    """Closed minutes starting in [start, end), oldest first; only the recent ones the engine keeps
    in memory (its ``keep_minutes``; older periods: the hourly endpoint)."""
    start_ns, end_ns = time_range(start, end, _DEFAULT_SPAN_NS, time.time_ns())
    return [
        MinuteRow(
            minute=iso(m.start_ns),
            co2_t_per_h=_num(m.co2_t_per_h),
            clinker_t_per_h=_num(m.clinker_t_per_h),
            intensity_kg_per_t=_num(m.intensity_kg_per_t),
            valid=m.valid,
            revision=m.revision,
        )
        for m in ctx.live.recent_minutes(kiln.id, start_ns)
        if m.start_ns < end_ns
    ]
