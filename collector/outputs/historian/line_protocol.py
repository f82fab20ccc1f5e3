"""InfluxDB line protocol, formatted straight from columnar batches.

The schema (docs/decisions/0004-outbox-and-writer.md)::

    reading,company=C,kiln=K,plant=P,quantity=Q,signal=S value=<float>,quality=<int>i <ts ns>
    kiln_minute,company=C,kiln=K,plant=P co2_t_per_h=..,clinker_t_per_h=..,intensity_kg_per_t=..,
        valid=<bool>,revision=<int>i <start ns>
    kiln_hourly,company=C,kiln=K,plant=P co2_t=..,clinker_t=..,intensity_kg_per_t=..,completeness=..,
        valid=<bool>,revision=<int>i <start ns>
    kiln_hour_rev,company=C,kiln=K,plant=P,revision=R co2_t=..,clinker_t=..,completeness=..,
        valid=<bool> <start ns>
    annotation,annotation_id=N,kind=K,kiln=K,plant=P title="..",text="..",tags="kind,kiln",
        time_end=<ms>i,revision=<int>i,cancelled=<bool> <start ns>

``company`` is the plant's ``company`` in the plant file, left out when it has none. The
``kiln_hour_rev`` point is the hour once per revision (docs/decisions/0032-fleet-from-the-historian.md):
a store that keeps every sample of a series and timestamp (VictoriaMetrics) cannot tell which of an
hour's ``kiln_hourly`` values is the newest, but the newest revision tag can.

Tags are sorted by key (what InfluxDB stores them as). A reading whose value is NaN or infinite
keeps its ``quality`` field and has no ``value`` field (line protocol has no NaN); an aggregate
field that is None or not finite is left out.

Readings are formatted without a Python loop per reading: the tag part of each line is
precomputed per signal, numbers are turned into text by orjson (shortest text that parses back
to the same float64, and integers exactly), and the pieces are joined once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import orjson

from analytics.aggregates import HourAggregate, MinuteAggregate
from analytics.batch import ReadingBatch
from analytics.signals import SignalInfo

READING = "reading"
KILN_MINUTE = "kiln_minute"
KILN_HOURLY = "kiln_hourly"
KILN_HOUR_REV = "kiln_hour_rev"
ANNOTATION = "annotation"

# Line protocol escaping (InfluxDB docs, "Line protocol" > "Special characters").
_ESCAPE_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\t": r"\t"})
_ESCAPE_TAG = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\t": r"\t"})
_QUALITY_CODES = 256  # quality is a uint8


def escape_measurement(name: str) -> str:
    return name.translate(_ESCAPE_MEASUREMENT)


def escape_tag(text: str) -> str:
    """Escape a tag key or value."""
    return text.translate(_ESCAPE_TAG)


def series_key(measurement: str, tags: dict[str, str]) -> str:
    """``measurement,k1=v1,k2=v2`` with tags sorted by key; empty tag values are left out."""
    parts = [escape_measurement(measurement)]
    parts += [f"{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()) if v]
    return ",".join(parts)


def reading_tags(signal: SignalInfo, company: str = "") -> dict[str, str]:
    return {
        "company": company,
        "plant": signal.plant,
        "kiln": signal.kiln,
        "signal": signal.id,
        "quantity": str(signal.quantity),
    }


class ReadingFormatter:
    """Formats a :class:`ReadingBatch` as ``reading`` lines; the batch's signals index ``signals``.

    An instance is the store's ``outbox_formatter``: ``formatter(batch) -> bytes``. ``companies``
    maps a plant id to its company (the ``company`` tag).
    """

    def __init__(self, signals: Sequence[SignalInfo], companies: Mapping[str, str] | None = None) -> None:
        comp = companies or {}
        keys = [series_key(READING, reading_tags(s, comp.get(s.plant, ""))).encode() + b" " for s in signals]
        self.n_signals = len(keys)
        # Row i: signal i with a finite value; row n_signals + i: without a value field.
        self._prefix = np.array([k + b"value=" for k in keys] + keys, dtype=object)
        self._quality = np.array(
            [b",quality=%di " % q for q in range(_QUALITY_CODES)]
            + [b"quality=%di " % q for q in range(_QUALITY_CODES)],
            dtype=object,
        )

    def __call__(self, batch: ReadingBatch) -> bytes:
        n = len(batch)
        if n == 0:
            return b""
        no_value = ~np.isfinite(batch.value)
        prefix = self._prefix[batch.signal.astype(np.intp) + self.n_signals * no_value]
        quality = self._quality[batch.quality.astype(np.intp) + _QUALITY_CODES * no_value]
        parts: list[bytes] = [b""] * (4 * n)
        parts[0::4] = prefix.tolist()
        parts[1::4] = _number_texts(batch.value)
        parts[2::4] = quality.tolist()
        parts[3::4] = _number_texts(batch.ts, sep=b"\n,")
        return b"".join(parts) + b"\n"


def _number_texts(values: np.ndarray, sep: bytes = b",") -> list[bytes]:
    """One text per element; NaN and infinities give b"". ``sep`` ends every text but the last."""
    # Python floats, not orjson's numpy path: that path crashed a test worker once (orjson 3.13.0).
    text = orjson.dumps(values.tolist())[1:-1]
    if values.dtype.kind == "f":
        text = text.replace(b"null", b"")
    if sep != b",":
        text = text.replace(b",", sep)
    return text.split(b",")


def _field(name: str, value: float | bool | int | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return f"{name}={'true' if value else 'false'}"
    if isinstance(value, int) and name == "revision":
        return f"{name}={value}i"
    number = float(value)  # an int here would make InfluxDB type the field as integer
    return f"{name}={number!r}" if math.isfinite(number) else None


def _line(
    measurement: str,
    tags: dict[str, str],
    ts_ns: int,
    fields: dict[str, float | bool | int | None],
) -> str:
    text = ",".join(f for f in (_field(k, v) for k, v in fields.items()) if f is not None)
    return f"{series_key(measurement, tags)} {text} {ts_ns}\n"


def minute_line(m: MinuteAggregate, company: str = "") -> str:
    fields: dict[str, float | bool | int | None] = {
        "co2_t_per_h": m.co2_t_per_h,
        "clinker_t_per_h": m.clinker_t_per_h,
        "intensity_kg_per_t": m.intensity_kg_per_t,
        "valid": m.valid,
        "revision": m.revision,
    }
    return _line(KILN_MINUTE, {"company": company, "plant": m.plant, "kiln": m.kiln}, m.start_ns, fields)


def hour_line(h: HourAggregate, company: str = "") -> str:
    fields: dict[str, float | bool | int | None] = {
        "co2_t": h.co2_t,
        "clinker_t": h.clinker_t,
        "intensity_kg_per_t": h.intensity_kg_per_t,
        "completeness": h.completeness,
        "valid": h.valid,
        "revision": h.revision,
    }
    return _line(KILN_HOURLY, {"company": company, "plant": h.plant, "kiln": h.kiln}, h.start_ns, fields)


def hour_revision_line(h: HourAggregate, company: str = "") -> str:
    """The hour as one revision: a point of its own per revision, so that the newest wins in any store."""
    tags = {"company": company, "plant": h.plant, "kiln": h.kiln, "revision": str(h.revision)}
    fields: dict[str, float | bool | int | None] = {
        "co2_t": h.co2_t,
        "clinker_t": h.clinker_t,
        "completeness": h.completeness,
        "valid": h.valid,  # always present: the point exists even when both numbers are unknown
    }
    return _line(KILN_HOUR_REV, tags, h.start_ns, fields)


def aggregate_outbox_rows(
    minutes: Iterable[MinuteAggregate],
    hours: Iterable[HourAggregate],
    companies: Mapping[str, str] | None = None,
) -> list[tuple[int, int, bytes]]:
    """Closed minutes and hours as outbox rows ``(oldest_ns, n_points, body)``: one row, or none.
    ``companies`` maps a plant id to its company (the ``company`` tag)."""
    minutes, hours = list(minutes), list(hours)
    if not minutes and not hours:
        return []
    comp = companies or {}
    lines = [minute_line(m, comp.get(m.plant, "")) for m in minutes]
    for h in hours:
        lines += [hour_line(h, comp.get(h.plant, "")), hour_revision_line(h, comp.get(h.plant, ""))]
    body = "".join(lines).encode()
    oldest = min([m.start_ns for m in minutes] + [h.start_ns for h in hours])
    return [(oldest, len(minutes) + 2 * len(hours), body)]


def _string_field(text: str) -> str:
    """A string field value: quoted, with backslash, quote and newline escaped."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def annotation_line(
    annotation_id: int,
    plant: str,
    kiln: str,
    kind: str,
    start_ns: int,
    end_ns: int | None,
    title: str,
    text: str,
    revision: int,
    cancelled: bool,
) -> str:
    """One revision of an annotation, in the shape Grafana's InfluxDB annotation queries map (time,
    ``time_end`` [ms], ``title``, ``text``, ``tags``). A later revision has the same series and time,
    so InfluxDB keeps the newest; a cancelled one says ``cancelled=true``."""
    key = series_key(
        ANNOTATION, {"annotation_id": str(annotation_id), "kind": kind, "kiln": kiln, "plant": plant}
    )
    fields = [
        f"title={_string_field(title)}",
        f"text={_string_field(text)}",
        f"tags={_string_field(f'{kind},{kiln}')}",
    ]
    if end_ns is not None:
        fields.append(f"time_end={end_ns // 1_000_000}i")
    fields += [f"revision={revision}i", f"cancelled={'true' if cancelled else 'false'}"]
    return f"{key} {','.join(fields)} {start_ns}\n"
