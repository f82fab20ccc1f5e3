"""``GET /api/v1/stream``: Server-Sent Events with each kiln's newest minute, closed hours and alarms.

On connect the stream sends ``hello`` (``{"kilns", "ping_s", "retry_ms", "stale_after_s"}``, with the
reconnect delay as the SSE ``retry`` field), every kiln's live payload, the alarms and every kiln's
running minute, then as things happen:

- ``minute``: the live payload of ``/api/v1/kilns/{id}/live`` when a kiln's minute closes (while a
  source replays history, at most one per kiln every ``min_interval_s``, the newest);
- ``revised``: ``{"kiln", "minute", "revision"}`` (``tables.REVISED_EVENT``) when late data
  recomputed an older minute;
- ``hour``: ``{"kiln", "hour", "revision"}`` (``tables.HOUR_EVENT``) when an hour closes or is
  recomputed;
- ``running_minute``: ``tables.RUNNING_MINUTE`` (``provisional: true``), about once a second per kiln:
  the minute still open from the points received so far; never stored, the ``minute`` event of
  that minute replaces it (a client that fell behind gets each kiln's newest only);
- ``alarms``: the body of ``/api/v1/alarms`` whenever an alarm or a kiln status changes;
- ``ping``: ``{"time"}`` every ``ping_s``, so that proxies keep the connection open and a client
  can tell a half-open connection from a quiet one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from analytics import tables
from analytics.signals import KilnSpec

from .alarm_watch import AlarmWatch
from .context import ApiContext
from .deps import Context, StreamSlot, Watch
from .live import live_json, running_row
from .timeparse import iso

router = APIRouter(prefix="/api/v1")
#: Longest wait between two looks at the alarms while nothing else happens [s].
_ALARM_LOOK_S = 0.5


async def _next(events: AsyncIterator[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return await anext(events)


def _revised(ctx: ApiContext, event: dict[str, Any]) -> bool:
    """A minute event of a recomputed minute older than the kiln's newest (not merely overtaken in
    a burst)."""
    if event.get("revision", 0) == 0:
        return False
    newest = ctx.live.newest_minute(event["kiln"])
    return newest is not None and event["start_ns"] < newest.start_ns


def _minute(ctx: ApiContext, kiln: KilnSpec) -> ServerSentEvent:
    return ServerSentEvent(live_json(ctx, kiln).decode(), event="minute")


def _running(row: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(json.dumps(row), event="running_minute")


def _alarms(watch: AlarmWatch) -> ServerSentEvent:
    return ServerSentEvent(watch.response().model_dump_json(), event="alarms")


async def _events(
    ctx: ApiContext, watch: AlarmWatch, kilns: Sequence[KilnSpec]
) -> AsyncIterator[ServerSentEvent]:
    by_id = {k.id: k for k in kilns}
    subscription = ctx.events.subscribe()
    pending = asyncio.create_task(_next(subscription))
    await asyncio.sleep(0)  # let the subscription register before the snapshot, so no minute falls between
    try:
        hello = {
            "kilns": [k.id for k in kilns],
            "ping_s": ctx.stream.ping_s,
            "retry_ms": ctx.stream.retry_ms,
            "stale_after_s": ctx.alarms.stale_after_s,
        }
        yield ServerSentEvent(json.dumps(hello), event="hello", retry=ctx.stream.retry_ms)
        for kiln in kilns:
            if ctx.live.newest_minute(kiln.id) is not None:
                yield _minute(ctx, kiln)
        await watch.evaluate()
        sent_version = watch.book.version
        yield _alarms(watch)
        for kiln in kilns:
            if (row := running_row(ctx, kiln)) is not None:
                yield _running(row)
        dirty: set[str] = set()
        flushed = time.monotonic()
        while True:
            done, _ = await asyncio.wait(
                {pending}, timeout=ctx.stream.min_interval_s if dirty else _ALARM_LOOK_S
            )
            if done:
                try:
                    batch = pending.result()
                except StopAsyncIteration:
                    return
                pending = asyncio.create_task(_next(subscription))
                running: dict[str, dict[str, Any]] = {}  # newest per kiln: a late one is superseded
                for event in batch:
                    kind, kiln_id = event.get("type"), event.get("kiln")
                    if kiln_id not in by_id:
                        continue
                    if kind == "running_minute":
                        running[kiln_id] = event["row"]
                    elif kind == "minute" and _revised(ctx, event):
                        yield ServerSentEvent(json.dumps(tables.REVISED_EVENT.row(event)), event="revised")
                    elif kind == "minute":
                        dirty.add(kiln_id)
                    elif kind == "hour":
                        yield ServerSentEvent(json.dumps(tables.HOUR_EVENT.row(event)), event="hour")
                for row in running.values():
                    yield _running(row)
            if dirty and time.monotonic() - flushed >= ctx.stream.min_interval_s:
                for kiln_id in sorted(dirty):
                    yield _minute(ctx, by_id[kiln_id])
                dirty.clear()
                flushed = time.monotonic()
            if not watch.running:  # else the app's watch keeps the book current (observing 200
                await watch.evaluate()  # kilns 4 times a second per stream was 8 % of a core)
            if watch.book.version != sent_version:
                sent_version = watch.book.version
                yield _alarms(watch)
    finally:
        # Not awaited: the response's cancel scope may be cancelled already; the task ends by itself.
        pending.cancel()


@router.get("/stream", response_class=EventSourceResponse)
async def stream(
    ctx: Context,
    watch: Watch,
    _slot: StreamSlot,
    kiln: Annotated[list[str] | None, Query(description="kiln ids; default: all")] = None,
) -> EventSourceResponse:
    """Live minutes, closed hours and alarms as Server-Sent Events (``text/event-stream``); over
    ``stream_clients`` open streams, 503 with ``Retry-After``."""
    kilns = list(ctx.kilns)
    if kiln:
        unknown = sorted(set(kiln) - {k.id for k in kilns})
        if unknown:
            raise HTTPException(404, detail=f"no kiln {unknown}; known kilns: {[k.id for k in kilns]}")
        kilns = [k for k in kilns if k.id in kiln]
    return EventSourceResponse(_events(ctx, watch, kilns), ping=ctx.stream.ping_s, ping_message_factory=_ping)


def _ping() -> ServerSentEvent:
    return ServerSentEvent(json.dumps({"time": iso(time.time_ns())}), event="ping")
