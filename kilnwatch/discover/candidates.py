"""A value found on a source, and the kilnwatch quantity proposed for it from its name and unit."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from analytics.signals import Quantity
from analytics.units import conversion

_ID_BAD = re.compile(r"[^A-Za-z0-9_.\-]+")
_KILN_BAD = re.compile(r"[^A-Za-z0-9_\-]+")
_KILN_NAME = re.compile(r"^(kiln|line|ofen|horno|four)[-_ ]?\d+[a-z]?$", re.IGNORECASE)

#: (quantity, name tokens that suggest it, tokens that must also appear, if any), first match wins:
#: the analyser components before the generic names that also contain them.
_RULES: tuple[tuple[Quantity, frozenset[str], frozenset[str]], ...] = (
    (Quantity.CO2, frozenset({"co2"}), frozenset()),
    (Quantity.O2, frozenset({"o2", "oxygen"}), frozenset()),
    (Quantity.H2O, frozenset({"h2o", "moisture", "humidity"}), frozenset()),
    (Quantity.CO, frozenset({"co"}), frozenset()),
    (Quantity.NOX, frozenset({"nox"}), frozenset()),
    (Quantity.SO2, frozenset({"so2"}), frozenset()),
    (Quantity.DUST, frozenset({"dust", "particulate", "particulates", "pm"}), frozenset()),
    (Quantity.TOC, frozenset({"toc", "voc"}), frozenset()),
    (Quantity.CLINKER_RATE, frozenset({"clinker"}), frozenset()),
    (Quantity.FUEL_RATE, frozenset({"fuel", "coal", "petcoke", "lignite"}), frozenset()),
    (Quantity.BAROMETRIC_PRESSURE, frozenset({"barometric", "baro", "ambient", "atmospheric"}), frozenset()),
    (Quantity.ABSOLUTE_PRESSURE, frozenset({"absolute", "abs"}), frozenset({"pressure", "press", "p"})),
    (Quantity.STATIC_PRESSURE, frozenset({"static", "pressure", "press"}), frozenset()),
    (Quantity.TEMPERATURE, frozenset({"temperature", "temp", "t"}), frozenset()),
    (Quantity.FLOW, frozenset({"flow", "volume", "flowrate"}), frozenset()),
)

#: Moisture basis proposed with each quantity, written out even where the plant file has the same default.
_BASIS: dict[Quantity, str] = {
    Quantity.FLOW: "wet",
    Quantity.CO2: "dry",
    Quantity.O2: "dry",
    Quantity.H2O: "wet",
    Quantity.CO: "dry",
    Quantity.NOX: "dry",
    Quantity.SO2: "dry",
    Quantity.DUST: "dry",
    Quantity.TOC: "dry",
}


@dataclass
class Candidate:
    """One numeric value a source offers, as a plant-file signal to be."""

    kiln: str
    signal_id: str
    name: str
    """What the source calls it (browse path, JSON path), for the review comments."""
    source: dict[str, Any]
    """The signal's ``source`` entry in the plant file."""
    unit: str | None = None
    """kilnwatch's spelling of the source's unit; None when it gave none or one kilnwatch does not know."""
    unit_said: str = ""
    """The unit as the source gave it (display name, UNECE code), for the comments."""
    range: tuple[float, float] | None = None
    quantity: Quantity | None = None
    basis: str | None = None
    why: str = ""
    """Why this quantity was proposed, or why none was."""
    notes: list[str] = field(default_factory=list)


def tokens(name: str) -> list[str]:
    """Lower-case words of a name: ``Stack.CO2_dry`` -> ['stack', 'co2', 'dry']."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    return [t for t in re.split(r"[^0-9a-z]+", spaced.lower()) if t]


def _fits(quantity: Quantity, unit: str) -> bool:
    try:
        conversion(quantity, unit)
    except ValueError:
        return False
    return True


def propose(c: Candidate) -> Candidate:
    """Fill in ``quantity``, ``basis`` and ``why``: the first rule whose name tokens the candidate's
    name has and whose quantity accepts its unit. Without a known unit nothing is proposed: a
    quantity without a unit would be read in the wrong scale."""
    words = set(tokens(c.name))
    if c.unit is None:
        c.why = (
            f"no quantity proposed: unit {c.unit_said!r} unknown to kilnwatch"
            if c.unit_said
            else ("no quantity proposed: the source gives no unit")
        )
        return c
    for quantity, names, also in _RULES:
        if words & names and (not also or words & also) and _fits(quantity, c.unit):
            c.quantity = quantity
            c.basis = _BASIS.get(quantity)
            c.why = f"proposed from name {c.name!r} and unit {c.unit_said or c.unit!r}"
            return c
    c.why = f"no quantity proposed: no kilnwatch quantity matches name {c.name!r} with unit {c.unit!r}"
    return c


def signal_id(*parts: str) -> str:
    """A plant-file signal id from path parts (characters the plant file rejects become '_')."""
    return ".".join(p for p in (_ID_BAD.sub("_", part).strip("_") for part in parts) if p)


def kiln_id(name: str) -> str:
    """A plant-file kiln id from a name (characters the plant file rejects become '_')."""
    return _KILN_BAD.sub("_", name).strip("_") or "kiln1"


def looks_like_kiln(name: str) -> bool:
    """A browse name or topic level that names a kiln: ``kiln1``, ``Kiln_2``, ``line3``."""
    return bool(_KILN_NAME.match(name))


def split_kiln(path: tuple[str, ...], default: str) -> tuple[str, tuple[str, ...]]:
    """(kiln, the rest of the path): the first element that looks like a kiln, else the first
    of a longer path, else ``default``."""
    for i, part in enumerate(path[:-1]):
        if looks_like_kiln(part):
            return part, path[i + 1 :]
    return (path[0], path[1:]) if len(path) > 1 else (default, path)
