"""``ReadingBatch``: the columnar form in which readings travel after the protocol callbacks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ReadingBatch:
    """Readings as parallel numpy arrays.

    signal   int32    index into the :class:`~analytics.signals.SignalTable`
    ts       int64    source (event) time [ns since 1970-01-01 UTC]
    value    float64  value in the signal's canonical unit (NaN allowed, then quality says why)
    quality  uint8    see :mod:`analytics.quality`
    """

    signal: npt.NDArray[np.int32]
    ts: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]

    def __post_init__(self) -> None:
        n = len(self.signal)
        if not (len(self.ts) == len(self.value) == len(self.quality) == n):
            raise ValueError(
                f"ReadingBatch columns differ in length: signal {n}, ts {len(self.ts)}, "
                f"value {len(self.value)}, quality {len(self.quality)}"
            )

    @classmethod
    def from_columns(
        cls,
        signal: Sequence[int] | npt.ArrayLike,
        ts: Sequence[int] | npt.ArrayLike,
        value: Sequence[float] | npt.ArrayLike,
        quality: Sequence[int] | npt.ArrayLike,
    ) -> ReadingBatch:
        """Build a batch from any array-likes, converting to the canonical dtypes."""
        return cls(
            np.asarray(signal, dtype=np.int32),
            np.asarray(ts, dtype=np.int64),
            np.asarray(value, dtype=np.float64),
            np.asarray(quality, dtype=np.uint8),
        )

    @classmethod
    def empty(cls) -> ReadingBatch:
        return cls.from_columns([], [], [], [])

    @classmethod
    def concat(cls, batches: Iterable[ReadingBatch]) -> ReadingBatch:
        parts = [b for b in batches if len(b)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls(
            np.concatenate([b.signal for b in parts]),
            np.concatenate([b.ts for b in parts]),
            np.concatenate([b.value for b in parts]),
            np.concatenate([b.quality for b in parts]),
        )

    def __len__(self) -> int:
        return len(self.signal)

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> ReadingBatch:
        """Rows selected by an index or a boolean mask."""
        return ReadingBatch(self.signal[index], self.ts[index], self.value[index], self.quality[index])

    def newest_per_signal(self) -> ReadingBatch:
        """The newest reading of each signal (of two at the same time, the later row wins)."""
        if not len(self):
            return self
        order = np.lexsort((np.arange(len(self)), self.ts, self.signal))
        sig = self.signal[order]
        last = np.flatnonzero(np.r_[sig[1:] != sig[:-1], True])
        return self.take(order[last])

    def sorted_by_signal_time(self) -> ReadingBatch:
        order = np.lexsort((self.ts, self.signal))
        return self.take(order)
