"""MQTT payloads to readings: field paths, timestamps, status words.

No I/O here: :mod:`collector.sources.mqtt.source` hands over the messages of one batch and gets back a
``ReadingBatch`` and the rejections. The mapping is data (:class:`~collector.sources.mqtt.spec.MqttBinding`):
one topic may carry many signals, each with its own value, timestamp and status path.

Rejection kinds (``reason`` label of ``kilnwatch_rejected_total``, first word of a dead letter's reason):

    not_json            the payload is not a JSON document
    value_missing       the value path leads nowhere in the document
    value_not_numeric   the value is not a number (nor a string holding one)
    value_not_finite    NaN or infinity
    timestamp_missing   the timestamp path leads nowhere
    timestamp_invalid   neither ISO 8601 nor an epoch number within int64 nanoseconds
    timestamp_future    further ahead of kilnwatch's clock than ``max_future_skew_s``
    no_signal           the topic matches no binding (e.g. a subscription left in the
                        persistent session by an older configuration)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import orjson

from analytics import quality as q
from analytics.batch import ReadingBatch

from .spec import MqttBinding, MqttBrokerSpec, StatusWord, TimestampUnit

NOT_JSON: Final = "not_json"
VALUE_MISSING: Final = "value_missing"
VALUE_NOT_NUMERIC: Final = "value_not_numeric"
VALUE_NOT_FINITE: Final = "value_not_finite"
TIMESTAMP_MISSING: Final = "timestamp_missing"
TIMESTAMP_INVALID: Final = "timestamp_invalid"
TIMESTAMP_FUTURE: Final = "timestamp_future"
NO_SIGNAL: Final = "no_signal"
#: Not a rejection: the value is kept with quality uncertain.
UNKNOWN_STATUS: Final = "unknown_status"

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_UNIT_NS: Final = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
#: "auto" unit: an epoch number below a bound is read in its unit (1e11 s is the year 5138).
_AUTO_BOUNDS: Final[tuple[tuple[float, TimestampUnit], ...]] = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))
_INT64_MAX: Final = 2**63 - 1
MISSING: Final = object()
_STATUS_WORDS_KEPT: Final = 256

FieldPath = tuple[tuple[str, int | None], ...]
Problem = tuple[str, str]  # (kind, detail)


def parse_path(path: str) -> FieldPath:
    """``"channels.co2.value"`` -> keys; a numeric part may also index a list; ``""``: the document."""
    parts = path.split(".") if path else []
    return tuple((p, int(p) if p.isascii() and p.isdigit() else None) for p in parts)


def lookup(doc: Any, path: FieldPath) -> Any:
    """The item at ``path`` in a parsed JSON document, or :data:`MISSING`."""
    found = doc
    try:  # the common case, objects all the way down
        for key, _ in path:
            found = found[key]
        return found
    except (KeyError, TypeError, IndexError):
        pass
    for key, index in path:
        if isinstance(doc, dict):
            doc = doc.get(key, MISSING)
        elif isinstance(doc, list) and index is not None and index < len(doc):
            doc = doc[index]
        else:
            return MISSING
    return doc


def to_float(v: Any) -> float | None:
    """A JSON number or numeric string (or bytes) as float, ±inf when too large; None if not numeric."""
    if type(v) is float:
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        try:
            return float(v)
        except OverflowError:
            return math.inf if v > 0 else -math.inf
    if isinstance(v, str | bytes):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def epoch_to_ns(x: int | float, unit: TimestampUnit) -> int | None:
    """Epoch number in ``unit`` ("auto": by magnitude) -> [ns since 1970 UTC]; None outside 0 .. int64."""
    if unit == "auto":
        unit = next((u for bound, u in _AUTO_BOUNDS if abs(x) < bound), "ns")
    if isinstance(x, int):
        ns = x * _UNIT_NS[unit]
    else:
        scaled = x * _UNIT_NS[unit]
        if not math.isfinite(scaled):
            return None
        ns = round(scaled)
    return ns if 0 <= ns <= _INT64_MAX else None


def iso_to_ns(text: str) -> int:
    """ISO 8601 -> [ns since 1970 UTC]; without an offset it is UTC. ValueError if not ISO 8601."""
    dt = datetime.fromisoformat(text)
    td = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)) - _EPOCH
    return (td.days * 86_400 + td.seconds) * 1_000_000_000 + td.microseconds * 1_000


def parse_timestamp(v: Any, unit: TimestampUnit) -> int | None:
    """ISO 8601 string, or an epoch number (or numeric string) in ``unit`` -> [ns]; None if neither."""
    if isinstance(v, str):
        try:
            ns = iso_to_ns(v)
            return ns if 0 <= ns <= _INT64_MAX else None
        except (ValueError, OverflowError):
            number = to_float(v)
            text = v.strip()
            exact = text.lstrip("-").isdecimal() and len(text) < 40  # integers keep every nanosecond
            return None if number is None else epoch_to_ns(int(text) if exact else number, unit)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return epoch_to_ns(v, unit)


def status_key(v: Any) -> str | None:
    """Normal form of a status word or code: case-folded text, integral numbers as digits."""
    if isinstance(v, str):
        return v.strip().casefold()
    if isinstance(v, bool):
        return str(v).casefold()
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer()):
        return str(int(v))
    return None


def compile_status_map(status_map: Mapping[str | int, StatusWord]) -> dict[str, int]:
    """Gateway status -> quality code (see :data:`analytics.quality.STATUS_QUALITY`)."""
    return {str(status_key(k)): q.STATUS_QUALITY[w] for k, w in status_map.items()}


def parse_json(payload: bytes) -> Any:
    """The document, or :data:`MISSING`. The stdlib parser is the fallback for NaN, Infinity, huge ints."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(payload)
    except (ValueError, RecursionError):
        return MISSING


