"""The signal table as arrays, and the roles a kiln's signals play in the CO2 computation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt


class Quantity(StrEnum):
    FLOW = "flow"
    TEMPERATURE = "temperature"
    STATIC_PRESSURE = "static_pressure"
    BAROMETRIC_PRESSURE = "barometric_pressure"
    ABSOLUTE_PRESSURE = "absolute_pressure"
    H2O = "h2o"
    CO2 = "co2"
    O2 = "o2"
    CO = "co"
    NOX = "nox"
    SO2 = "so2"
    DUST = "dust"
    TOC = "toc"
    CLINKER_RATE = "clinker_rate"
    FUEL_RATE = "fuel_rate"
    STATUS = "status"


#: Quantities of which a kiln has at most one signal: they feed the CO2 mass computation.
SINGLE_ROLE_QUANTITIES: frozenset[Quantity] = frozenset(
    {
        Quantity.FLOW,
        Quantity.TEMPERATURE,
        Quantity.STATIC_PRESSURE,
        Quantity.BAROMETRIC_PRESSURE,
        Quantity.ABSOLUTE_PRESSURE,
        Quantity.H2O,
        Quantity.CO2,
        Quantity.O2,
        Quantity.CO,
        Quantity.CLINKER_RATE,
    }
)


@dataclass(frozen=True, slots=True)
class SignalInfo:
    """One signal, already in its canonical unit (see :mod:`analytics.units`)."""

    id: str
    plant: str
    kiln: str
    quantity: Quantity
    unit: str
    moisture_basis: str | None = None  # "wet" | "dry" for concentrations and flow
    conditions: str | None = None  # "actual" | "standard" for flow
    valid_min: float = -np.inf
    valid_max: float = np.inf


class SignalTable:
    """Signals indexed by position; the ``signal`` column of a ReadingBatch points here."""

    def __init__(self, signals: Sequence[SignalInfo]) -> None:
        self.signals: tuple[SignalInfo, ...] = tuple(signals)
        self._index = {s.id: i for i, s in enumerate(self.signals)}
        if len(self._index) != len(self.signals):
            raise ValueError("signal ids must be unique")
        kilns = sorted({(s.plant, s.kiln) for s in self.signals})
        self.kiln_ids: tuple[str, ...] = tuple(k for _, k in kilns)
        self.valid_min: npt.NDArray[np.float64] = np.array([s.valid_min for s in self.signals], dtype=float)
        self.valid_max: npt.NDArray[np.float64] = np.array([s.valid_max for s in self.signals], dtype=float)

    def __len__(self) -> int:
        return len(self.signals)

    def index(self, signal_id: str) -> int:
        return self._index[signal_id]

    def get(self, signal_id: str) -> int | None:
        return self._index.get(signal_id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.signals)


@dataclass(frozen=True, slots=True)
class KilnSpec:
    """A kiln and the signal index that plays each single role (flow, co2, ...)."""

    id: str
    name: str
    plant: str
    roles: dict[Quantity, int] = field(default_factory=dict)
    signals: tuple[int, ...] = ()

    @classmethod
    def from_table(cls, table: SignalTable, kiln_id: str, name: str, plant: str) -> KilnSpec:
        members = tuple(i for i, s in enumerate(table.signals) if s.kiln == kiln_id)
        roles: dict[Quantity, int] = {}
        for i in members:
            q = table.signals[i].quantity
            if q in SINGLE_ROLE_QUANTITIES:
                if q in roles:
                    raise ValueError(f"kiln {kiln_id} has two {q.value} signals")
                roles[q] = i
        return cls(id=kiln_id, name=name, plant=plant, roles=roles, signals=members)
