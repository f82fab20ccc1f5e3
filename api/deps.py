"""The API's shared FastAPI dependencies, each named once as an ``Annotated`` alias.

A route says what it needs by the type of a parameter, e.g.
``async def hourly(kiln: Kiln, ctx: Context, _slot: ReportSlot, span: Last24h)``; FastAPI fills it in
(and lists the query parameters a dependency reads in the OpenAPI docs). Dependencies that more than
one route needs belong here.
"""

# No ``from __future__ import annotations``: FastAPI reads the annotations of the time-range
# dependencies below, which refer to values of their enclosing function.
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Query, Request

from analytics.hours import HOUR_NS
from analytics.signals import KilnSpec

from . import limits
from .alarm_watch import AlarmWatch
from .context import ApiContext
from .csv_dialect import Dialect
from .timeparse import time_range


def get_context(request: Request) -> ApiContext:
    """The context the app was built with (also for routes that skip dependency resolution)."""
    ctx: ApiContext = request.app.state.context
    return ctx


async def _context(request: Request) -> ApiContext:
    # async: a plain function dependency would run on a worker thread, for every request
    return get_context(request)


Context = Annotated[ApiContext, Depends(_context)]


def kiln_or_404(ctx: ApiContext, kiln_id: str) -> KilnSpec:
    kiln = ctx.kiln(kiln_id)
    if kiln is None:
        raise HTTPException(404, detail=f"no kiln {kiln_id!r}; known kilns: {[k.id for k in ctx.kilns]}")
    return kiln


async def _kiln(kiln_id: str, ctx: Context) -> KilnSpec:
    return kiln_or_404(ctx, kiln_id)


#: The kiln of the path's ``{kiln_id}``; 404 with the known kilns when there is none.
Kiln = Annotated[KilnSpec, Depends(_kiln)]

#: One of the ``report_concurrency`` report slots, held until the response is sent (else 503).
ReportSlot = Annotated[None, Depends(limits.report_slot)]
#: One of the ``stream_clients`` stream places, held while the stream is open (else 503).
StreamSlot = Annotated[None, Depends(limits.stream_slot)]

#: ``?format=json|csv``
Format = Annotated[Literal["json", "csv"], Query()]
#: ``?dialect=`` of a CSV answer (:mod:`api.csv_dialect`)
CsvDialect = Annotated[
    Dialect,
    Query(
        description="CSV: rfc4180 (comma, decimal point) or excel-comma (semicolon, decimal comma, UTF-8 BOM)"
    ),
]
#: ``?tz=``: the time zone of a report's local days and times (:func:`api.report_time.report_clock`)
Tz = Annotated[
    str | None,
    Query(description="IANA time zone of local days and times, e.g. Europe/Berlin; default: the plant's"),
]


@dataclass(frozen=True, slots=True)
class TimeRange:
    """[start_ns, end_ns) from ``?start=&end=`` (ISO 8601)."""

    start_ns: int
    end_ns: int


def _time_range(default_span_ns: int, default_span: str) -> Any:
    start_doc = f"ISO 8601, default: {default_span} before end"

    async def parse(
        start: Annotated[str | None, Query(description=start_doc)] = None,
        end: Annotated[str | None, Query(description="ISO 8601, default: now")] = None,
    ) -> TimeRange:
        return TimeRange(*time_range(start, end, default_span_ns, time.time_ns()))

    return Depends(parse)


#: ``?start=&end=``, by default the 24 hours up to now; a malformed or reversed range is a 422.
Last24h = Annotated[TimeRange, _time_range(24 * HOUR_NS, "24 h")]
#: ``?start=&end=``, by default the 2 hours up to now.
Last2h = Annotated[TimeRange, _time_range(2 * HOUR_NS, "2 h")]


def _watch(request: Request) -> AlarmWatch:
    watch: AlarmWatch = request.app.state.alarm_watch
    return watch


Watch = Annotated[AlarmWatch, Depends(_watch)]
