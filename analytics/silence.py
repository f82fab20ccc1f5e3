"""Closing a silent kiln's minutes by the wall clock.

While data flows, a kiln's minutes close by event time (its watermark). When none of its signals
has delivered anything for a while (a cut link, a dead gateway, the end of a replay), the
watermark stands still; a DAHS still closes its hours on time. The engine then closes the
kiln's minutes by the wall clock, with the silent signals' points missing. Where the caller knows
a signal's source is disconnected, its points are marked ``comm_loss`` instead, by NaN marker
readings every ``max_hold`` from just after the signal's newest reading (held values end where
the data ends, as the OPC UA collector's own markers do). The markers live only in the engine;
late data recomputes the minutes from the stored readings.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import quality as q
from .batch import ReadingBatch
from .minutes import MINUTE_NS

_NEVER = np.iinfo(np.int64).min


def clock_close_target(wall_ns: int, lateness_ns: int, grace_ns: int, minute_ns: int) -> int:
    """End of the last minute the clock may close at wall time ``wall_ns`` [ns]: every minute whose
    end + lateness + grace is not after ``wall_ns``."""
    return (wall_ns - lateness_ns - grace_ns) // minute_ns * minute_ns


def comm_loss_markers(
    signals: npt.NDArray[np.int64],
    newest_ts: npt.NDArray[np.int64],
    start: int,
    end: int,
    hold_ns: int,
) -> ReadingBatch:
    """BAD | COMM_LOSS readings that cover [start, end) for ``signals`` (global indexes) after
    their newest reading ``newest_ts`` (``_NEVER``: none): one every ``hold_ns``, none before."""
    first = np.maximum(np.where(newest_ts == _NEVER, start, newest_ts + 1), start - hold_ns)
    counts = np.maximum(0, -(-(end - first) // hold_ns))
    total = int(counts.sum())
    if not total:
        return ReadingBatch.empty()
    row = np.repeat(np.arange(len(signals)), counts)
    step = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return ReadingBatch(
        signals[row].astype(np.int32),
        first[row] + step * hold_ns,
        np.full(total, np.nan),
        np.full(total, q.BAD | q.COMM_LOSS, dtype=np.uint8),
    )


def silence_markers(
    members: npt.NDArray[np.int64],
    comm_loss: npt.NDArray[np.bool_],
    newest_ts: npt.NDArray[np.int64],
    start: int,
    n_minutes: int,
    hold_ns: int,
) -> ReadingBatch | None:
    """:func:`comm_loss_markers` for the kiln's ``members`` that ``comm_loss`` (per signal) marks
    disconnected, over ``n_minutes`` from ``start``; None when there are none."""
    down = members[comm_loss[members]]
    if not len(down):
        return None
    return comm_loss_markers(down, newest_ts[down], start, start + n_minutes * MINUTE_NS, hold_ns)
