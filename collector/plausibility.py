"""The one time window every source's readings pass on their way into the pipeline.

A reading is implausible in time when its source timestamp lies

    before the wall clock minus ``max_reading_age``             reason ``timestamp_too_old``
    before the plant's ``commissioning_date``                   reason ``timestamp_before_commissioning``
    more than ``max_future_skew`` ahead of the wall clock       reason ``timestamp_future``

Such a reading is not stored and never reaches the engine: one reading stamped 1970 would
otherwise stretch a kiln's late-data range over decades, and one stamped in 2200 would hold its
event-time watermark in the future. Each one becomes a dead letter that names the bound, the
timestamp, the source and the signal, and is counted in ``kilnwatch_rejected_total{source,
signal, reason}``; the good readings of the same batch go on. The check is two reductions per
batch when every reading is inside the window; only rejected readings cost more.

Value ranges are not checked here: a value outside its range is kept and flagged
(:mod:`collector.conditioning`), because the validity rules must count it as an invalid point.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import numpy as np
import numpy.typing as npt
import orjson

from analytics.batch import NS_PER_S, ReadingBatch
from collector.store.local import DeadLetter

from .metrics import Metrics

log = logging.getLogger(__name__)

TOO_OLD: Final = "timestamp_too_old"
BEFORE_COMMISSIONING: Final = "timestamp_before_commissioning"
FUTURE: Final = "timestamp_future"
#: Index of each reason in :attr:`Screened.reasons`.
REASONS: Final = (TOO_OLD, BEFORE_COMMISSIONING, FUTURE)

#: Defaults of the plant file's ``plausibility`` section.
DEFAULT_MAX_READING_AGE_S: Final = 7 * 86_400.0
DEFAULT_MAX_FUTURE_SKEW_S: Final = 300.0

_NO_COMMISSIONING: Final = np.iinfo(np.int64).min
_NONE_REJECTED: Final = (ReadingBatch.empty(), np.empty(0, np.int8))


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Bounds of plausible source times relative to the wall clock [ns]."""

    max_age_ns: int = round(DEFAULT_MAX_READING_AGE_S * NS_PER_S)
    max_future_ns: int = round(DEFAULT_MAX_FUTURE_SKEW_S * NS_PER_S)
    commissioning_ns: int | None = None

    @classmethod
    def from_seconds(
        cls, max_age_s: float, max_future_s: float, commissioning: datetime | None = None
    ) -> TimeWindow:
        start = None if commissioning is None else round(commissioning.timestamp() * 1e6) * 1000
        return cls(round(max_age_s * NS_PER_S), round(max_future_s * NS_PER_S), start)

    def bounds(self, now_ns: int) -> tuple[int, int]:
        """(oldest, newest) plausible source time at wall-clock time ``now_ns``, both inclusive."""
        oldest = now_ns - self.max_age_ns
        if self.commissioning_ns is not None:
            oldest = max(oldest, self.commissioning_ns)
        return oldest, now_ns + self.max_future_ns


@dataclass(frozen=True, slots=True)
class Screened:
    """A batch split by the window: ``kept`` goes on; ``rejected`` with one reason index each."""

    kept: ReadingBatch
    rejected: ReadingBatch
    reasons: npt.NDArray[np.int8]


def screen(batch: ReadingBatch, window: TimeWindow, now_ns: int) -> Screened:
    """Split ``batch`` into the readings inside the window and the ones outside it (vectorised)."""
    ts = batch.ts
    oldest, newest = window.bounds(now_ns)
    if not len(ts) or (int(ts.min()) >= oldest and int(ts.max()) <= newest):
        return Screened(batch, *_NONE_REJECTED)
    outside = (ts < oldest) | (ts > newest)
    out_ts = ts[outside]
    commissioning = _NO_COMMISSIONING if window.commissioning_ns is None else window.commissioning_ns
    reasons = np.where(
        out_ts > newest,
        np.int8(REASONS.index(FUTURE)),
        np.where(
            out_ts < commissioning,
            np.int8(REASONS.index(BEFORE_COMMISSIONING)),
            np.int8(REASONS.index(TOO_OLD)),
        ),
    ).astype(np.int8)
    return Screened(batch.take(~outside), batch.take(outside), reasons)


class TimeGuard:
    """The window applied to the batches of named sources: rejected readings are counted, logged
    once per source and reason, and handed to ``dead_letter``; the rest is returned."""

    def __init__(
        self,
        window: TimeWindow,
        signal_names: Sequence[str],
        metrics: Metrics,
        dead_letter: Callable[[DeadLetter], None],
        clock: Callable[[], int],
    ) -> None:
        self.window = window
        self.signal_names = tuple(signal_names)
        self.metrics = metrics
        self.dead_letter = dead_letter
        self.clock = clock
        self._logged: set[tuple[str, int]] = set()

    def __call__(self, batch: ReadingBatch, source: str) -> ReadingBatch:
        now = self.clock()
        s = screen(batch, self.window, now)
        if len(s.rejected):
            self._report(s, source, now)
        return s.kept

    def _report(self, s: Screened, source: str, now_ns: int) -> None:
        oldest, newest = self.window.bounds(now_ns)
        pairs, counts = np.unique(
            np.stack([s.rejected.signal.astype(np.int64), s.reasons.astype(np.int64)]),
            axis=1,
            return_counts=True,
        )
        for (sig, reason), n in zip(pairs.T.tolist(), counts.tolist(), strict=True):
            self.metrics.rejected.labels(source, self.signal_names[sig], REASONS[reason]).inc(n)
        r = s.rejected
        times = _iso_all(r.ts)
        limits = {i: self._bound(REASONS[i], oldest, newest) for i in set(s.reasons.tolist())}
        for sig, ts, shown, value, quality, reason in zip(
            r.signal.tolist(),
            r.ts.tolist(),
            times,
            r.value.tolist(),
            r.quality.tolist(),
            s.reasons.tolist(),
            strict=True,
        ):
            text = f"{REASONS[reason]}: source time {shown} {limits[reason]}"
            payload = orjson.dumps({"ts_ns": ts, "value": value, "quality": quality})
            self.dead_letter(DeadLetter(source, text, payload, self.signal_names[sig], now_ns))
            if (source, reason) not in self._logged:
                self._logged.add((source, reason))
                log.warning(
                    "source %s, signal %s: %s; not stored, kept as a dead letter; further ones are counted",
                    source,
                    self.signal_names[sig],
                    text,
                )

    def _bound(self, why: str, oldest: int, newest: int) -> str:
        w = self.window
        if why == FUTURE:
            return f"is after {_iso(newest)} (wall clock + max_future_skew_s {w.max_future_ns / NS_PER_S:g})"
        if why == BEFORE_COMMISSIONING and w.commissioning_ns is not None:
            return f"is before commissioning_date {_iso(w.commissioning_ns)}"
        days = w.max_age_ns / NS_PER_S / 86_400
        return f"is before {_iso(oldest)} (wall clock - max_reading_age_days {days:g})"


def _iso_all(ns: npt.NDArray[np.int64]) -> list[str]:
    """ISO 8601 UTC [ms] of times in ns, at once; any int64 is a valid datetime64[ns]."""
    shown: list[str] = np.datetime_as_string(ns.astype("datetime64[ns]"), unit="ms", timezone="UTC").tolist()
    return shown


def _iso(ns: int) -> str:
    return _iso_all(np.array([ns], np.int64))[0]
