"""The event-time engine: readings in, closed minutes and hours out, live state per kiln.

Per kiln, a minute closes when the kiln's watermark passes its end plus the allowed lateness.
The watermark is the oldest "latest timestamp" among the kiln's *active* signals: those that
delivered something within ``idle_after_s`` of wall-clock time. A source that lags (a slow
OPC UA server, a gateway replaying history) holds the kiln's minutes open until its data is
in; a source that went silent stops holding them after ``idle_after_s``, and its minutes close
with its points missing.
Readings older than a closed minute are late: they are counted and the affected range is
queued for :meth:`EmissionsEngine.recompute`, which the caller feeds from the durable store.

Per kiln, the engine also applies the accounting rules (:mod:`analytics.accounting`): the
stuck-value check on the grid, the IED half-hours of the pollutants, and the substitution of invalid
hours from the reporting period's history (:mod:`analytics.substitution`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from . import kiln_params as kp
from .accounting import Grid, KilnAccounting
from .aggregates import HourAggregate, MinuteAggregate
from .batch import NS_PER_S, ReadingBatch
from .emissions import CO2_DENSITY_KG_PER_NM3
from .hours import HOUR_NS
from .minute_window import MinuteWindow
from .minutes import MINUTE_NS
from .rules import KilnRules
from .signals import KilnSpec, SignalTable
from .stuck import RunState
from .substitution import period_start_ns

_NEVER = np.iinfo(np.int64).min
_LATEST = np.iinfo(np.int64).max
_MAX_MINUTES_PER_PASS = 60


@dataclass(frozen=True, slots=True)
class EngineParams:
    grid_s: float = 1.0
    max_hold_s: float = 60.0
    lateness_s: float = 10.0
    valid_fraction: float = 0.8
    co2_density_kg_per_nm3: float = CO2_DENSITY_KG_PER_NM3
    #: Closed minutes held in memory per kiln (the trend); the newest ``full_minutes`` of them
    #: with every parameter's statistics: late data within those rebuilds its hours from memory
    #: alone, older hours need the ledger's minutes (``recompute(..., stored_minutes)``).
    keep_minutes: int = 360
    full_minutes: int = 60
    idle_after_s: float = 10.0
    #: Accounting rules by kiln id; a kiln not named gets ``KilnRules()``.
    rules: Mapping[str, KilnRules] = field(default_factory=dict)

    @property
    def step_ns(self) -> int:
        return round(self.grid_s * NS_PER_S)

    @property
    def points_per_minute(self) -> int:
        return MINUTE_NS // self.step_ns

    @property
    def grid(self) -> Grid:
        return Grid(
            self.step_ns, round(self.max_hold_s * NS_PER_S), self.valid_fraction, self.co2_density_kg_per_nm3
        )


@dataclass(slots=True)
class EngineOutput:
    minutes: list[MinuteAggregate] = field(default_factory=list)
    hours: list[HourAggregate] = field(default_factory=list)

    def extend(self, other: EngineOutput) -> None:
        self.minutes.extend(other.minutes)
        self.hours.extend(other.hours)


@dataclass(slots=True)
class _KilnState:
    spec: KilnSpec
    members: npt.NDArray[np.int64]
    acct: KilnAccounting
    run: RunState
    minutes: MinuteWindow
    pending: list[ReadingBatch] = field(default_factory=list)
    closed_until: int | None = None
    carry: ReadingBatch = field(default_factory=ReadingBatch.empty)
    hour_revision: dict[int, int] = field(default_factory=dict)
    late_from: int | None = None
    late_to: int | None = None
    late_count: int = 0


@dataclass(frozen=True, slots=True)
class SignalNow:
    value: float
    quality: int
    ts_ns: int


class EmissionsEngine:
    def __init__(
        self, table: SignalTable, kilns: Sequence[KilnSpec], params: EngineParams | None = None
    ) -> None:
        self.table = table
        self.params = params or EngineParams()
        if MINUTE_NS % self.params.step_ns:
            raise ValueError(f"grid_s={self.params.grid_s} does not divide a minute")
        for k in kilns:
            kp.check_kiln(k, table.signals)
        self.kilns: dict[str, _KilnState] = {k.id: self._new_state(k) for k in kilns}
        n = len(table)
        self._kiln_of_signal: list[_KilnState | None] = [None] * n
        for state in self.kilns.values():
            for g in state.spec.signals:
                self._kiln_of_signal[g] = state
        self._kiln_pos = np.full(n, -1, dtype=np.int64)
        self._states = list(self.kilns.values())
        for i, state in enumerate(self._states):
            self._kiln_pos[state.members] = i
        # every kiln's members one after the other, for the watermarks of all kilns in one reduction
        sizes = np.array([len(s.members) for s in self._states], dtype=np.int64)
        self._member_order = np.concatenate([s.members for s in self._states] or [np.empty(0, np.int64)])
        self._member_starts = np.minimum(np.cumsum(sizes) - sizes, max(len(self._member_order) - 1, 0))
        self._no_members = sizes == 0
        self.latest_ts = np.full(n, _NEVER, dtype=np.int64)
        self.latest_value = np.full(n, np.nan)
        self.latest_quality = np.zeros(n, dtype=np.uint8)
        self.last_arrival = np.full(n, np.inf)
        #: Grows with every change of what newest_minute / signal_now return (a key for caches).
        self.changes = 0

    def _new_state(self, kiln: KilnSpec) -> _KilnState:
        rules = self.params.rules.get(kiln.id) or KilnRules()
        acct = KilnAccounting(kiln, self.table.signals, rules, self.params.grid)
        window = MinuteWindow(self.params.full_minutes, self.params.keep_minutes)
        return _KilnState(kiln, acct.members, acct, RunState.empty(len(kiln.signals)), window)

    def rules(self, kiln_id: str) -> KilnRules:
        return self.kilns[kiln_id].acct.rules

    # -- input ----------------------------------------------------------------------------

    def ingest(self, batch: ReadingBatch, now_s: float | None = None) -> None:
        """Take a batch (any order, any kilns). Cheap: buffers and updates the latest values.

        ``now_s`` is the wall-clock arrival time [s] (any monotonic clock, the same as given to
        :meth:`advance`); without it every signal that ever reported counts as active.
        """
        if not len(batch):
            return
        self.changes += 1
        self._update_latest(batch)
        if now_s is not None:
            self.last_arrival[batch.signal] = now_s
        grouped, kilns, starts, ends = self._group_by_kiln(batch)
        states = [self._states[i] for i in kilns]
        for state, lo, hi in zip(states, starts, ends, strict=True):
            if state.closed_until is None:
                state.closed_until = int(grouped.ts[lo:hi].min()) // MINUTE_NS * MINUTE_NS
        closed = np.array([s.closed_until for s in states], dtype=np.int64)
        late = grouped.ts < np.repeat(closed, np.subtract(ends, starts))
        late_in_kiln = np.logical_or.reduceat(late, starts).tolist() if starts else []
        for state, lo, hi, has_late in zip(states, starts, ends, late_in_kiln, strict=True):
            part = ReadingBatch(
                grouped.signal[lo:hi], grouped.ts[lo:hi], grouped.value[lo:hi], grouped.quality[lo:hi]
            )
            if has_late:
                self._note_late(state, part.ts[late[lo:hi]])
                part = part.take(~late[lo:hi])
            state.pending.append(part)

    def _group_by_kiln(self, batch: ReadingBatch) -> tuple[ReadingBatch, list[int], list[int], list[int]]:
        """The batch's rows of kilns (not of unknown signals) grouped by kiln: one sort, not one pass
        per kiln. Returns the grouped batch, and each kiln's position and [start, end) rows in it."""
        kiln_pos = self._kiln_pos[batch.signal]
        first = int(kiln_pos[0])
        if (kiln_pos == first).all():
            return (batch, [first], [0], [len(batch)]) if first >= 0 else (batch, [], [], [])
        order = np.argsort(kiln_pos, kind="stable")
        pos = kiln_pos[order]
        known = int(np.searchsorted(pos, 0))
        order, pos = order[known:], pos[known:]
        bounds = (np.flatnonzero(pos[1:] != pos[:-1]) + 1).tolist()
        starts = [0, *bounds] if len(pos) else []
        ends = [*bounds, len(pos)] if len(pos) else []
        return batch.take(order), pos[starts].tolist(), starts, ends

    def _update_latest(self, batch: ReadingBatch) -> None:
        newest = batch.newest_per_signal()
        newest = newest.take(newest.ts >= self.latest_ts[newest.signal])
        self.latest_ts[newest.signal] = newest.ts
        self.latest_value[newest.signal] = newest.value
        self.latest_quality[newest.signal] = newest.quality

    def _note_late(self, state: _KilnState, ts: npt.NDArray[np.int64]) -> None:
        lo = int(ts.min()) // MINUTE_NS * MINUTE_NS
        hi = (int(ts.max()) // MINUTE_NS + 1) * MINUTE_NS
        state.late_from = lo if state.late_from is None else min(state.late_from, lo)
        state.late_to = hi if state.late_to is None else max(state.late_to, hi)
        state.late_count += len(ts)

    # -- closing --------------------------------------------------------------------------

    def watermark(self, kiln_id: str, now_s: float | None = None) -> int | None:
        """Oldest latest timestamp of the kiln's active signals [ns], None when none is active."""
        wm = int(self._watermarks(now_s)[self._states.index(self.kilns[kiln_id])])
        return None if wm == _NEVER else wm

    def _watermarks(self, now_s: float | None) -> npt.NDArray[np.int64]:
        """:meth:`watermark` of every kiln at once, in ``self._states`` order; ``_NEVER`` for None.

        Active signals: those that reported, and within ``idle_after_s`` of ``now_s`` if given."""
        active = self.latest_ts != _NEVER
        if now_s is not None:
            active &= self.last_arrival >= now_s - self.params.idle_after_s
        held = np.where(active, self.latest_ts, _LATEST)[self._member_order]
        wm = np.minimum.reduceat(held, self._member_starts) if len(held) else np.empty(0, np.int64)
        return np.where((wm == _LATEST) | self._no_members, _NEVER, wm)

    def advance(self, now_s: float | None = None) -> EngineOutput:
        """Close every minute (and hour) that the watermarks allow; ``now_s`` as in :meth:`ingest`."""
        out = EngineOutput()
        lateness = round(self.params.lateness_s * NS_PER_S)
        for state, wm in zip(self._states, self._watermarks(now_s).tolist(), strict=True):
            if wm == _NEVER or state.closed_until is None:
                continue
            target = (wm - lateness) // MINUTE_NS * MINUTE_NS
            while state.closed_until < target:
                n = min((target - state.closed_until) // MINUTE_NS, _MAX_MINUTES_PER_PASS)
                out.extend(self._close(state, state.closed_until, n))
        return out

    def _close(self, state: _KilnState, start: int, n_minutes: int) -> EngineOutput:
        end = start + n_minutes * MINUTE_NS
        pending = ReadingBatch.concat(state.pending)
        now = pending.ts < end
        state.pending = [pending.take(~now)] if (~now).any() else []
        points = ReadingBatch.concat([state.carry, pending.take(now)])
        minutes, state.run = state.acct.minutes(points, start, n_minutes, state.run)
        state.carry = points.newest_per_signal()
        state.closed_until = end
        return self._record(state, minutes)

    def _record(self, state: _KilnState, minutes: list[MinuteAggregate]) -> EngineOutput:
        out = EngineOutput(minutes=list(minutes))
        self.changes += 1
        for m in minutes:
            state.minutes.append([m])
            if (m.start_ns + MINUTE_NS) % HOUR_NS == 0:
                out.hours.append(self._hour(state, m.start_ns + MINUTE_NS - HOUR_NS))
        state.minutes.trim()
        return out

    def _hour(
        self, state: _KilnState, hour_start: int, stored: Mapping[int, MinuteAggregate] | None = None
    ) -> HourAggregate:
        end = hour_start + HOUR_NS
        in_hour = {t: m for t, m in (stored or {}).items() if hour_start <= t < end}
        in_hour.update(state.minutes.full_between(hour_start, end))
        minutes = [in_hour[t] for t in sorted(in_hour)]
        revision = state.hour_revision.get(hour_start, -1) + 1
        state.hour_revision[hour_start] = revision
        return state.acct.hour(hour_start, minutes, revision)

    def load_history(self, hours: Iterable[HourAggregate]) -> None:
        """Seed the reporting period's history and the hour revisions from stored hours (at start-up)."""
        for h in sorted(hours, key=lambda h: h.start_ns):
            state = self.kilns.get(h.kiln)
            if state is None:
                continue
            state.acct.history.record(h, state.acct.rules.hour_valid_fraction)
            state.hour_revision[h.start_ns] = max(h.revision, state.hour_revision.get(h.start_ns, -1))

    def restore_minutes(
        self, kiln_id: str, minutes: Sequence[MinuteAggregate], closed_until: int | None = None
    ) -> int | None:
        """Take back, after a restart, the closed minutes of the hours still open (from the ledger),
        so those hours close complete; ``closed_until``: where closing had reached at least (the end
        of the newest stored hour) [ns]. Returns where closing resumes (None: nothing was closed);
        the stored readings from there on are fed as new data (:meth:`ingest`), those before it
        that the next minute needs go to :meth:`restore_held`. Readings older than it count as late.
        """
        state = self.kilns[kiln_id]
        self.changes += 1
        state.minutes.restore(minutes)
        ends = [m.start_ns + MINUTE_NS for m in minutes]
        if closed_until is not None:
            ends.append(closed_until // MINUTE_NS * MINUTE_NS)
        if ends:
            state.closed_until = max(state.closed_until or _NEVER, *ends)
        return state.closed_until

    def restore_held(self, kiln_id: str, readings: ReadingBatch) -> None:
        """After :meth:`restore_minutes`: the stored readings before where closing resumes, from
        ``readings_window(kiln, resume, resume)[0]`` on (any order; later ones are ignored). They
        give what the next minute holds from before it and the stuck check's state at its start,
        as :meth:`recompute` rebuilds them; and the signals' latest values, without making the
        signals active (they arrived in the last run)."""
        state = self.kilns[kiln_id]
        if state.closed_until is None:
            return
        held = readings.take(readings.ts < state.closed_until)
        lookback = state.acct.lookback_ns
        if lookback:
            run = RunState.empty(len(state.members))
            _, state.run = state.acct.minutes(held, state.closed_until - lookback, lookback // MINUTE_NS, run)
        state.carry = held.newest_per_signal()
        self.changes += 1
        self._update_latest(state.carry)
        signals = state.carry.signal
        self.last_arrival[signals[self.last_arrival[signals] == np.inf]] = -np.inf

    def restart_arrivals(self, fed_s: float, now_s: float) -> None:
        """The signals whose data was ingested at ``fed_s`` (the stored readings fed back at
        start-up) count as arriving at ``now_s``, when the sources start: the watermark then waits
        ``idle_after_s`` for their sources, as for data that has just come, however long the
        rebuild took."""
        self.last_arrival[self.last_arrival == fed_s] = now_s

    def rebuild_hours(self, kiln_id: str, minutes: Sequence[MinuteAggregate]) -> list[HourAggregate]:
        """Hours (with half-hours and substitution) from stored minute aggregates, in time order.

        For reprocessing a period under the current rules; the history of earlier hours in the
        reporting period should be loaded first (:meth:`load_history`). Revisions count on.
        """
        state = self.kilns[kiln_id]
        by_hour: dict[int, list[MinuteAggregate]] = {}
        for m in minutes:
            by_hour.setdefault(m.start_ns // HOUR_NS * HOUR_NS, []).append(m)
        out = []
        for hour_start in sorted(by_hour):
            revision = state.hour_revision.get(hour_start, -1) + 1
            state.hour_revision[hour_start] = revision
            part = sorted(by_hour[hour_start], key=lambda m: m.start_ns)
            out.append(state.acct.hour(hour_start, part, revision))
        return out

    # -- late data ------------------------------------------------------------------------

    def late_ranges(self) -> list[tuple[str, int, int]]:
        """(kiln, start, end) ranges that late readings touched since the last call; clears them."""
        out = []
        for kiln_id, state in self.kilns.items():
            if state.late_from is not None and state.late_to is not None:
                out.append((kiln_id, state.late_from, state.late_to))
                state.late_from = state.late_to = None
        return out

    def readings_window(self, kiln_id: str, start: int, end: int) -> tuple[int, int]:
        """The raw readings [lo, hi) that :meth:`recompute` needs for minutes in [start, end) [ns]:
        the stuck check's look-back and the maximum hold before ``start``."""
        hold = round(self.params.max_hold_s * NS_PER_S) + self.params.step_ns
        return start - self.kilns[kiln_id].acct.lookback_ns - hold, end

    def recompute(
        self,
        kiln_id: str,
        readings: ReadingBatch,
        start: int,
        end: int,
        stored_minutes: Sequence[MinuteAggregate] = (),
    ) -> EngineOutput:
        """Recompute closed minutes in [start, end) from every stored reading of the kiln that
        may bear on them (see :meth:`readings_window`), and the hours they belong to.

        An hour is rebuilt from the minutes held in memory, completed by ``stored_minutes`` (the
        ledger's minutes of the affected hours) for minutes that memory no longer holds. The stuck
        check restarts at the start of the look-back if the readings do not reach back that far.
        """
        state = self.kilns[kiln_id]
        if state.closed_until is None:
            return EngineOutput()
        start = start // MINUTE_NS * MINUTE_NS
        end = min(end, state.closed_until)
        out = EngineOutput()
        stored = {m.start_ns: m for m in stored_minutes}
        run = RunState.empty(len(state.members))
        t = start - state.acct.lookback_ns
        while t < end:
            n = min((end - t) // MINUTE_NS, _MAX_MINUTES_PER_PASS)
            if t < start:
                n = min(n, (start - t) // MINUTE_NS)
            if n <= 0:
                break
            minutes, run = state.acct.minutes(readings, t, n, run)
            if t >= start:
                for m in minutes:
                    state.minutes.revise(m, stored.get(m.start_ns))
                out.minutes.extend(minutes)
            t += n * MINUTE_NS
        self.changes += 1
        stored.update((m.start_ns, m) for m in out.minutes)  # the revised ones, held in memory or not
        for hour in sorted({m.start_ns // HOUR_NS * HOUR_NS for m in out.minutes}):
            if hour + HOUR_NS <= state.closed_until:
                out.hours.append(self._hour(state, hour, stored))
        return out

    def forget_history_before(self, t_ns: int) -> None:
        """Drop substitution history and hour revisions of earlier reporting periods."""
        lo = period_start_ns(t_ns)
        for state in self.kilns.values():
            state.acct.history.forget_before(lo)
            for h in [h for h in state.hour_revision if h < lo]:
                del state.hour_revision[h]

    # -- live -----------------------------------------------------------------------------

    def newest_minute(self, kiln_id: str) -> MinuteAggregate | None:
        return self.kilns[kiln_id].minutes.newest()

    def recent_minutes(self, kiln_id: str, since_ns: int) -> list[MinuteAggregate]:
        """Closed minutes from ``since_ns`` on; those before the newest ``full_minutes`` as headlines."""
        return self.kilns[kiln_id].minutes.since(since_ns)

    def signal_now(self, index: int) -> SignalNow | None:
        ts: int = self.latest_ts.item(index)  # .item(): a Python number without a numpy scalar
        if ts == _NEVER:
            return None
        return SignalNow(self.latest_value.item(index), self.latest_quality.item(index), ts)
