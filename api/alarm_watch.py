"""The watch that feeds the alarm book from the live state and the store, and follows it with the
alarm lifecycle (:mod:`api.alarm_lifecycle`), whose state it keeps in the alarm store."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from fastapi import HTTPException
from fastapi.concurrency import run_in_threadpool

from analytics import quality as q
from analytics.aggregates import MinuteAggregate

from .alarm_lifecycle import (
    ACTIVE_ACK,
    ACTIVE_UNACK,
    CLEARED_UNACK,
    SHELVED,
    SUPPRESSED,
    AlarmLifecycle,
    Changes,
    LifecycleError,
    StoppedHook,
)
from .alarm_models import (
    ActionBody,
    AlarmOut,
    AlarmsResponse,
    KilnStatusOut,
    ShelveBody,
    alarm_out,
    occurrence_out,
)
from .alarm_notify import Notifier, channels
from .alarms import AlarmBook, HourSeen, KilnObservation, MinuteSeen, Observation, SourceSeen
from .context import ApiContext
from .timeparse import iso

log = logging.getLogger("kilnwatch.alarms")
_NS = 1_000_000_000
#: How far back to look for the newest closed hour, before the newest minute [ns].
_HOURS_BACK_NS = 3 * 3600 * _NS
#: Evaluations closer together than this reuse the previous result [s].
_MIN_EVALUATION_GAP_S = 0.25


def engine_stopped(ctx: ApiContext) -> StoppedHook:
    """The engine's operating state: the kiln's newest minute had no grid point with the kiln running."""

    def stopped(kiln: str, now_ns: int) -> bool:
        m = ctx.live.newest_minute(kiln)
        return m is not None and getattr(m, "n_running", None) == 0

    return stopped


def stopped_by_annotation_or_engine(ctx: ApiContext) -> StoppedHook:
    """Stopped when an operator's ``kiln_stopped`` annotation covers the moment, or else when the
    engine saw the kiln not running in its newest minute."""
    engine = engine_stopped(ctx)
    annotations = ctx.annotations

    def stopped(kiln: str, now_ns: int) -> bool:
        if annotations is not None and annotations.is_stopped(kiln, now_ns):
            return True
        return engine(kiln, now_ns)

    return stopped


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
    """Evaluates the alarm book every ``evaluate_every_s`` when :meth:`run` runs, and on demand, and
    follows it with the lifecycle, whose state it keeps in ``ctx.alarm_store``."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        now = time.time_ns()
        self.book = AlarmBook(ctx.alarms, now)
        self._hours: dict[str, HourSeen | None] = {}
        self._hours_read = -float("inf")
        self._hours_reading: asyncio.Future[dict[str, HourSeen | None]] | None = None
        self._evaluated = -float("inf")
        #: True while :meth:`run` evaluates every ``evaluate_every_s``: readers then need not.
        self.running = False
        if ctx.alarm_store is None:
            from collector.store.alarm_state import AlarmStateStore  # no store: in memory only

            ctx.alarm_store = AlarmStateStore(":memory:")
        self.store = ctx.alarm_store
        s = ctx.alarms
        grace = s.lifecycle.restore_grace_s
        if grace is None:
            grace = s.stale_after_s + s.source_grace_s + 5.0
        self.lifecycle = AlarmLifecycle(
            s.lifecycle,
            restored=self.store.states().values(),
            started_ns=now,
            restore_grace_s=grace,
            channels=channels(s.notify),
            external_url=s.notify.external_url,
        )
        self.notifier = Notifier(self.store, s.notify, ctx.registry)
        #: Writes of the lifecycle's changes: one thread, so they land in the order they happened,
        #: and nobody on the event loop waits for one (an evaluation never waits for the store).
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="alarm-state")
        self._last_write: asyncio.Future[None] | None = None

    def is_stopped(self, kiln: str, now_ns: int) -> bool:
        """The hook's answer; a hook that fails counts as "operating" (alarms stay annunciated)."""
        hook: StoppedHook = self.ctx.is_stopped or stopped_by_annotation_or_engine(self.ctx)
        try:
            return bool(hook(kiln, now_ns))
        except Exception:
            log.exception("is_stopped(%s) failed: its alarms are not suppressed", kiln)
            return False

    def persist(self, changes: Changes) -> asyncio.Future[None] | None:
        """Queue the write of ``changes`` (the in-memory state has them already); returns the write,
        which an operator's action awaits before it answers."""
        if not changes:
            return None
        self.book.version += 1  # the stream sends the alarms again
        c = changes
        try:
            write = asyncio.get_running_loop().run_in_executor(
                self._writer, self.store.save, c.upserts, c.deletes, c.events, c.notifications
            )
        except RuntimeError:  # the app is shutting down: its writer is closed
            log.warning("alarm changes after shutdown not stored: %d events", len(c.events))
            return None
        write.add_done_callback(self._written)
        self._last_write = write
        return write

    async def settled(self) -> None:
        """Until every change so far is in the store (the history reads it from there)."""
        last = self._last_write
        if last is not None and not last.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(last)

    def _written(self, write: asyncio.Future[None]) -> None:
        if write.cancelled():
            return
        if write.exception() is not None:
            log.error("storing the alarm state failed", exc_info=write.exception())
        else:
            self.notifier.wake()

    async def _read_hours(self) -> None:
        """Start reading each kiln's newest closed hour on a worker thread; only the first
        evaluation waits for it, later ones go on with the hours read before."""
        if self._hours_reading is not None:
            return
        first = self._hours_read == -float("inf")
        self._hours_read = time.monotonic()
        newest = {k.id: m.start_ns for k in self.ctx.kilns if (m := self.ctx.live.newest_minute(k.id))}
        reading = asyncio.ensure_future(run_in_threadpool(self._newest_hours, newest))
        self._hours_reading = reading
        reading.add_done_callback(self._hours_came)
        if first:
            self._hours = await asyncio.shield(reading)

    def _hours_came(self, reading: asyncio.Future[dict[str, HourSeen | None]]) -> None:
        """The newest hours read in the background: used from the next evaluation on (a store read
        of hundreds of kilns must not hold up the caller, e.g. a stream sending minutes)."""
        self._hours_reading = None
        if reading.cancelled():
            return
        if reading.exception() is not None:
            log.error("reading the newest hours for the alarms failed", exc_info=reading.exception())
            return
        self._hours = reading.result()

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
            await self._read_hours()
        self._evaluated = time.monotonic()
        now = time.time_ns()
        self.book.update(observe(self.ctx, now, self._hours))
        self.persist(self.lifecycle.sync(self.book.active, now, self.is_stopped))
        return self.book

    async def run(self) -> None:
        notifier = asyncio.create_task(self.notifier.run(), name="alarm-notifier")
        self.running = True
        try:
            while True:
                try:
                    await self.evaluate()
                except Exception:
                    log.exception("evaluating the alarms failed")
                await asyncio.sleep(self.ctx.alarms.evaluate_every_s)
        finally:
            self.running = False
            notifier.cancel()
            await asyncio.gather(notifier, return_exceptions=True)
            # the last changes reach the store before the wiring closes it
            await asyncio.to_thread(self._writer.shutdown, wait=True)

    def response(self) -> AlarmsResponse:
        book = self.book
        now = time.time_ns()
        states = self.lifecycle.by_state(now)

        def out(*names: str) -> list[AlarmOut]:
            occs = sorted((o for n in names for o in states.get(n, [])), key=lambda o: o.start_ns)
            return [occurrence_out(o, book.active.get(o.key) if o.active else None, now) for o in occs]

        unacked = out(CLEARED_UNACK)
        seen = {(o.key, o.end_ns) for o in states.get(CLEARED_UNACK, [])}
        cleared = [alarm_out(a) for a in book.cleared if (a.key, a.end_ns) not in seen]
        return AlarmsResponse(
            time=iso(now),
            stale_after_s=book.settings.stale_after_s,
            catch_up_lag_s=book.settings.catch_up_lag_s,
            kilns={k: KilnStatusOut(**asdict(s)) for k, s in book.status.items()},
            active=out(ACTIVE_UNACK, ACTIVE_ACK),
            cleared=unacked + cleared,
            shelved=out(SHELVED),
            suppressed=out(SUPPRESSED),
            version=book.version,
        )

    async def act(self, who: str, action: str, key: str, body: ActionBody | ShelveBody) -> AlarmOut:
        """An operator's acknowledge, shelve or unshelve: applied, stored, and put in the audit trail."""
        await self.evaluate()
        now = time.time_ns()
        try:
            if action == "acknowledge":
                before, changes = self.lifecycle.acknowledge(key, who, now, body.reason)
            elif action == "shelve":
                assert isinstance(body, ShelveBody)
                before, changes = self.lifecycle.shelve(key, who, now, body.duration_s, body.reason)
            else:
                before, changes = self.lifecycle.unshelve(key, who, now, body.reason)
        except LifecycleError as err:
            raise HTTPException(404 if err.missing else 409, detail=err.detail) from err
        occ = self.lifecycle.occurrences.get(key)
        after = occ.snapshot(now) if occ is not None else {"state": "normal"}
        write = self.persist(changes)
        if write is not None:
            await write  # stored before the answer says it is done
        if self.ctx.audit is not None:
            await run_in_threadpool(
                self.ctx.audit.record,
                who,
                f"alarm.{action}",
                f"alarm/{key}",
                before=before,
                after=after,
                reason=body.reason,
                at_ns=now,
            )
        if occ is None:
            return AlarmOut(
                id=key,
                kind="",
                severity="",
                kiln=None,
                message="",
                code="",
                params={},
                start=before["start"],
                end=before["end"],
                active=False,
                data_time=None,
                subjects=[],
                state="normal",
                acknowledged_by=who if action == "acknowledge" else None,
                acknowledged_at=iso(now) if action == "acknowledge" else None,
            )
        return occurrence_out(occ, self.book.active.get(key) if occ.active else None, now)
