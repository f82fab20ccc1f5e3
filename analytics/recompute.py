"""Recomputing a kiln's closed minutes from stored readings, one bounded slice at a time.

Late data can touch any stretch of closed time, a month as easily as a minute. A
:class:`Recomputation` walks such a range in slices of at most one hour (plus, in the first
slice, the stuck check's look-back): the caller fetches each slice's readings
(:meth:`Recomputation.readings_window`), has them computed (:meth:`Recomputation.compute`) and
hands the minutes to the engine, which revises them and rebuilds their hour. Slices end on hour
boundaries, so every hour is rebuilt once, after all of its recomputed minutes are in.

:meth:`Recomputation.compute` reads only the kiln's rules and the slice's readings and keeps its
own stuck-check state: it may run on a worker thread while the engine goes on closing minutes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .accounting import KilnAccounting
from .aggregates import MinuteAggregate
from .batch import ReadingBatch
from .hours import HOUR_NS
from .minutes import MINUTE_NS
from .stuck import RunState


@dataclass(slots=True)
class Recomputation:
    """The minutes [start, end) of one kiln to recompute; ``t`` is where the next slice begins."""

    kiln: str
    start: int
    end: int
    acct: KilnAccounting
    hold_ns: int
    t: int = 0
    run: RunState | None = None

    def __post_init__(self) -> None:
        self.start = self.start // MINUTE_NS * MINUTE_NS
        self.t = self.start - self.acct.lookback_ns if self.end > self.start else self.end
        self.run = RunState.empty(len(self.acct.members))

    @property
    def done(self) -> bool:
        return self.t >= self.end

    def _slice_end(self) -> int:
        """End of the next slice: the hour boundary after its first recomputed minute, or ``end``."""
        first = max(self.t, self.start)
        return min(self.end, (first // HOUR_NS + 1) * HOUR_NS)

    def readings_window(self) -> tuple[int, int]:
        """The stored readings [lo, hi) the next slice needs [ns]: its grid and the hold before it."""
        return self.t - self.hold_ns, self._slice_end()

    def compute(self, readings: ReadingBatch) -> list[MinuteAggregate]:
        """The next slice's minutes from its readings (any superset of :meth:`readings_window`);
        the look-back minutes before ``start`` only feed the stuck check and are not returned."""
        lo, hi = self.readings_window()
        if len(readings) and (readings.ts.min() < lo or readings.ts.max() >= hi):
            readings = readings.take((readings.ts >= lo) & (readings.ts < hi))
        n = (hi - self.t) // MINUTE_NS
        assert self.run is not None
        minutes, self.run = self.acct.minutes(readings, self.t, n, self.run)
        self.t = hi
        return [m for m in minutes if m.start_ns >= self.start]


def late_runs(minute_starts: Iterable[int]) -> list[tuple[int, int]]:
    """[start, end) ranges of the minutes late data touched: runs of minutes, one range where
    they meet or share an hour (each hour is rebuilt once), apart otherwise."""
    starts = np.array(sorted(minute_starts), dtype=np.int64)
    if not len(starts):
        return []
    ends = starts + MINUTE_NS
    hour_end = -(-ends // HOUR_NS) * HOUR_NS
    apart = (np.flatnonzero((starts[1:] > ends[:-1]) & (starts[1:] >= hour_end[:-1])) + 1).tolist()
    return [
        (int(starts[lo]), int(ends[hi - 1]))
        for lo, hi in zip([0, *apart], [*apart, len(starts)], strict=True)
    ]
