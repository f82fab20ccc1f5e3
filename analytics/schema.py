"""Row schemas: every field of a report row declared once, with its type, unit and description.

A :class:`Schema` is an ordered tuple of :class:`Field`. The order is the CSV column order and the
JSON key order; fields with ``csv=False`` (nested parts) are JSON only. Each field also says how
its value is read from the record a row is made of (an hour, a day, ...), so one declaration gives
the row itself (:meth:`Schema.row`), the CSV header (:attr:`Schema.csv_header`) and, in ``api``, the
response model with the units and descriptions in the OpenAPI docs. Plain Python, no pydantic.

Local dates and times depend on the report's time zone as well as on the record: their getter is a
:class:`Local`, given the record and the :class:`~analytics.plant_time.PlantClock` of the report.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .plant_time import PlantClock

#: The report's time zone when none is asked for.
UTC_CLOCK = PlantClock()


def num(x: float | None, digits: int | None = None) -> float | None:
    """A finite float (rounded to ``digits`` when given), else None: JSON has no NaN."""
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), digits) if digits is not None else float(x)


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a row.

    ``dtype`` is written as a type: ``float``, ``int``, ``bool``, ``str``, ``list[str]``,
    ``dict[str, Any]``, ``X | None`` when the value may be null, or :class:`Nested` (a mapping of
    names to rows of another schema, e.g. one per signal). ``get`` reads the value from the
    record; by default the record's attribute ``name`` (floats through :func:`num`, so a value that
    is not a number is null); a :class:`Local` getter also reads the report's time zone.
    """

    name: str
    dtype: Any
    unit: str = ""
    description: str = ""
    get: Callable[[Any], Any] | Local | None = None
    csv: bool = True


@dataclass(frozen=True, slots=True)
class Local:
    """The getter of a local date or time: ``read(record, clock)``, ``clock`` being the time zone
    the report is asked in."""

    read: Callable[[Any, PlantClock], Any]
    #: The values for many records at once from their starts [ns] (``analytics.stored_rows``), when
    #: the value depends on the record's start alone; None: ``read`` row by row.
    of_starts: Callable[[list[int], PlantClock], list[Any]] | None = None


@dataclass(frozen=True)
class Schema:
    """The fields of one row kind, in CSV/JSON order."""

    fields: tuple[Field, ...]
    _getters: tuple[tuple[str, Callable[..., Any], bool], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"a field is declared twice: {names}")
        getters = tuple((f.name, *_getter(f)) for f in self.fields)
        object.__setattr__(self, "_getters", getters)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def csv_header(self) -> list[str]:
        """The CSV columns, in order."""
        return [f.name for f in self.fields if f.csv]

    def row(self, record: Any, clock: PlantClock = UTC_CLOCK) -> dict[str, Any]:
        """The row of ``record`` as plain JSON-ready data, keys in schema order; local dates and
        times in ``clock``'s time zone."""
        return {name: get(record, clock) if local else get(record) for name, get, local in self._getters}


@dataclass(frozen=True, slots=True)
class Nested:
    """A JSON object of names (signals, parameters) to rows of ``schema``; null if ``nullable``.
    With ``single``, one row of ``schema`` itself (e.g. the running minute of ``/live``)."""

    schema: Schema
    nullable: bool = False
    single: bool = False


_FLOATS = (float, float | None)


def _getter(f: Field) -> tuple[Callable[..., Any], bool]:
    """The field's getter, and whether it takes the clock too."""
    if isinstance(f.get, Local):
        return f.get.read, True
    if f.get is not None:
        return f.get, False
    attr = operator.attrgetter(f.name)
    if f.dtype in _FLOATS:
        return (lambda record: num(attr(record))), False
    return attr, False
