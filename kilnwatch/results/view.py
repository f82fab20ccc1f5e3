"""What the results servers publish, read the way the API reads it: the live body of ``/live``, the
newest closed hour as a row of ``/hourly`` and the alarms of ``/alarms``, per kiln.

The newest closed hour comes from the service's closed hours as they happen (recomputations
included), seeded from the store at start-up; everything else is read from the engine on demand.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from analytics import tables
from analytics.aggregates import HourAggregate
from analytics.engine import EngineOutput
from api.alarm_watch import AlarmWatch
from api.alarms import Alarm
from api.context import ApiContext
from api.live import live_body
from api.report_time import report_clock
from api.routes_kilns import signal_feeds

log = logging.getLogger("kilnwatch.results")

#: Per kiln, these alarm kinds have a node / metric of their own (api.alarms); ``source`` is plant-wide.
KILN_ALARMS = ("stale", "fault", "maintenance", "calibration", "intensity", "co2", "completeness")
#: How far back the store is read for the newest hour at start-up [ns].
_SEED_BACK_NS = 7 * 86_400 * 10**9


@dataclass(frozen=True)
class AlarmState:
    active: bool
    message: str


@dataclass(frozen=True)
class KilnResults:
    kiln: str
    #: The body of ``GET /api/v1/kilns/<kiln>/live``.
    live: dict[str, Any]
    #: The newest closed hour, as its row of ``GET /api/v1/kilns/<kiln>/hourly`` (None before any).
    hour: dict[str, Any] | None
    hour_start_ns: int | None
    minute_start_ns: int | None
    #: Catching up or no new valid minute for the alarms' ``stale_after_s``: the live values are old.
    stale: bool
    alarms: dict[str, AlarmState]


@dataclass(frozen=True)
class Snapshot:
    kilns: dict[str, KilnResults]
    #: Plant-wide: a source disconnected (the alarm's message names them).
    source_alarm: AlarmState
    taken_ns: int = field(default_factory=time.time_ns)


class ResultsView:
    """Snapshots of the results; each reader's :meth:`changes` event is set when a minute or an hour
    closes."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.watch = AlarmWatch(ctx)
        self.hours: dict[str, HourAggregate] = {}
        self._changes: list[asyncio.Event] = []
        self._feeds = {k.id: signal_feeds(ctx, k) for k in ctx.kilns}

    def on_output(self, out: EngineOutput) -> None:
        """A listener of the service's closed minutes and hours (on the event loop)."""
        for h in out.hours:
            self._keep(h)
        if out.minutes or out.hours:
            for event in self._changes:
                event.set()

    def changes(self) -> asyncio.Event:
        """An event of one reader's own, set at every closed minute or hour (the reader clears it)."""
        event = asyncio.Event()
        self._changes.append(event)
        return event

    def _keep(self, h: HourAggregate) -> None:
        old = self.hours.get(h.kiln)
        if old is None or (h.start_ns, h.revision) >= (old.start_ns, old.revision):
            self.hours[h.kiln] = h

    async def seed(self) -> None:
        """The newest stored hour of each kiln (what closed before this run)."""
        now = time.time_ns()
        for k in self.ctx.kilns:
            hours = await asyncio.to_thread(
                self.ctx.history.hours, k.id, now - _SEED_BACK_NS, now + 86_400 * 10**9
            )
            if hours:
                self._keep(hours[-1])

    def hour_row(self, h: HourAggregate) -> dict[str, Any]:
        clock = report_clock(self.ctx, [h.kiln], None)
        return tables.hourly_row(h, self._feeds.get(h.kiln), ledger=False, clock=clock)

    async def snapshot(self) -> Snapshot:
        book = await self.watch.evaluate()
        out: dict[str, KilnResults] = {}
        for k in self.ctx.kilns:
            minute = self.ctx.live.newest_minute(k.id)
            hour = self.hours.get(k.id)
            status = book.status.get(k.id)
            alarms = {
                kind: AlarmState(a is not None, "" if a is None else a.message)
                for kind in KILN_ALARMS
                for a in [book.active.get(f"{kind}:{k.id}")]
            }
            out[k.id] = KilnResults(
                kiln=k.id,
                live=live_body(self.ctx, k),
                hour=None if hour is None else self.hour_row(hour),
                hour_start_ns=None if hour is None else hour.start_ns,
                minute_start_ns=None if minute is None else minute.start_ns,
                stale=status is not None and status.status in ("stale", "catching_up"),
                alarms=alarms,
            )
        sources: list[Alarm] = [a for a in book.active.values() if a.kind == "source"]
        source_alarm = AlarmState(bool(sources), "; ".join(a.message for a in sources))
        return Snapshot(out, source_alarm)
