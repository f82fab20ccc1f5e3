"""OPC UA data values to kilnwatch readings: StatusCode → quality, DateTime → ns, Variant → float.

Notifications arrive one monitored item at a time; :class:`NotificationBuffer` only appends
them to plain lists, and :meth:`NotificationBuffer.take` turns a whole flush into one
:class:`~analytics.batch.ReadingBatch` with array operations.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt
from asyncua import ua

from analytics import quality as q
from analytics.batch import ReadingBatch

#: Quality class by the two severity bits of a StatusCode (OPC UA Part 4 § 7.39: 00 good,
#: 01 uncertain, 10 bad, 11 reserved → treated as bad).
SEVERITY_QUALITY: Final = np.array([q.GOOD, q.UNCERTAIN, q.BAD, q.BAD], dtype=np.uint8)
_SEVERITY_SHIFT: Final = 30
_SUBCODE_MASK: Final = 0xFFFF0000

_S = ua.StatusCodes
#: Flags that name *why* a value is not usable, by StatusCode (severity + sub-code, OPC UA Part 8).
STATUS_FLAGS: Final[dict[int, int]] = {
    _S.BadSensorFailure: q.FAULT,
    _S.BadDeviceFailure: q.FAULT,
    _S.BadConfigurationError: q.FAULT,
    _S.BadOutOfService: q.MAINTENANCE,
    _S.UncertainSensorCalibration: q.CALIBRATION,
    _S.BadCommunicationError: q.COMM_LOSS,
    _S.BadNoCommunication: q.COMM_LOSS,
    _S.BadNotConnected: q.COMM_LOSS,
    _S.UncertainNoCommunicationLastUsableValue: q.COMM_LOSS,
    _S.UncertainEngineeringUnitsExceeded: q.OUT_OF_RANGE,
    _S.BadOutOfRange: q.OUT_OF_RANGE,
    _S.UncertainSubstituteValue: q.SUBSTITUTED,
    _S.GoodLocalOverride: q.SUBSTITUTED,
}

#: Marker for "no usable timestamp" in an int64 ns column.
NO_TS: Final = np.iinfo(np.int64).min
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
# datetimes outside what int64 ns can hold (OPC UA's MinDateTime 1601-01-01 and MaxDateTime
# 9999-12-31 included) count as "no timestamp".
_TS_MIN: Final = datetime(1678, 1, 1, tzinfo=UTC)
_TS_MAX: Final = datetime(2262, 1, 1, tzinfo=UTC)
_NUMERIC: Final = frozenset({float, int, bool, type(None)})


def quality_from_status(status: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Quality codes for OPC UA StatusCode values [uint32]: class from the severity, plus flags."""
    codes = np.asarray(status, dtype=np.uint32)
    quality = SEVERITY_QUALITY[codes >> _SEVERITY_SHIFT]
    sub = codes & np.uint32(_SUBCODE_MASK)
    for code, flag in STATUS_FLAGS.items():
        quality[sub == code] |= np.uint8(flag)
    return quality


