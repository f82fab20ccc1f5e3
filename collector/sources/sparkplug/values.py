"""Sparkplug B metrics to readings, a payload at a time, in columns.

A payload's metrics are read once into arrays (alias, timestamp, is_null, value, quality code);
resolution to signals, signedness, timestamps and quality are array operations on them.

Quality: a metric property ``Quality`` (any case; an integer) holds an OPC DA quality code, as
Ignition and most Sparkplug edge gateways send it: bits 7-6 the class (11 good, 01 uncertain,
00 bad), bits 5-2 the sub-status. Sub-statuses that name a reason map to kilnwatch's flags; a
code above 255 (not OPC DA) is kept as uncertain and counted. ``is_null`` gives NaN, quality bad.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from analytics import quality as q

from .sparkplug_b_pb2 import Payload

#: Sparkplug data types whose unsigned wire value needs its sign back.
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
_NUMERIC_FIELDS: Final = frozenset(
    {"int_value", "long_value", "float_value", "double_value", "boolean_value"}
)
#: OPC DA quality codes with a named reason (severity bits 7-6, sub-status bits 5-2).
DA_GOOD: Final = 192
DA_CODES: Final[Mapping[int, int]] = {
    4: q.BAD | q.FAULT,  # configuration error
    8: q.BAD | q.COMM_LOSS,  # not connected
    12: q.STATUS_QUALITY["fault"],  # device failure
    16: q.STATUS_QUALITY["fault"],  # sensor failure
    20: q.BAD | q.COMM_LOSS,  # last known value
    24: q.BAD | q.COMM_LOSS,  # communication failure
    28: q.STATUS_QUALITY["maintenance"],  # out of service
    68: q.UNCERTAIN | q.COMM_LOSS,  # last usable value
    80: q.STATUS_QUALITY["calibration"],  # sensor not accurate
    84: q.UNCERTAIN | q.OUT_OF_RANGE,  # engineering units exceeded
    216: q.GOOD | q.SUBSTITUTED,  # local override
}
#: No Quality property.
NO_CODE: Final = -1


def _table() -> npt.NDArray[np.uint8]:
    classes = np.array([q.BAD, q.UNCERTAIN, q.BAD, q.GOOD], np.uint8)
    table = classes[np.arange(256) >> 6]
    for code, quality in DA_CODES.items():
        table[code] = quality
    # index 0: no property (good); 1..256: codes 0..255; 257: beyond OPC DA
    return np.concatenate([[q.GOOD], table, [q.UNCERTAIN]]).astype(np.uint8)


_QUALITY: Final = _table()
UNKNOWN_CODE_INDEX: Final = 257


@dataclass(frozen=True, slots=True)
class MetricColumns:
    """Metrics (of one or many payloads) as columns."""

    alias: npt.NDArray[np.uint64]
    has_alias: npt.NDArray[np.bool_]
    names: Mapping[int, str]  # row -> name, for the rows without an alias
    ts_ms: npt.NDArray[np.uint64]  # 0: no metric timestamp
    is_null: npt.NDArray[np.bool_]
    value: npt.NDArray[np.float64]
    numeric: npt.NDArray[np.bool_]
    code: npt.NDArray[np.int64]  # Quality property, NO_CODE when absent


def _quality_code(props: Any) -> int:
    for key, value in zip(props.keys, props.values, strict=False):
        if key.lower() == "quality":
            field = value.WhichOneof("value")
            if field in ("int_value", "long_value"):
                return int(getattr(value, field))
    return NO_CODE


class Columns:
    """Collects the metrics of many payloads, a field at a time, for :meth:`take` as arrays.

    Each field of a payload's metrics is read in one pass (protobuf access is the only
    per-metric step); names and Quality properties only where a metric has them."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._alias: list[int] = []
        self._has_alias: list[bool] = []
        self._names: dict[int, str] = {}
        self._ts: list[int] = []
        self._null: list[bool] = []
        self._value: list[float] = []
        self._numeric: list[bool] = []
        self._codes: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._alias)

    def add(self, payload: Payload) -> int:
        """Append the metrics of ``payload``; returns how many. All or nothing: every field is read
        before any column grows, so the columns keep one length whatever happens."""
        ms = payload.metrics
        base, n = len(self._alias), len(ms)
        which = [m.WhichOneof("value") for m in ms]
        alias = [m.alias for m in ms]
        has = [m.HasField("alias") for m in ms]
        names = {base + i: m.name for i, m in enumerate(ms) if not has[i]} if not all(has) else {}
        ts = [m.timestamp for m in ms]
        null = [m.is_null for m in ms]
        if all(w == "double_value" for w in which):
            value, numeric = [m.double_value for m in ms], [True] * n
        else:
            numeric = [w in _NUMERIC_FIELDS for w in which]
            value = [
                float(getattr(m, w)) if ok else np.nan for m, w, ok in zip(ms, which, numeric, strict=True)
            ]
        props = [m.HasField("properties") for m in ms]
        codes = (
            {base + i: _quality_code(ms[i].properties) for i in range(n) if props[i]} if any(props) else {}
        )
        self._alias += alias
        self._has_alias += has
        self._names.update(names)
        self._ts += ts
        self._null += null
        self._value += value
        self._numeric += numeric
        self._codes.update(codes)
        return n

    def take(self) -> MetricColumns:
        """Everything added so far, as arrays; the collector is empty afterwards."""
        code = np.full(len(self._alias), NO_CODE, np.int64)
        if self._codes:
            code[list(self._codes)] = list(self._codes.values())
        out = MetricColumns(
            np.array(self._alias, np.uint64),
            np.array(self._has_alias, bool),
            self._names,
            np.array(self._ts, np.uint64),
            np.array(self._null, bool),
            np.array(self._value, np.float64),
            np.array(self._numeric, bool),
            code,
        )
        self._reset()
        return out


def signed(value: npt.NDArray[np.float64], datatype: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Int8/16/32 travel as two's complement in a uint32, Int64 in a uint64: give them their sign."""
    out = value.copy()
    small = np.isin(datatype, (INT8, INT16, INT32)) & (value >= 2.0**31)
    out[small] -= 2.0**32
    big = (datatype == INT64) & (value >= 2.0**63)
    out[big] -= 2.0**64
    return out


def quality(code: npt.NDArray[np.int64], is_null: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint8]:
    """kilnwatch quality of each metric from its Quality property and ``is_null``."""
    index = np.where(code < 0, 0, np.where(code > 255, UNKNOWN_CODE_INDEX, code + 1))
    out = _QUALITY[index]
    out[is_null] = (out[is_null] & ~np.uint8(q.CLASS_MASK)) | q.BAD
    return out