@dataclass(frozen=True, slots=True, eq=False)
class FieldDecoder:
    """One signal's binding, compiled: where its value, timestamp and status sit in a payload."""

    signal: int
    name: str
    format: str
    value_path: FieldPath
    timestamp_path: FieldPath | None
    status_path: FieldPath | None
    timestamp_unit: TimestampUnit
    status_quality: Mapping[str, int]
    #: The paths as configured, for messages.
    paths: tuple[str, str | None, str | None] = ("value", "ts", "status")
    #: Status words as they came -> quality code, filled as they are seen (at most
    #: ``_STATUS_WORDS_KEPT``; words not in the map are not kept, they are reported each time).
    status_codes: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_binding(cls, signal: int, name: str, b: MqttBinding, broker: MqttBrokerSpec) -> FieldDecoder:
        if b.format == "number":  # a bare number: arrival time, status ok
            b = b.model_copy(update={"timestamp_path": None, "status_path": None})
        return cls(
            signal=signal,
            name=name,
            format=b.format,
            value_path=parse_path(b.value_path),
            timestamp_path=None if b.timestamp_path is None else parse_path(b.timestamp_path),
            status_path=None if b.status_path is None else parse_path(b.status_path),
            timestamp_unit=b.timestamp_unit or broker.timestamp_unit,
            status_quality=compile_status_map(broker.status_map if b.status_map is None else b.status_map),
            paths=(b.value_path, b.timestamp_path, b.status_path),
        )


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why (part of) message ``index`` gave no reading; ``signals``: those it would have fed."""

    index: int
    signals: tuple[str, ...]
    kind: str
    detail: str

    @property
    def reason(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass(slots=True)
class Decoded:
    batch: ReadingBatch
    rejections: list[Rejection] = field(default_factory=list)
    #: Readings kept as uncertain because their status is not in the status map.
    unknown_status: list[Rejection] = field(default_factory=list)


#: One message to decode: the decoders its topic routes to, the payload, arrival time [ns].
Message = tuple[Sequence[FieldDecoder], bytes, int]


def decode_batch(messages: Sequence[Message], now_ns: int, max_future_ns: int) -> Decoded:
    """Decode every message; the value and future-time checks run on the whole batch at once.

    The common case (a JSON object holding a float at the value path, a status word seen before)
    is written out inline: this loop runs for every channel of every message."""
    out = Decoded(ReadingBatch.empty())
    signal: list[int] = []
    ts: list[int] = []
    value: list[float] = []
    quality: list[int] = []
    origin: list[tuple[int, FieldDecoder]] = []  # (message, decoder) of each row
    for i, (decoders, payload, received_ns) in enumerate(messages):
        if not decoders:
            out.rejections.append(Rejection(i, (), NO_SIGNAL, "topic matches no signal"))
            continue
        doc = parse_json(payload) if any(d.format == "json" for d in decoders) else None
        if doc is MISSING:
            names = tuple(d.name for d in decoders if d.format == "json")
            out.rejections.append(Rejection(i, names, NOT_JSON, "payload is not a JSON document"))
        times: dict[tuple[FieldPath, str], int | Problem] = {}
        for d in decoders:
            if d.format == "number":
                n = to_float(payload)
                if n is None:
                    out.rejections.append(
                        Rejection(i, (d.name,), VALUE_NOT_NUMERIC, _shown("payload", payload))
                    )
                    continue
                t, v = received_ns, n
            elif doc is MISSING:
                continue
            else:
                got = _json_field(d, doc, received_ns, times)
                if isinstance(got[0], str):
                    out.rejections.append(Rejection(i, (d.name,), got[0], str(got[1])))
                    continue
                t, v = got
            signal.append(d.signal)
            ts.append(t)
            value.append(v)
            quality.append(q.GOOD if d.status_path is None else _quality(doc, d, i, out))
            origin.append((i, d))
    batch = ReadingBatch.from_columns(signal, ts, value, quality)
    bad = ~np.isfinite(batch.value) | (batch.ts > now_ns + max_future_ns)
    for j in np.flatnonzero(bad).tolist():
        i, d = origin[j]
        t, v = ts[j], value[j]
        if math.isfinite(v):
            detail = f"{d.paths[1]} is {(t - now_ns) / 1e9:.0f} s ahead"
            out.rejections.append(Rejection(i, (d.name,), TIMESTAMP_FUTURE, detail))
        else:
            out.rejections.append(Rejection(i, (d.name,), VALUE_NOT_FINITE, _shown(d.paths[0], v)))
    out.batch = batch.take(~bad) if bad.any() else batch
    return out


def _json_field(
    d: FieldDecoder, doc: Any, received_ns: int, times: dict[tuple[FieldPath, str], int | Problem]
) -> tuple[int, float] | Problem:
    """(ts [ns], value), or the problem; ``times`` caches the timestamps of this message."""
    raw = lookup(doc, d.value_path)
    number = raw if type(raw) is float else to_float(raw)
    if number is None:
        if raw is MISSING:
            return VALUE_MISSING, f"no {d.paths[0] or 'value'}"
        return VALUE_NOT_NUMERIC, _shown(d.paths[0], raw)
    if d.timestamp_path is None:
        return received_ns, number
    key = (d.timestamp_path, d.timestamp_unit)
    t = times.get(key)
    if t is None:
        t = times[key] = _timestamp(doc, d.timestamp_path, d)
    return t if isinstance(t, tuple) else (t, number)


def _timestamp(doc: Any, path: FieldPath, d: FieldDecoder) -> int | Problem:
    raw = lookup(doc, path)
    if raw is MISSING:
        return TIMESTAMP_MISSING, f"no {d.paths[1]}"
    ns = parse_timestamp(raw, d.timestamp_unit)
    return (TIMESTAMP_INVALID, _shown(d.paths[1], raw)) if ns is None else ns


def _quality(doc: Any, d: FieldDecoder, index: int, out: Decoded) -> int:
    """Quality from the status field; absent or null: ok; not in the map: uncertain."""
    assert d.status_path is not None
    raw = lookup(doc, d.status_path)
    if raw is MISSING or raw is None:
        return q.GOOD
    if type(raw) is str:  # a status word: its code is looked up once per word (casefold is slow)
        code = d.status_codes.get(raw)
        if code is None:
            code = d.status_quality.get(status_key(raw) or "")
            if code is not None and len(d.status_codes) < _STATUS_WORDS_KEPT:
                d.status_codes[raw] = code
    else:
        code = d.status_quality.get(status_key(raw) or "")
    if code is None:
        out.unknown_status.append(Rejection(index, (d.name,), UNKNOWN_STATUS, _shown(d.paths[2], raw)))
        return q.UNCERTAIN
    return code


def _shown(path: str | None, raw: Any) -> str:
    text = repr(raw)
    return f"{path} is {text[:77] + '...' if len(text) > 80 else text}"
