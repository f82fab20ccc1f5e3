"""The completeness ledger: why each grid point of a signal is not valid, one reason per point.

Every invalid point is counted once, under the first reason that applies, in the order of
:data:`LEDGER_REASONS`; so per signal and period, valid + the reason counts = expected points.
``bad`` catches the rest: class bad or a non-finite value without a more specific flag.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from . import quality as q
from .gridding import MISSING_REASON, GridSamples

#: Reasons of the ledger, in the order of precedence.
LEDGER_REASONS: Final[tuple[str, ...]] = (
    MISSING_REASON,
    "comm_loss",
    "calibration",
    "maintenance",
    "fault",
    "out_of_range",
    "stuck",
    "bad",
)


def reason_codes(samples: GridSamples, stuck: npt.NDArray[np.bool_]) -> npt.NDArray[np.int8]:
    """Index into :data:`LEDGER_REASONS` per grid point [n, T]; -1 where the point is valid.

    ``samples.valid`` is the validity before the stuck check; ``stuck`` marks the points it rejected.
    """
    invalid = ~samples.valid | stuck
    conditions = [~samples.present]
    for name in LEDGER_REASONS[1:]:
        if name == "stuck":
            conditions.append(stuck & samples.valid)
        elif name == "bad":
            conditions.append(np.ones_like(invalid))
        else:
            conditions.append((samples.quality & np.uint8(q.REASON_FLAGS[name])) != 0)
    codes = np.select(conditions, np.arange(len(LEDGER_REASONS), dtype=np.int8), default=-1)
    return np.where(invalid, codes, -1).astype(np.int8)


def reason_counts(codes: npt.NDArray[np.int8], points_per_period: int) -> npt.NDArray[np.int64]:
    """Counts per signal, period and reason: shape [n, periods, len(LEDGER_REASONS)]."""
    n, t = codes.shape
    periods = t // points_per_period
    per = codes.reshape(n, periods, points_per_period)
    return np.stack([(per == r).sum(axis=2) for r in range(len(LEDGER_REASONS))], axis=-1)


def received_counts(present: npt.NDArray[np.bool_], points_per_period: int) -> npt.NDArray[np.int64]:
    """Grid points with a value in force, per signal and period: shape [n, periods]."""
    n, t = present.shape
    return present.reshape(n, t // points_per_period, points_per_period).sum(axis=2)