def datetime_to_ns(dt: datetime | None) -> int:
    """An OPC UA DateTime as ns since 1970 UTC [ns]; naive means UTC; :data:`NO_TS` when absent."""
    if dt is None:
        return int(NO_TS)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    if not _TS_MIN < dt < _TS_MAX:
        return int(NO_TS)
    return ((dt - _EPOCH) // _US) * 1000


def values_to_float(values: Sequence[object]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Variant values as float64 (bools and ints cast, null → NaN) and a mask of non-numeric ones."""
    n = len(values)
    if {type(v) for v in values} <= _NUMERIC:
        return np.array(values, dtype=np.float64), np.zeros(n, dtype=np.bool_)
    numeric = np.fromiter((v is None or isinstance(v, int | float) for v in values), dtype=np.bool_, count=n)
    return np.fromiter((_as_float(v) for v in values), dtype=np.float64, count=n), ~numeric


def _as_float(v: object) -> float:
    return float(v) if isinstance(v, int | float) else math.nan


@dataclass(frozen=True, slots=True)
class Readings:
    """One flush: the batch, the monitored-item handle of each row and what was rejected."""

    batch: ReadingBatch
    handles: npt.NDArray[np.intp]
    non_numeric: npt.NDArray[np.bool_]
    #: Newest source (or server) timestamp in the flush [ns], None when it had none.
    newest_source_ns: int | None


class NotificationBuffer:
    """Collects data-change notifications in plain lists until the next flush."""

    def __init__(self) -> None:
        self._handles: list[int] = []
        self._values: list[ua.DataValue] = []
        self._received: list[int] = []

    def __len__(self) -> int:
        return len(self._handles)

    def add(self, handle: int, value: ua.DataValue) -> None:
        self._handles.append(handle)
        self._values.append(value)
        self._received.append(time.time_ns())

    def extend(self, handle: int, values: Sequence[ua.DataValue]) -> None:
        """Many values of one node at once (read back from the server's history)."""
        self._handles.extend([handle] * len(values))
        self._values.extend(values)
        self._received.extend([time.time_ns()] * len(values))

    def take(self, signal_of_handle: npt.NDArray[np.int32]) -> Readings | None:
        """Everything collected so far as columns; the buffer is empty afterwards."""
        if not self._handles:
            return None
        handles = np.array(self._handles, dtype=np.intp)
        dvs, received = self._values, self._received
        self._handles, self._values, self._received = [], [], []
        n = len(dvs)

        status = np.fromiter((0 if d.StatusCode is None else d.StatusCode.value for d in dvs), np.uint32, n)
        quality = quality_from_status(status)
        value, non_numeric = values_to_float([None if d.Value is None else d.Value.Value for d in dvs])
        bad = (quality & q.CLASS_MASK) == q.BAD
        value[bad] = np.nan
        quality[non_numeric] = (quality[non_numeric] & ~np.uint8(q.CLASS_MASK)) | np.uint8(q.BAD)

        ts = np.fromiter((datetime_to_ns(d.SourceTimestamp) for d in dvs), np.int64, n)
        missing = ts == NO_TS
        if missing.any():
            server = np.fromiter((datetime_to_ns(d.ServerTimestamp) for d in dvs), np.int64, n)
            ts = np.where(missing, server, ts)
            missing = ts == NO_TS
        stamped = ts[~missing]
        newest = int(stamped.max()) if len(stamped) else None
        if missing.any():
            ts = np.where(missing, np.array(received, dtype=np.int64), ts)
            cls = np.maximum(quality[missing] & q.CLASS_MASK, np.uint8(q.UNCERTAIN))
            quality[missing] = (quality[missing] & ~np.uint8(q.CLASS_MASK)) | cls

        batch = ReadingBatch(signal_of_handle[handles], ts, value, quality)
        return Readings(batch, handles, non_numeric, newest)


class Outbox:
    """Notifications collected for the next batch, and sealed batches the sink has not yet taken.

    Sealing is synchronous and cheap, so the subscription is drained even while the sink makes
    the source wait; ``full`` says when the sealed batches reach ``max_readings``.
    """

    def __init__(self, signal_of_handle: npt.NDArray[np.int32], max_readings: int) -> None:
        self.signal_of_handle = signal_of_handle
        self.max_readings = max_readings
        self.collecting = NotificationBuffer()
        self._sealed: deque[ReadingBatch] = deque()
        self._sealed_readings = 0

    @property
    def full(self) -> bool:
        return self._sealed_readings >= self.max_readings

    def seal(self) -> Readings | None:
        """Turn what was collected into a batch at the end of the queue."""
        readings = self.collecting.take(self.signal_of_handle)
        if readings is not None:
            self.push(readings.batch)
        return readings

    def push(self, batch: ReadingBatch) -> None:
        self._sealed.append(batch)
        self._sealed_readings += len(batch)

    def head(self) -> ReadingBatch | None:
        return self._sealed[0] if self._sealed else None

    def pop(self) -> None:
        """The head batch was accepted by the sink."""
        self._sealed_readings -= len(self._sealed.popleft())


def comm_loss_batch(signals: npt.NDArray[np.int32], ts_ns: int) -> ReadingBatch:
    """One NaN reading per signal, quality BAD | COMM_LOSS, all at ``ts_ns`` [ns]."""
    n = len(signals)
    return ReadingBatch(
        signals.astype(np.int32, copy=True),
        np.full(n, ts_ns, dtype=np.int64),
        np.full(n, np.nan, dtype=np.float64),
        np.full(n, q.BAD | q.COMM_LOSS, dtype=np.uint8),
    )


class NodeStats:
    """Per monitored item: values received and the newest timestamp [ns]; per server: the newest
    source timestamp [ns], after which the COMM_LOSS markers go."""

    def __init__(self, n_nodes: int) -> None:
        self.counts = np.zeros(n_nodes, dtype=np.int64)
        self.newest_ns = np.full(n_nodes, NO_TS, dtype=np.int64)
        self.newest_source_ns: int | None = None

    def add(self, readings: Readings) -> None:
        self.counts += np.bincount(readings.handles, minlength=len(self.counts))
        np.maximum.at(self.newest_ns, readings.handles, readings.batch.ts)
        if readings.newest_source_ns is not None:
            self.newest_source_ns = max(self.newest_source_ns or int(NO_TS), readings.newest_source_ns)

    def row(self, i: int) -> dict[str, int | None]:
        newest = int(self.newest_ns[i])
        return {"values": int(self.counts[i]), "last_ts_ns": None if newest == NO_TS else newest}
