"""Incremental pulls and conditional requests of the report routes (decision 0031).

Every stored hour carries a change number, store-wide and rising (``collector.store.hourly_forms``).
A report answer says up to which number it is complete, in the ``X-Kilnwatch-Change-Seq`` header
(and ``change_seq`` of a JSON envelope); ``?changed_since=N`` keeps only what an hour changed after
``N`` touches: the hours themselves, or the days, months and years holding them. A client pulls
with ``changed_since=0`` once, then with the number of its last answer.

Over several pages (``Link: rel="next"``) the number is the first page's, carried by the next links
(``as_of``), so that a change made between two pages is pulled again next time, never missed.

``ETag`` is made of the store's newest number, the route, its query, the rows' time window and the
method block; ``If-None-Match`` with it answers 304 before anything is read.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from kilnwatch import __version__

from .context import ApiContext, ChangeSource
from .timeparse import EARLIEST, LATEST, iso, parse_time, time_range

#: Response header: the change number up to which the answer is complete.
CHANGE_SEQ_HEADER = "X-Kilnwatch-Change-Seq"
#: The same number in a JSON envelope.
CHANGE_SEQ_FIELD = "change_seq"
EARLIEST_NS = int(EARLIEST.timestamp()) * 10**9
LATEST_NS = int(LATEST.timestamp()) * 10**9

ChangedSince = Annotated[
    int | None,
    Query(
        ge=0,
        description="only what hours changed (added or revised) after this change number touch; the "
        f"number to ask with next time is in the {CHANGE_SEQ_HEADER} header. 0: everything. Without "
        "start/end: of any time",
    ),
]
AsOf = Annotated[
    int | None,
    Query(ge=0, description=f"set by next links: the {CHANGE_SEQ_HEADER} of the pull's first page"),
]


@dataclass(frozen=True, slots=True)
class Pull:
    """What a report answer is made of, besides its rows."""

    seq: int  # the answer is complete up to this change number
    etag: str
    changed_hours: frozenset[int] | None  # starts of the hours changed since; None: every hour

    def keeps(self, start_ns: int, end_ns: int) -> bool:
        """Whether a period [start, end) holds a changed hour (always, without ``changed_since``)."""
        if self.changed_hours is None:
            return True
        return any(start_ns <= h < end_ns for h in self.changed_hours)

    def headers(self) -> dict[str, str]:
        return {"ETag": self.etag, CHANGE_SEQ_HEADER: str(self.seq)}

    def next_params(self, changed_since: int | None) -> dict[str, str]:
        """Query of a next page: the pull's number rides along."""
        return {} if changed_since is None else {"as_of": str(self.seq)}


def newest_seq(ctx: ApiContext) -> int:
    """The store's newest change number (0: a history without numbers)."""
    return ctx.history.newest_change_seq() if isinstance(ctx.history, ChangeSource) else 0


def etag(request: Request, seq: int, window: tuple[int, int], method: dict[str, Any]) -> str:
    """A weak validator of an answer: same number, route, query, window and method, same rows."""
    query = sorted(request.query_params.multi_items())
    key = orjson.dumps([__version__, request.url.path, query, window, method], option=orjson.OPT_SORT_KEYS)
    return f'W/"{seq}-{hashlib.blake2b(key, digest_size=8).hexdigest()}"'


def matches(request: Request, tag: str) -> bool:
    """``If-None-Match`` holds ``tag`` (weak comparison) or ``*``."""
    given = request.headers.get("if-none-match")
    if not given:
        return False
    strip = tag.removeprefix("W/")
    return any(t.strip() == "*" or t.strip().removeprefix("W/") == strip for t in given.split(","))


def window_of(start_ns: int, end_ns: int, step_ns: int) -> tuple[int, int]:
    """The rows' window: [start, end) rounded up to the rows' step, so that a default window ending
    now keeps its validator until a row enters or leaves it."""
    return -(-start_ns // step_ns), -(-end_ns // step_ns)


@dataclass(frozen=True, slots=True)
class PullRange:
    """[start_ns, end_ns) of an hourly request and its ``changed_since``."""

    start_ns: int
    end_ns: int
    changed_since: int | None


async def _pull_range(
    start: Annotated[
        str | None, Query(description="ISO 8601, default: 24 h before end (changed_since: any)")
    ] = None,
    end: Annotated[str | None, Query(description="ISO 8601, default: now (changed_since: any)")] = None,
    changed_since: ChangedSince = None,
) -> PullRange:
    """``?start=&end=`` (by default the 24 hours up to now, at most 3 years); with ``changed_since``
    a bound not given is the earliest or latest supported time, and any span goes (pages bound it)."""
    if changed_since is None:
        return PullRange(*time_range(start, end, 24 * 3600 * 10**9, time.time_ns()), None)
    lo = parse_time(start, "start") if start else EARLIEST_NS
    hi = parse_time(end, "end") if end else LATEST_NS
    if lo >= hi:
        raise HTTPException(422, detail=f"start ({iso(lo)}) must be before end ({iso(hi)})")
    return PullRange(lo, hi, changed_since)


#: The hourly route's range and ``changed_since``.
PullSpan = Annotated[PullRange, Depends(_pull_range)]


async def begin(
    request: Request,
    ctx: ApiContext,
    window: tuple[int, int],
    method: dict[str, Any],
    changed_since: int | None,
    kilns: list[str],
    span: tuple[int, int],
    as_of: int | None,
    filters_itself: bool = False,
) -> Pull | Response:
    """The pull of a report request, or the 304 answer when the client's copy is current. ``span``:
    the hours the report reads (for ``changed_since``); ``filters_itself``: the route reads only the
    changed hours on its own (no list of them needed)."""
    current = await run_in_threadpool(newest_seq, ctx)
    pull = Pull(current if as_of is None else as_of, etag(request, current, window, method), None)
    if matches(request, pull.etag):
        return Response(status_code=304, headers=pull.headers())
    if changed_since is None or filters_itself or not isinstance(ctx.history, ChangeSource):
        return pull
    history = ctx.history
    hours = await run_in_threadpool(history.changed_hours, kilns, changed_since, *span)
    return Pull(pull.seq, pull.etag, frozenset(hours))
