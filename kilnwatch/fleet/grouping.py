"""Which kiln belongs to which plant and company: read from the plants' own plant files."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..config import PlantFile


@dataclass(frozen=True, order=True)
class KilnRef:
    company: str
    plant: str
    kiln: str


@dataclass(frozen=True)
class Grouping:
    """The fleet's kilns (each once) and each plant's time zone (its months and years)."""

    kilns: tuple[KilnRef, ...]
    timezones: dict[str, str]

    @classmethod
    def from_plant_files(cls, plant_files: Iterable[PlantFile]) -> Grouping:
        """ValueError when two files name the same plant, or one plant the same kiln twice."""
        kilns: list[KilnRef] = []
        zones: dict[str, str] = {}
        for pf in plant_files:
            for p in pf.plants:
                if p.id in zones:
                    raise ValueError(f"plant {p.id!r} is in two plant files")
                zones[p.id] = p.timezone
                kilns += [KilnRef(p.company or "", p.id, k.id) for k in p.kilns]
        return cls(tuple(kilns), zones)
