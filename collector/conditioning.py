"""Per-value conditioning on whole batches: loop-current scaling, QAL2 calibration, unit scaling,
NaN and range checks (docs/method.md § 3; WE11).

In this order, per reading: a 4-20 mA signal is scaled to its range with the NAMUR NE 43 status
(:func:`analytics.corrections.scale_4_20ma`); a signal with an EN 14181 QAL2 function gets
y = a + b*x while its calibration is in force, flagged where y lies outside the valid calibration
range (:func:`analytics.corrections.qal2_calibrate`); both in the signal's configured unit. Then the
value goes to its canonical unit and through the range check. Values are never dropped: a
non-finite value becomes BAD, a value outside the range gets OUT_OF_RANGE. Everything is indexed
by the batch's signal column, so a batch is one pass of array operations whatever its signals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from analytics import corrections as corr
from analytics import quality as q
from analytics.batch import ReadingBatch

_T_MIN = np.iinfo(np.int64).min
_T_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class FlagCounts:
    """How many values of a batch each check flagged, per signal index (only non-zero entries)."""

    non_finite: dict[int, int]
    out_of_range: dict[int, int]
    #: 4-20 mA current outside 4-20 mA (NE 43 under/over-range and failure bands).
    loop_current: dict[int, int] = field(default_factory=dict)
    #: QAL2-calibrated value outside the valid calibration range (EN 14181).
    outside_calibration: dict[int, int] = field(default_factory=dict)
    #: QAL2 function configured but not in force at the reading's time (left uncalibrated, uncertain).
    calibration_not_in_force: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ValueCorrections:
    """Per-signal corrections before unit scaling, as arrays indexed by signal.

    loop_lo, loop_hi: range of a 4-20 mA signal [configured unit], NaN where the signal is not one;
    qal2_*: the QAL2 function y = a + b*x, its valid calibration range [configured unit], the
    period it is in force [ns] and whether values outside the range are invalid; has_qal2 where set.
    """

    loop_lo: npt.NDArray[np.float64]
    loop_hi: npt.NDArray[np.float64]
    has_qal2: npt.NDArray[np.bool_]
    qal2_a: npt.NDArray[np.float64]
    qal2_b: npt.NDArray[np.float64]
    qal2_min: npt.NDArray[np.float64]
    qal2_max: npt.NDArray[np.float64]
    qal2_from_ns: npt.NDArray[np.int64]
    qal2_to_ns: npt.NDArray[np.int64]
    qal2_invalidate: npt.NDArray[np.bool_]

    @classmethod
    def none(cls, n: int) -> ValueCorrections:
        return cls(
            np.full(n, np.nan),
            np.full(n, np.nan),
            np.zeros(n, bool),
            np.zeros(n),
            np.ones(n),
            np.full(n, -np.inf),
            np.full(n, np.inf),
            np.full(n, _T_MIN, np.int64),
            np.full(n, _T_MAX, np.int64),
            np.zeros(n, bool),
        )


def _merge(quality: npt.NDArray[np.uint8], new: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The worse class of the two, and the flags of both."""
    mask = np.uint8(q.CLASS_MASK)
    cls = np.maximum(quality & mask, new & mask)
    return ((quality | new) & ~mask | cls).astype(np.uint8)


class Conditioner:
    def __init__(
        self,
        scale: npt.ArrayLike,
        offset: npt.ArrayLike,
        valid_min: npt.ArrayLike,
        valid_max: npt.ArrayLike,
        corrections: ValueCorrections | None = None,
    ) -> None:
        self.scale = np.asarray(scale, dtype=np.float64)
        self.offset = np.asarray(offset, dtype=np.float64)
        self.valid_min = np.asarray(valid_min, dtype=np.float64)
        self.valid_max = np.asarray(valid_max, dtype=np.float64)
        self.corrections = corrections

    def apply(self, batch: ReadingBatch) -> tuple[ReadingBatch, FlagCounts]:
        s = batch.signal
        value = batch.value
        quality = batch.quality.copy()
        extra: dict[str, dict[int, int]] = {}
        if self.corrections is not None and len(batch):
            value, quality, extra = self._correct(batch, quality)
        value = value * self.scale[s] + self.offset[s]
        finite = np.isfinite(value)
        quality[~finite] = (quality[~finite] & ~np.uint8(q.CLASS_MASK)) | np.uint8(q.BAD)
        with np.errstate(invalid="ignore"):
            outside = finite & ((value < self.valid_min[s]) | (value > self.valid_max[s]))
        quality[outside] |= np.uint8(q.OUT_OF_RANGE)
        counts = FlagCounts(_count(s[~finite]), _count(s[outside]), **extra)
        return ReadingBatch(batch.signal, batch.ts, value, quality), counts

    def _correct(
        self, batch: ReadingBatch, quality: npt.NDArray[np.uint8]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint8], dict[str, dict[int, int]]]:
        c = self.corrections
        assert c is not None
        s = batch.signal
        value = batch.value.astype(np.float64, copy=True)
        loop = np.isfinite(c.loop_lo[s])
        loop_flagged = np.zeros(len(batch), dtype=bool)
        if loop.any():
            ls = s[loop]
            scaled = corr.scale_4_20ma(value[loop], c.loop_lo[ls], c.loop_hi[ls])
            value[loop] = scaled.value
            quality[loop] = _merge(quality[loop], scaled.quality)
            loop_flagged[loop] = scaled.quality != q.GOOD
        has = c.has_qal2[s]
        in_force = has & (batch.ts >= c.qal2_from_ns[s]) & (batch.ts < c.qal2_to_ns[s])
        outside_cal = np.zeros(len(batch), dtype=bool)
        if in_force.any():
            cs = s[in_force]
            cal = corr.qal2_calibrate(
                value[in_force], c.qal2_a[cs], c.qal2_b[cs], c.qal2_min[cs], c.qal2_max[cs], quality[in_force]
            )
            flags = np.where(cal.outside_range & c.qal2_invalidate[cs], np.uint8(q.OUT_OF_RANGE), np.uint8(0))
            value[in_force] = np.where(np.isfinite(value[in_force]), cal.value, value[in_force])
            quality[in_force] = cal.quality | flags
            outside_cal[in_force] = cal.outside_range
        not_in_force = has & ~in_force
        quality[not_in_force] = _merge(
            quality[not_in_force], np.full(not_in_force.sum(), q.UNCERTAIN, np.uint8)
        )
        extra = {
            "loop_current": _count(s[loop_flagged]),
            "outside_calibration": _count(s[outside_cal]),
            "calibration_not_in_force": _count(s[not_in_force]),
        }
        return value, quality, extra


def _count(signals: npt.NDArray[np.int32]) -> dict[int, int]:
    if not len(signals):
        return {}
    idx, n = np.unique(signals, return_counts=True)
    return dict(zip(idx.tolist(), n.tolist(), strict=True))
