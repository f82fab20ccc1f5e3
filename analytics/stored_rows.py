"""The hourly report rows as a store keeps them beside each hour, and how a report completes them.

A stored row is :func:`analytics.tables.hourly_row` without the ledger (null), written once when the
hour is: ``report`` as JSON text, ``flat`` as the JSON array of its CSV cells. What depends on the
report's time zone (the :class:`~analytics.schema.Local` fields, e.g. ``hour_local``) is stored as a
marker, the string ``"\\u0000<name>"``, and filled in by :func:`fill_json` / :func:`fill_cells` from
the hour's start alone; so a report never decodes the hour's record (decision 0031).
"""

from __future__ import annotations

import zlib
from typing import Any, NamedTuple

import orjson

from . import tables
from .aggregates import HourAggregate
from .plant_time import PlantClock
from .schema import Local

#: Raise when a getter of the hourly schema changes what it writes (field changes are seen anyway).
FORM_VERSION = 1


class HourStart(NamedTuple):
    """What a local field of an hourly row may read: the hour's start."""

    start_ns: int


def _marker(name: str) -> str:
    return "\x00" + name


def _local_fields() -> list[tuple[str, Local]]:
    return [(f.name, f.get) for f in tables.HOURLY.fields if isinstance(f.get, Local)]


def form_id() -> str:
    """What stored rows were made with: the hourly fields and :data:`FORM_VERSION`."""
    names = [f"{f.name}:{f.dtype}:{f.csv}" for f in (*tables.HOURLY.fields, *tables.PARAMETER.fields)]
    return f"{FORM_VERSION}-{zlib.crc32(orjson.dumps(names)):08x}"


def forms(h: HourAggregate) -> tuple[bytes, bytes]:
    """(``report``, ``flat``) of one hour, local fields as markers."""
    row = tables.hourly_row(h, ledger=False)
    for name, _ in _local_fields():
        row[name] = _marker(name)
    report = orjson.dumps(row)
    flat = orjson.dumps([tables.csv_value(row[c]) for c in tables.HOURLY.csv_header])
    return report, flat


class Filler:
    """Completes stored rows for one report's time zone."""

    def __init__(self, clock: PlantClock) -> None:
        self.clock = clock
        local = _local_fields()
        self._json = [(orjson.dumps(_marker(name)), get.read) for name, get in local]
        header = tables.HOURLY.csv_header
        self._cells = [(header.index(name), get.read) for name, get in local if name in header]

    def json(self, text: bytes, start_ns: int) -> bytes:
        for marker, read in self._json:
            text = text.replace(marker, orjson.dumps(read(HourStart(start_ns), self.clock)), 1)
        return text

    def cells(self, cells: list[Any], start_ns: int) -> list[Any]:
        for i, read in self._cells:
            cells[i] = read(HourStart(start_ns), self.clock)
        return cells
