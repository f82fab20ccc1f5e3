"""Per-value conditioning on whole batches: unit scaling, NaN and range checks.

Every signal has a scale and offset to its canonical unit and a valid range. Values are never
dropped: a non-finite value becomes BAD, a value outside the range gets OUT_OF_RANGE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics import quality as q
from analytics.batch import ReadingBatch


@dataclass(frozen=True)
class FlagCounts:
    """How many values of a batch each check flagged, per signal index (only non-zero entries)."""

    non_finite: dict[int, int]
    out_of_range: dict[int, int]


class Conditioner:
    def __init__(
        self,
        scale: npt.ArrayLike,
        offset: npt.ArrayLike,
        valid_min: npt.ArrayLike,
        valid_max: npt.ArrayLike,
    ) -> None:
        self.scale = np.asarray(scale, dtype=np.float64)
        self.offset = np.asarray(offset, dtype=np.float64)
        self.valid_min = np.asarray(valid_min, dtype=np.float64)
        self.valid_max = np.asarray(valid_max, dtype=np.float64)

    def apply(self, batch: ReadingBatch) -> tuple[ReadingBatch, FlagCounts]:
        s = batch.signal
        value = batch.value * self.scale[s] + self.offset[s]
        quality = batch.quality.copy()
        finite = np.isfinite(value)
        quality[~finite] = (quality[~finite] & ~np.uint8(q.CLASS_MASK)) | np.uint8(q.BAD)
        with np.errstate(invalid="ignore"):
            outside = finite & ((value < self.valid_min[s]) | (value > self.valid_max[s]))
        quality[outside] |= np.uint8(q.OUT_OF_RANGE)
        counts = FlagCounts(_count(s[~finite]), _count(s[outside]))
        return ReadingBatch(batch.signal, batch.ts, value, quality), counts


def _count(signals: npt.NDArray[np.int32]) -> dict[int, int]:
    if not len(signals):
        return {}
    idx, n = np.unique(signals, return_counts=True)
    return dict(zip(idx.tolist(), n.tolist(), strict=True))
