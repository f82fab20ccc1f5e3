"""The event-time engine: readings in, closed minutes and hours out, live state per kiln.

Per kiln, a minute closes when the kiln's watermark passes its end plus the allowed lateness.
The watermark is the oldest "latest timestamp" among the kiln's *active* signals: those that
delivered something within ``idle_after_s`` of wall-clock time. A source that lags (a slow
OPC UA server, a gateway replaying history) holds the kiln's minutes open until its data is
in; a source that went silent stops holding them after ``idle_after_s``, and its minutes close
with its points missing. When *no* signal of a kiln is active, the wall clock closes its
minutes (:mod:`analytics.silence`): a minute closes once wall-clock time passes its end plus the
lateness plus ``silent_grace_s``, and never beyond.
Readings older than a closed minute are late: they are counted and the affected range is
queued for recomputation (:meth:`EmissionsEngine.recomputation`), which the caller feeds from
the durable store, slice by slice.

The engine bounds its own work: one :meth:`EmissionsEngine.advance` closes at most
``max_minutes_per_pass`` minutes (all kilns together) and says whether more are due
(``EngineOutput.more``); a recomputation goes an hour at a time. The engine is not thread-safe:
only :meth:`Recomputation.compute` may run beside it on another thread.

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
from .accounting import KilnAccounting
from .aggregates import HourAggregate, MinuteAggregate
from .batch import NS_PER_S, ReadingBatch
from .engine_types import EngineOutput, EngineParams
from .hours import HOUR_NS
from .minute_columns import MinuteColumns
from .minute_window import MinuteWindow
from .minutes import MINUTE_NS
from .overrides import KilnOverrides
from .recompute import Recomputation, late_runs
from .rules import KilnRules
from .running_minute import RunningMinute
from .signals import KilnSpec, SignalTable
from .silence import clock_close_target, silence_markers
from .stuck import RunState

_NEVER = np.iinfo(np.int64).min
_LATEST = np.iinfo(np.int64).max
_MAX_MINUTES_PER_PASS = 60


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
    late_minutes: set[int] = field(default_factory=set)  # starts of closed minutes that late data touched
    revise: list[tuple[int, int]] = field(default_factory=list)  # closed ranges operators' changes touched
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
        self._next_kiln = 0  # where the next advance() starts, so that a budget serves every kiln
        self._watching_since: float | None = None  # the first now_s of advance(): silence counts from it

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
        state.late_minutes.update(np.unique(ts // MINUTE_NS * MINUTE_NS).tolist())
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

    def advance(
        self,
        now_s: float | None = None,
        wall_ns: int | None = None,
        comm_loss: npt.NDArray[np.bool_] | None = None,
    ) -> EngineOutput:
        """Close the minutes (and hours) that the watermarks allow, at most ``max_minutes_per_pass``;
        ``out.more`` says that more are due. ``now_s`` as in :meth:`ingest`.

        ``wall_ns``: wall-clock time on the event-time scale [ns since 1970, UTC]. With it (and
        ``now_s``), a kiln none of whose signals is active closes every minute whose end +
        lateness + ``silent_grace_s`` is before ``wall_ns``. ``comm_loss``: per signal, True where
        its source is known to be disconnected; such a kiln's points are then ``comm_loss``
        instead of ``missing``.
        """
        out = EngineOutput()
        p = self.params
        lateness = round(p.lateness_s * NS_PER_S)
        clock = None
        if now_s is not None:
            # Sources get idle_after_s after start-up to deliver before silence counts.
            since = self._watching_since = now_s if self._watching_since is None else self._watching_since
            if wall_ns is not None and now_s - since >= p.idle_after_s:
                grace = round(p.silent_grace_s * NS_PER_S)
                clock = clock_close_target(wall_ns, lateness, grace, MINUTE_NS)
        budget, hold = p.max_minutes_per_pass, round(p.max_hold_s * NS_PER_S)
        watermarks = self._watermarks(now_s).tolist()
        n_kilns = len(self._states)
        for k in range(n_kilns):
            i = (self._next_kiln + k) % n_kilns
            state, wm = self._states[i], watermarks[i]
            silent = wm == _NEVER
            if state.closed_until is None or (silent and clock is None):
                continue
            target = clock if silent else (wm - lateness) // MINUTE_NS * MINUTE_NS
            assert target is not None
            while state.closed_until < target:
                if budget <= 0:
                    self._next_kiln, out.more = i, True
                    return out
                start = state.closed_until
                n = min((target - start) // MINUTE_NS, _MAX_MINUTES_PER_PASS, budget)
                markers = None
                if silent and comm_loss is not None:
                    markers = silence_markers(state.members, comm_loss, self.latest_ts, start, n, hold)
                out.extend(self._close(state, start, n, markers))
                budget -= n
        return out

    def advance_all(
        self,
        now_s: float | None = None,
        wall_ns: int | None = None,
        comm_loss: npt.NDArray[np.bool_] | None = None,
    ) -> EngineOutput:
        """:meth:`advance` until nothing more is due, in one call: for batch work and tests."""
        out = self.advance(now_s, wall_ns, comm_loss)
        while out.more:
            out.more = False
            out.extend(self.advance(now_s, wall_ns, comm_loss))
        return out

    def _close(
        self, state: _KilnState, start: int, n_minutes: int, markers: ReadingBatch | None = None
    ) -> EngineOutput:
        end = start + n_minutes * MINUTE_NS
        pending = ReadingBatch.concat(state.pending)
        now = pending.ts < end
        state.pending = [pending.take(~now)] if (~now).any() else []
        points = ReadingBatch.concat([state.carry, pending.take(now), markers or ReadingBatch.empty()])
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

    def rebuild_hours(
        self, kiln_id: str, minutes: Sequence[MinuteAggregate] | MinuteColumns
    ) -> list[HourAggregate]:
        """Hours (with half-hours and substitution) from stored minute aggregates, in time order.

        For reprocessing a period under the current rules; the history of earlier hours in the
        reporting period should be loaded first (:meth:`load_history`). Revisions count on.
        All hours in one vectorised pass over the minutes as columns (:class:`MinuteColumns`);
        minutes that do not fit columns go hour by hour, with the same result.
        """
        state = self.kilns[kiln_id]
        if isinstance(minutes, MinuteColumns):
            columns: MinuteColumns | None = minutes
        elif state.acct.has_overrides:  # stops and manual values apply hour by hour
            columns = None
        else:
            columns = MinuteColumns.from_minutes(minutes)
        if columns is not None:
            revisions = [self._next_revision(state, h) for h in state.acct.hour_starts(columns)]
            return state.acct.hours(columns, revisions)
        assert not isinstance(minutes, MinuteColumns)
        by_hour: dict[int, list[MinuteAggregate]] = {}
        for m in minutes:
            by_hour.setdefault(m.start_ns // HOUR_NS * HOUR_NS, []).append(m)
        out = []
        for hour_start in sorted(by_hour):
            part = sorted(by_hour[hour_start], key=lambda m: m.start_ns)
            out.append(state.acct.hour(hour_start, part, self._next_revision(state, hour_start)))
        return out

    # -- operators' overrides -------------------------------------------------------------

    def set_overrides(
        self, kiln_id: str, overrides: KilnOverrides, start_ns: int, end_ns: int | None
    ) -> None:
        """Take a kiln's stopped ranges and manual values (the whole set, replacing the last one);
        the closed minutes of [start, end) (None: up to now) whose result they may change are queued
        for recomputation like late data (:meth:`late_ranges`): their hours get revision + 1."""
        state = self.kilns[kiln_id]
        state.acct.overrides = overrides
        self.changes += 1
        if state.closed_until is None:
            return
        lo = start_ns // HOUR_NS * HOUR_NS
        hi = (
            state.closed_until if end_ns is None else min(-(-end_ns // HOUR_NS) * HOUR_NS, state.closed_until)
        )
        if hi > lo:
            state.revise.append((lo, hi))

    def is_stopped(self, kiln_id: str, ts_ns: int) -> bool:
        """Whether operators marked the kiln stopped at ``ts_ns`` (a ``kiln_stopped`` annotation)."""
        return self.kilns[kiln_id].acct.overrides.stopped.contains(ts_ns)

    @staticmethod
    def _next_revision(state: _KilnState, hour_start: int) -> int:
        revision = state.hour_revision.get(hour_start, -1) + 1
        state.hour_revision[hour_start] = revision
        return revision

    # -- late data ------------------------------------------------------------------------

    @property
    def late_readings(self) -> int:
        """Late readings taken so far, all kilns."""
        return sum(s.late_count for s in self._states)

    def late_ranges(self) -> list[tuple[str, int, int]]:
        """(kiln, start, end) ranges that late readings touched since the last call (see
        :func:`~analytics.recompute.late_runs`); clears them."""
        out = []
        for kiln_id, state in self.kilns.items():
            ranges = late_runs(state.late_minutes) + state.revise
            out += [(kiln_id, lo, hi) for lo, hi in _merged(ranges)]
            state.late_minutes = set()
            state.revise = []
        return out

    def readings_window(self, kiln_id: str, start: int, end: int) -> tuple[int, int]:
        """The raw readings [lo, hi) that :meth:`recompute` needs for minutes in [start, end) [ns]:
        the stuck check's look-back and the maximum hold before ``start``."""
        hold = round(self.params.max_hold_s * NS_PER_S) + self.params.step_ns
        return start - self.kilns[kiln_id].acct.lookback_ns - hold, end

    def recomputation(self, kiln_id: str, start: int, end: int) -> Recomputation:
        """The closed minutes of [start, end) to recompute, to be walked slice by slice: per slice,
        the stored readings of :meth:`Recomputation.readings_window` into
        :meth:`Recomputation.compute` (on any thread), its minutes into :meth:`apply_recomputed`."""
        state = self.kilns[kiln_id]
        end = start if state.closed_until is None else min(end, state.closed_until)
        hold = round(self.params.max_hold_s * NS_PER_S) + self.params.step_ns
        return Recomputation(kiln_id, start, end, state.acct, hold)

    def apply_recomputed(
        self,
        job: Recomputation,
        minutes: Sequence[MinuteAggregate],
        stored_minutes: Sequence[MinuteAggregate] = (),
    ) -> EngineOutput:
        """Take one slice's recomputed minutes: each replaces the held one with its revision + 1,
        and the hours they lie in are rebuilt (revision + 1) once the slice ends them (or the
        job is done). An hour's other minutes come from memory, else ``stored_minutes`` (the
        ledger's minutes of those hours)."""
        state = self.kilns[job.kiln]
        stored = {m.start_ns: m for m in stored_minutes}
        for m in minutes:
            state.minutes.revise(m, stored.get(m.start_ns))
        self.changes += 1
        out = EngineOutput(minutes=list(minutes))
        stored.update((m.start_ns, m) for m in minutes)  # the revised ones, held in memory or not
        closed = state.closed_until or 0
        for hour in sorted({m.start_ns // HOUR_NS * HOUR_NS for m in minutes}):
            if hour + HOUR_NS <= closed and (hour + HOUR_NS <= job.t or job.done):
                out.hours.append(self._hour(state, hour, stored))
        return out

    def recompute(
        self,
        kiln_id: str,
        readings: ReadingBatch,
        start: int,
        end: int,
        stored_minutes: Sequence[MinuteAggregate] = (),
    ) -> EngineOutput:
        """Recompute closed minutes in [start, end) from every stored reading of the kiln that
        may bear on them (see :meth:`readings_window`), and the hours they belong to, in one call.

        Unbounded: for batch work. A service walks :meth:`recomputation` instead.
        """
        job = self.recomputation(kiln_id, start, end)
        out = EngineOutput()
        while not job.done:
            out.extend(self.apply_recomputed(job, job.compute(readings), stored_minutes))
        return out

    def forget_history_before(self, t_ns: int) -> None:
        """Drop substitution history and hour revisions of earlier reporting periods."""
        for state in self.kilns.values():
            lo = state.acct.history.period_start(t_ns)
            state.acct.history.forget_before(lo)
            for h in [h for h in state.hour_revision if h < lo]:
                del state.hour_revision[h]

    # -- the running minute -----------------------------------------------------------------

    def complete_through(self, now_s: float | None = None) -> dict[str, int | None]:
        """Per kiln, the newest grid point at which every active signal has reported [ns] (None: no
        signal active): how far :meth:`running_minute` reaches. One reduction for all kilns, so a
        caller can ask for running minutes only where this moved on."""
        step = self.params.step_ns
        marks = self._watermarks(now_s).tolist()
        return {
            s.spec.id: None if wm == _NEVER else wm // step * step
            for s, wm in zip(self._states, marks, strict=True)
        }

    def running_minute(self, kiln_id: str, now_s: float | None = None) -> RunningMinute | None:
        """The kiln's running minute from the points received so far, provisional (``now_s`` as in
        :meth:`ingest`): the minute of :meth:`complete_through`, on its grid points up to there,
        computed by the kernels that close minutes, from where closing stands (so the stuck check
        carries over the minutes not yet closed). A full minute gives the numbers its closing will
        give. None when no signal is active or that minute is closed already. Nothing is recorded:
        the engine's state stays as it was (its buffered readings are only joined into one batch).
        """
        state = self.kilns[kiln_id]
        through = self._complete_through(state, now_s)
        if through is None or state.closed_until is None:
            return None
        start = through // MINUTE_NS * MINUTE_NS
        if start < state.closed_until:
            return None
        if len(state.pending) > 1:  # joined once here rather than again every second
            state.pending = [ReadingBatch.concat(state.pending)]
        pending = state.pending[0] if state.pending else ReadingBatch.empty()
        points = ReadingBatch.concat([state.carry, pending.take(pending.ts <= through)])
        return state.acct.running_minute(points, state.closed_until, start, through, state.run)

    def _complete_through(self, state: _KilnState, now_s: float | None) -> int | None:
        """:meth:`complete_through` of one kiln."""
        ts = self.latest_ts[state.members]
        active = ts != _NEVER
        if now_s is not None:
            active &= self.last_arrival[state.members] >= now_s - self.params.idle_after_s
        if not active.any():
            return None
        step = self.params.step_ns
        return int(ts[active].min()) // step * step

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


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """[start, end) ranges merged where they overlap or meet in an hour (each hour rebuilt once)."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo < -(-out[-1][1] // HOUR_NS) * HOUR_NS:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out
