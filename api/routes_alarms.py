"""``GET /api/v1/alarms``, and the watch that feeds the alarm book from the live state and the store."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from analytics import quality as q
from analytics.aggregates import MinuteAggregate

from .alarms import Alarm, AlarmBook, HourSeen, KilnObservation, MinuteSeen, Observation, SourceSeen
from .context import ApiContext
from .timeparse import iso

log = logging.getLogger("kilnwatch.alarms")
router = APIRouter(prefix="/api/v1")
_NS = 1_000_000_000
#: How far back to look for the newest closed hour, before the newest minute [ns].
_HOURS_BACK_NS = 3 * 3600 * _NS
#: Evaluations closer together than this reuse the previous result [s].
_MIN_EVALUATION_GAP_S = 0.25


class AlarmOut(BaseModel):
    id: str
    kind: str = Field(
        description="stale, maintenance, calibration, fault, source, intensity, co2, completeness"
    )
    severity: str = Field(description="alarm or warning")
    kiln: str | None
    message: str = Field(description="in English")
    code: str = Field(description="stable message code; with params, the message in any language")
    params: dict[str, float | str] = Field(description="values the message names, by name")
    start: str = Field(description="wall-clock time the alarm was raised, ISO 8601 UTC")
    end: str | None = Field(description="wall-clock time it cleared itself; null while active")
    active: bool
    data_time: str | None = Field(description="the minute or hour (event time) the alarm refers to")
    subjects: list[str]


class KilnStatusOut(BaseModel):
    status: str = Field(description="valid, stale, maintenance, fault, catching_up, invalid, no_data")
    detail: str
    lag_s: float | None = Field(description="wall clock minus the end of the newest minute [s]")
    minute_age_s: float | None = Field(description="since a new minute arrived [s]")
    valid_age_s: float | None = Field(description="since a new valid minute arrived [s]")


class AlarmsResponse(BaseModel):
    time: str
    stale_after_s: float
    catch_up_lag_s: float
    kilns: dict[str, KilnStatusOut]
    active: list[AlarmOut]
    cleared: list[AlarmOut]
    version: int


def alarm_out(a: Alarm) -> AlarmOut:
    return AlarmOut(
        id=a.key,
        kind=a.kind,
        severity=a.severity,
        kiln=a.kiln,
        message=a.message,
        code=a.code,
        params=a.params,
        start=iso(a.start_ns),
        end=None if a.end_ns is None else iso(a.end_ns),
        active=a.active,
        data_time=None if a.data_time_ns is None else iso(a.data_time_ns),
        subjects=list(a.subjects),
    )


def _minute_seen(m: MinuteAggregate | None) -> MinuteSeen | None:
    if m is None:
        return None
    return MinuteSeen(m.start_ns, m.revision, m.valid, m.co2_t_per_h, m.intensity_kg_per_t)


def sources_seen(sources: Any) -> list[SourceSeen]:
    """Source health as the alarms need it, from a HealthRegistry-like object or a mapping of them."""
    items: Mapping[str, Any] = getattr(sources, "sources", sources) or {}
    out = []
    for name, h in items.items():
        get = h.get if isinstance(h, Mapping) else lambda key, default=None, h=h: getattr(h, key, default)
        since = get("since_wall") or get("since") or time.time()
        out.append(
            SourceSeen(
                str(name),
                str(get("kind", "")),
                bool(get("connected", False)),
                int(since * _NS),
                get("last_error"),
            )
        )
    return out


def observe(ctx: ApiContext, now_ns: int, hours: Mapping[str, HourSeen | None]) -> Observation:
    kilns = []
    for k in ctx.kilns:
        qualities: dict[str, str] = {}
        for idx in k.signals:
            now = ctx.live.signal_now(idx)
            if now is not None:
                qualities[ctx.table.signals[idx].id] = q.describe(now.quality)
        name = ctx.kiln_names.get(k.id, k.name) or k.id
        kilns.append(
            KilnObservation(
                k.id, name, _minute_seen(ctx.live.newest_minute(k.id)), qualities, hours.get(k.id)
            )
        )
    return Observation(now_ns, kilns, sources_seen(ctx.sources))


class AlarmWatch:
    """Evaluates the alarm book every ``evaluate_every_s`` when :meth:`run` runs, and on demand."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.book = AlarmBook(ctx.alarms, time.time_ns())
        self._hours: dict[str, HourSeen | None] = {}
        self._hours_read = -float("inf")
        self._evaluated = -float("inf")

    def _newest_hours(self, newest_minutes: dict[str, int]) -> dict[str, HourSeen | None]:
        """Newest closed hour before each kiln's newest minute [start ns]; runs on a worker thread."""
        out: dict[str, HourSeen | None] = {}
        for kiln, minute_ns in newest_minutes.items():
            hours = self.ctx.history.hours(kiln, minute_ns - _HOURS_BACK_NS, minute_ns + 1)
            out[kiln] = HourSeen(hours[-1].start_ns, hours[-1].completeness) if hours else None
        return out

    async def evaluate(self) -> AlarmBook:
        if time.monotonic() - self._evaluated < _MIN_EVALUATION_GAP_S:
            return self.book
        if time.monotonic() - self._hours_read >= self.ctx.alarms.hours_every_s:
            self._hours_read = time.monotonic()
            newest = {k.id: m.start_ns for k in self.ctx.kilns if (m := self.ctx.live.newest_minute(k.id))}
            self._hours = await run_in_threadpool(self._newest_hours, newest)
        self._evaluated = time.monotonic()
        self.book.update(observe(self.ctx, time.time_ns(), self._hours))
        return self.book

    async def run(self) -> None:
        while True:
            try:
                await self.evaluate()
            except Exception:
                log.exception("evaluating the alarms failed")
            await asyncio.sleep(self.ctx.alarms.evaluate_every_s)

    def response(self) -> AlarmsResponse:
        book = self.book
        return AlarmsResponse(
            time=iso(time.time_ns()),
            stale_after_s=book.settings.stale_after_s,
            catch_up_lag_s=book.settings.catch_up_lag_s,
            kilns={k: KilnStatusOut(**asdict(s)) for k, s in book.status.items()},
            active=[alarm_out(a) for a in sorted(book.active.values(), key=lambda a: a.start_ns)],
            cleared=[alarm_out(a) for a in book.cleared],
            version=book.version,
        )


def get_watch(request: Request) -> AlarmWatch:
    watch: AlarmWatch = request.app.state.alarm_watch
    return watch


Watch = Annotated[AlarmWatch, Depends(get_watch)]


@router.get("/alarms", response_model=AlarmsResponse)
async def alarms(watch: Watch) -> AlarmsResponse:
    """Active alarms, recently cleared ones (newest first) and each kiln's status."""
    await watch.evaluate()
    return watch.response()
