"""The engine's settings and its output (:mod:`analytics.engine`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .accounting import Grid
from .aggregates import HourAggregate, MinuteAggregate
from .batch import NS_PER_S
from .emissions import CO2_DENSITY_KG_PER_NM3
from .minutes import MINUTE_NS
from .rules import KilnRules


@dataclass(frozen=True, slots=True)
class EngineParams:
    grid_s: float = 1.0
    max_hold_s: float = 60.0
    lateness_s: float = 10.0
    valid_fraction: float = 0.8
    co2_density_kg_per_nm3: float = CO2_DENSITY_KG_PER_NM3
    #: Closed minutes held in memory per kiln (the trend); the newest ``full_minutes`` of them
    #: with every parameter's statistics: late data within those rebuilds its hours from memory
    #: alone, older hours need the ledger's minutes (``recompute(..., stored_minutes)``).
    keep_minutes: int = 360
    full_minutes: int = 60
    idle_after_s: float = 10.0
    #: A kiln with no active signal closes a minute by the wall clock once it is this long past
    #: the minute's end plus ``lateness_s``.
    silent_grace_s: float = 120.0
    #: Most minutes one :meth:`EmissionsEngine.advance` closes, all kilns together.
    max_minutes_per_pass: int = 60
    #: Accounting rules by kiln id; a kiln not named gets ``KilnRules()``.
    rules: Mapping[str, KilnRules] = field(default_factory=dict)

    @property
    def step_ns(self) -> int:
        return round(self.grid_s * NS_PER_S)

    @property
    def points_per_minute(self) -> int:
        return MINUTE_NS // self.step_ns

    @property
    def grid(self) -> Grid:
        return Grid(
            self.step_ns, round(self.max_hold_s * NS_PER_S), self.valid_fraction, self.co2_density_kg_per_nm3
        )


@dataclass(slots=True)
class EngineOutput:
    minutes: list[MinuteAggregate] = field(default_factory=list)
    hours: list[HourAggregate] = field(default_factory=list)
    #: advance() stopped at its budget: more minutes are due, call it again.
    more: bool = False

    def extend(self, other: EngineOutput) -> None:
        self.minutes.extend(other.minutes)
        self.hours.extend(other.hours)
        self.more |= other.more
