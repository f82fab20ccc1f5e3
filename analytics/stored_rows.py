"""The hourly report rows as a store keeps them beside each hour, and how a report completes them.

A stored row is :func:`analytics.tables.hourly_row` without the ledger (null), written once when the
hour is: ``report`` as JSON text, ``flat`` as the JSON array of its CSV cells. What depends on the
report's time zone (the :class:`~analytics.schema.Local` fields, e.g. ``hour_local``) is stored as a
marker, the string ``"\\u0000local"``, and filled in by :func:`json_array` / :func:`fill_cells` from
the hour's start alone; so a report never decodes the hour's record (decision 0031).
"""

from __future__ import annotations

import csv
import io
import zlib
from typing import Any, NamedTuple

import orjson

from . import tables
from .aggregates import HourAggregate
from .plant_time import PlantClock, local_iso_json, local_isos
from .schema import Local

#: Raise when a getter of the hourly schema changes what it writes (field changes are seen anyway).
FORM_VERSION = 3


class HourStart(NamedTuple):
    """What a local field of an hourly row may read: the hour's start."""

    start_ns: int


#: What a local field holds in a stored row (the same for every one: they are filled in field order).
MARKER = "\x00local"
#: The same in an RFC 4180 line.
CSV_MARKER = "@kilnwatch-local@"
_SPLICE_ROWS = 256


def _local_fields() -> list[tuple[str, Local]]:
    return [(f.name, f.get) for f in tables.HOURLY.fields if isinstance(f.get, Local)]


def form_id() -> str:
    """What stored rows were made with: the hourly fields and :data:`FORM_VERSION`."""
    names = [f"{f.name}:{f.dtype}:{f.csv}" for f in (*tables.HOURLY.fields, *tables.PARAMETER.fields)]
    return f"{FORM_VERSION}-{zlib.crc32(orjson.dumps(names)):08x}"


def forms(h: HourAggregate) -> tuple[bytes, bytes, bytes]:
    """(``report``, ``flat``, ``line``) of one hour, local fields as markers."""
    row = tables.hourly_row(h, ledger=False)
    for name, _ in _local_fields():
        row[name] = MARKER
    report = orjson.dumps(row)
    cells = [tables.csv_value(row[c]) for c in tables.HOURLY.csv_header]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([CSV_MARKER if c == MARKER else c for c in cells])
    return report, orjson.dumps(cells), buf.getvalue().encode()


def _values(get: Local, starts: list[int], clock: PlantClock) -> list[Any]:
    if get.of_starts is not None:
        return get.of_starts(starts, clock)
    return [get.read(HourStart(t), clock) for t in starts]


def _json_values(get: Local, starts: list[int], clock: PlantClock) -> list[bytes]:
    if get.of_starts is local_isos:
        return local_iso_json(starts, clock)  # written by numpy, quoted
    # a copy of exactly its size: orjson leaves each small result in a buffer of 4 KiB
    return [b"%b" % orjson.dumps(v) for v in _values(get, starts, clock)]


def json_array(texts: list[bytes], starts: list[int], clock: PlantClock) -> bytearray:
    """Stored ``report`` rows of the hours starting at ``starts``, completed for ``clock``, as one JSON
    array. ``texts`` is used up: each row is freed once copied, so the array is the one copy. Per
    ``_SPLICE_ROWS`` rows a few passes of C (join, split at the markers, join with the values)
    instead of Python work per row."""
    if not texts:
        return bytearray(b"[]")
    per_field = [_json_values(get, starts, clock) for _, get in _local_fields()]
    values = per_field[0] if len(per_field) == 1 else [v for row in zip(*per_field, strict=True) for v in row]
    k, marker = len(per_field), orjson.dumps(MARKER)
    out = bytearray(b"[")
    for lo in range(0, len(texts), _SPLICE_ROWS):
        hi = min(len(texts), lo + _SPLICE_ROWS)
        parts = b",".join(texts[lo:hi]).split(marker)
        texts[lo:hi] = [b""] * (hi - lo)
        if len(parts) != (hi - lo) * k + 1:
            raise ValueError(f"{len(parts) - 1} local-time markers in {hi - lo} stored rows")
        filled: list[bytes] = [b""] * (2 * len(parts) - 1)
        filled[0::2] = parts
        filled[1::2] = values[lo * k : hi * k]
        out += b"".join(filled)
        out += b","
    out[-1:] = b"]"
    return out


def fill_cells(rows: list[list[Any]], starts: list[int], clock: PlantClock) -> list[list[Any]]:
    """Stored ``flat`` rows (decoded) of the hours starting at ``starts``, completed for ``clock``."""
    header = tables.HOURLY.csv_header
    for name, get in _local_fields():
        if name in header:
            i = header.index(name)
            for row, v in zip(rows, _values(get, starts, clock), strict=True):
                row[i] = v
    return rows


def csv_lines(texts: list[bytes], starts: list[int], clock: PlantClock) -> bytes:
    """Stored RFC 4180 ``line`` rows of the hours starting at ``starts``, completed for ``clock``:
    joined, split at the markers and joined again with the local values (each a CSV cell)."""
    if not texts:
        return b""
    per_field = [[_csv_cell(v) for v in _values(get, starts, clock)] for name, get in _local_fields()
                 if name in tables.HOURLY.csv_header]  # fmt: skip
    values = per_field[0] if len(per_field) == 1 else [v for row in zip(*per_field, strict=True) for v in row]
    parts = b"".join(texts).split(CSV_MARKER.encode())
    if len(parts) != len(values) + 1:
        raise ValueError(f"{len(parts) - 1} local-time markers in {len(texts)} stored lines")
    filled: list[bytes] = [b""] * (2 * len(parts) - 1)
    filled[0::2] = parts
    filled[1::2] = values
    return b"".join(filled)


def _csv_cell(v: Any) -> bytes:
    if isinstance(v, str) and not any(c in v for c in ',"\r\n'):
        return v.encode()
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([v])
    return buf.getvalue().encode()
