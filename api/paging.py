"""Rows of the list routes in bounded pieces: JSON pages of at most ``max_rows`` rows with a cursor to
the next, and CSV streamed chunk by chunk, so no request holds a long period in memory at once.

Rows come in *groups*: the rows of one stored period (an hour, a day) with that period's start,
oldest first. A page ends between two groups, so the cursor of the next page is a group's start
(``start=`` of the next request) and every row comes exactly once across the pages. A page holds
at most ``max_rows`` rows, or the rows of one group when that group alone has more.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from pydantic_core import to_json

from analytics.aggregates import HourAggregate
from analytics.schema import Schema

from .context import HistorySource
from .csv_dialect import csv_text

#: (start of the period [ns], its rows)
Group = tuple[int, list[dict[str, Any]]]
#: Groups of the periods starting in [lo, hi) [ns], oldest first.
Loader = Callable[[int, int], Awaitable[list[Group]]]
LINK_NEXT = 'rel="next"'
#: Stored periods read per query (14 days): bounds what a request holds besides its page.
CHUNK_NS = 14 * 86_400 * 10**9


async def groups(load: Loader, start_ns: int, end_ns: int, chunk_ns: int) -> AsyncGenerator[Group, None]:
    """Every group of [start_ns, end_ns), loaded ``chunk_ns`` at a time."""
    t = start_ns
    while t < end_ns:
        hi = min(end_ns, t + chunk_ns)
        for g in await load(t, hi):
            yield g
        t = hi


#: Rows written to JSON together; a page keeps only their JSON text.
_ENCODE_ROWS = 500


async def page(
    load: Loader, start_ns: int, end_ns: int, chunk_ns: int, max_rows: int
) -> tuple[bytes, int | None]:
    """The first page of rows from ``start_ns`` as a JSON array, and the start of the next page
    (None: no more). The rows are written as they are: their schema made them JSON-ready."""
    parts: list[bytes] = []
    pending: list[dict[str, Any]] = []
    n = 0
    cursor = None
    async with contextlib.aclosing(groups(load, start_ns, end_ns, chunk_ns)) as gs:
        async for start, group in gs:
            if n and n + len(group) > max_rows:
                cursor = start
                break
            pending += group
            n += len(group)
            if len(pending) >= _ENCODE_ROWS:
                parts.append(await run_in_threadpool(orjson.dumps, pending))
                pending = []
    if pending:
        parts.append(await run_in_threadpool(orjson.dumps, pending))
    return b"[" + b",".join(p[1:-1] for p in parts if p != b"[]") + b"]", cursor


def hour_groups(
    history: HistorySource, kiln: str, rows: Callable[[HourAggregate], list[dict[str, Any]]]
) -> Loader:
    """A loader of one kiln's stored hours, each hour a group of ``rows(hour)`` (built on the
    worker thread that reads them)."""

    def read(lo: int, hi: int) -> list[Group]:
        return [(h.start_ns, rows(h)) for h in history.hours(kiln, lo, hi)]

    async def load(lo: int, hi: int) -> list[Group]:
        return await run_in_threadpool(read, lo, hi)

    return load


def next_url(request: Request, **params: str) -> str:
    return str(request.url.include_query_params(**params))


def json_page(
    rows: bytes | memoryview,
    headers: dict[str, str],
    next_link: str | None,
    method: dict[str, Any] | None = None,
    change_seq: int | None = None,
) -> Response:
    """A page: the bare array, or with ``method`` ``{"method", "rows", "next"}`` (and ``change_seq``
    when given, :mod:`api.changes`); with ``Link: <...>; rel="next"`` when there is a next page."""
    out = dict(headers)
    if next_link is not None:
        out["Link"] = f"<{next_link}>; {LINK_NEXT}"
    if method is not None:
        rows = b"".join(
            (
                b'{"method":',
                to_json(method),
                b',"rows":',
                rows,
                b',"next":',
                to_json(next_link),
                b"" if change_seq is None else b',"change_seq":%d' % change_seq,
                b"}",
            )
        )
    return Response(rows, media_type="application/json", headers=out)


def csv_stream(
    load: Loader,
    start_ns: int,
    end_ns: int,
    chunk_ns: int,
    fields: Schema,
    filename: str,
    headers: dict[str, str],
    dialect: str = "rfc4180",
) -> StreamingResponse:
    """The whole range as CSV (``dialect``: :mod:`api.csv_dialect`) with a header row (the CSV
    columns of ``fields``), written chunk by chunk as it is read."""

    async def body() -> AsyncIterator[str]:
        columns = fields.csv_header
        yield csv_text((), columns, dialect, header=True)
        t = start_ns
        while t < end_ns:
            hi = min(end_ns, t + chunk_ns)
            chunk = await load(t, hi)
            if chunk:
                rows = [r for _, group in chunk for r in group]
                yield await run_in_threadpool(csv_text, rows, columns, dialect, False)
            t = hi

    out = {"Content-Disposition": f'attachment; filename="{filename}"', **headers}
    return StreamingResponse(body(), media_type="text/csv", headers=out)
