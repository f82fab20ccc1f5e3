"""The event-time engine: readings in, closed minutes and hours out, live state per kiln.

Per kiln, a minute closes when the kiln's watermark passes its end plus the allowed lateness.
The watermark is the oldest "latest timestamp" among the kiln's signals, but never more than
``max_hold`` behind the newest, so a silent signal delays closing by at most ``max_hold``.
Readings older than a closed minute are late: they are counted and the affected range is
queued for :meth:`EmissionsEngine.recompute`, which the caller feeds from the durable store.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from . import kiln_params as kp
from .aggregates import HourAggregate, MinuteAggregate
from .batch import NS_PER_S, ReadingBatch
from .emissions import CO2_DENSITY_KG_PER_NM3
from .gridding import sample_on_grid
from .hours import HOUR_NS, hour_from_minutes
from .minutes import MINUTE_NS, close_minutes
from .signals import KilnSpec, SignalTable

_NEVER = np.iinfo(np.int64).min
_MAX_MINUTES_PER_PASS = 60


@dataclass(frozen=True, slots=True)
class EngineParams:
    grid_s: float = 1.0
    max_hold_s: float = 60.0
    lateness_s: float = 10.0
    valid_fraction: float = 0.8
    co2_density_kg_per_nm3: float = CO2_DENSITY_KG_PER_NM3
    keep_minutes: int = 180

    @property
    def step_ns(self) -> int:
        return round(self.grid_s * NS_PER_S)

    @property
    def points_per_minute(self) -> int:
        return MINUTE_NS // self.step_ns


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
    pending: list[ReadingBatch] = field(default_factory=list)
    closed_until: int | None = None
    carry: ReadingBatch = field(default_factory=ReadingBatch.empty)
    minutes: OrderedDict[int, MinuteAggregate] = field(default_factory=OrderedDict)
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
        self.kilns: dict[str, _KilnState] = {
            k.id: _KilnState(k, np.array(k.signals, dtype=np.int64)) for k in kilns
        }
        n = len(table)
        self._kiln_of_signal: list[_KilnState | None] = [None] * n
        for state in self.kilns.values():
            for g in state.spec.signals:
                self._kiln_of_signal[g] = state
        self._kiln_pos = np.full(n, -1, dtype=np.int64)
        self._states = list(self.kilns.values())
        for i, state in enumerate(self._states):
            self._kiln_pos[state.members] = i
        self.latest_ts = np.full(n, _NEVER, dtype=np.int64)
        self.latest_value = np.full(n, np.nan)
        self.latest_quality = np.zeros(n, dtype=np.uint8)

    # -- input ----------------------------------------------------------------------------

    def ingest(self, batch: ReadingBatch) -> None:
        """Take a batch (any order, any kilns). Cheap: buffers and updates the latest values."""
        if not len(batch):
            return
        self._update_latest(batch)
        kiln_pos = self._kiln_pos[batch.signal]
        for i in np.unique(kiln_pos):
            if i < 0:
                continue
            state = self._states[i]
            part = batch.take(kiln_pos == i) if len(self._states) > 1 else batch
            if state.closed_until is None:
                state.closed_until = int(part.ts.min()) // MINUTE_NS * MINUTE_NS
            late = part.ts < state.closed_until
            if late.any():
                self._note_late(state, part.ts[late])
                part = part.take(~late)
            state.pending.append(part)

    def _update_latest(self, batch: ReadingBatch) -> None:
        order = np.lexsort((batch.ts, batch.signal))
        sig = batch.signal[order]
        last = np.flatnonzero(np.r_[sig[1:] != sig[:-1], True])
        rows = order[last]
        s = batch.signal[rows]
        newer = batch.ts[rows] >= self.latest_ts[s]
        s, rows = s[newer], rows[newer]
        self.latest_ts[s] = batch.ts[rows]
        self.latest_value[s] = batch.value[rows]
        self.latest_quality[s] = batch.quality[rows]

    def _note_late(self, state: _KilnState, ts: npt.NDArray[np.int64]) -> None:
        lo = int(ts.min()) // MINUTE_NS * MINUTE_NS
        hi = (int(ts.max()) // MINUTE_NS + 1) * MINUTE_NS
        state.late_from = lo if state.late_from is None else min(state.late_from, lo)
        state.late_to = hi if state.late_to is None else max(state.late_to, hi)
        state.late_count += len(ts)

    # -- closing --------------------------------------------------------------------------

    def watermark(self, kiln_id: str) -> int | None:
        state = self.kilns[kiln_id]
        latest = self.latest_ts[state.members]
        seen = latest[latest != _NEVER]
        if not len(seen):
            return None
        hold = round(self.params.max_hold_s * NS_PER_S)
        return max(int(seen.min()), int(seen.max()) - hold)

    def advance(self) -> EngineOutput:
        """Close every minute (and hour) that the watermarks allow."""
        out = EngineOutput()
        lateness = round(self.params.lateness_s * NS_PER_S)
        for kiln_id, state in self.kilns.items():
            wm = self.watermark(kiln_id)
            if wm is None or state.closed_until is None:
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
        minutes = self._minutes_from_points(state, points, start, n_minutes)
        state.carry = _last_per_signal(points)
        state.closed_until = end
        return self._record(state, minutes)

    def _minutes_from_points(
        self, state: _KilnState, points: ReadingBatch, start: int, n_minutes: int, revision: int = 0
    ) -> list[MinuteAggregate]:
        p = self.params
        local = np.searchsorted(state.members, points.signal.astype(np.int64)).astype(np.int32)
        samples = sample_on_grid(
            local,
            points.ts,
            points.value,
            points.quality,
            len(state.members),
            start,
            n_minutes * p.points_per_minute,
            p.step_ns,
            round(p.max_hold_s * NS_PER_S),
        )
        return close_minutes(
            state.spec,
            self.table.signals,
            samples,
            start,
            n_minutes,
            p.valid_fraction,
            p.co2_density_kg_per_nm3,
            revision,
        )

    def _record(self, state: _KilnState, minutes: list[MinuteAggregate]) -> EngineOutput:
        out = EngineOutput(minutes=list(minutes))
        for m in minutes:
            state.minutes[m.start_ns] = m
            if (m.start_ns + MINUTE_NS) % HOUR_NS == 0:
                out.hours.append(self._hour(state, m.start_ns + MINUTE_NS - HOUR_NS))
        while len(state.minutes) > self.params.keep_minutes:
            state.minutes.popitem(last=False)
        return out

    def _hour(self, state: _KilnState, hour_start: int) -> HourAggregate:
        p = self.params
        in_hour = [m for t, m in state.minutes.items() if hour_start <= t < hour_start + HOUR_NS]
        revision = state.hour_revision.get(hour_start, -1) + 1
        state.hour_revision[hour_start] = revision
        return hour_from_minutes(
            state.spec.id,
            state.spec.plant,
            hour_start,
            in_hour,
            p.points_per_minute * 60,
            p.valid_fraction,
            p.co2_density_kg_per_nm3,
            revision,
        )

    # -- late data ------------------------------------------------------------------------

    def late_ranges(self) -> list[tuple[str, int, int]]:
        """(kiln, start, end) ranges that late readings touched since the last call; clears them."""
        out = []
        for kiln_id, state in self.kilns.items():
            if state.late_from is not None and state.late_to is not None:
                out.append((kiln_id, state.late_from, state.late_to))
                state.late_from = state.late_to = None
        return out

    def recompute(self, kiln_id: str, readings: ReadingBatch, start: int, end: int) -> EngineOutput:
        """Recompute closed minutes in [start, end) from every stored reading of the kiln that
        may bear on them (from ``start - max_hold`` on), and the hours they belong to.

        Minutes beyond the in-memory window are recomputed but their hour is rebuilt only from
        the minutes still held; callers keep the ledger for older hours.
        """
        state = self.kilns[kiln_id]
        if state.closed_until is None:
            return EngineOutput()
        end = min(end, state.closed_until)
        out = EngineOutput()
        t = start
        while t < end:
            n = min((end - t) // MINUTE_NS, _MAX_MINUTES_PER_PASS)
            revised = []
            for m in self._minutes_from_points(state, readings, t, n):
                old = state.minutes.get(m.start_ns)
                m.revision = 0 if old is None else old.revision + 1
                revised.append(m)
                state.minutes[m.start_ns] = m
            out.minutes.extend(revised)
            t += n * MINUTE_NS
        state.minutes = OrderedDict(sorted(state.minutes.items()))
        for hour in sorted({m.start_ns // HOUR_NS * HOUR_NS for m in out.minutes}):
            if hour + HOUR_NS <= state.closed_until:
                out.hours.append(self._hour(state, hour))
        return out

    # -- live -----------------------------------------------------------------------------

    def newest_minute(self, kiln_id: str) -> MinuteAggregate | None:
        minutes = self.kilns[kiln_id].minutes
        return minutes[next(reversed(minutes))] if minutes else None

    def recent_minutes(self, kiln_id: str, since_ns: int) -> list[MinuteAggregate]:
        return [m for t, m in self.kilns[kiln_id].minutes.items() if t >= since_ns]

    def signal_now(self, index: int) -> SignalNow | None:
        ts = int(self.latest_ts[index])
        if ts == _NEVER:
            return None
        return SignalNow(float(self.latest_value[index]), int(self.latest_quality[index]), ts)


def _last_per_signal(points: ReadingBatch) -> ReadingBatch:
    """The newest reading of each signal (later input wins a tie)."""
    if not len(points):
        return points
    order = np.lexsort((np.arange(len(points)), points.ts, points.signal))
    sig = points.signal[order]
    last = np.flatnonzero(np.r_[sig[1:] != sig[:-1], True])
    return points.take(order[last])
