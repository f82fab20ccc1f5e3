"""Aggregate records the engine produces: closed minutes and hours per kiln."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class ParameterStats:
    """One parameter over one period, on the sampling grid."""

    mean: float | None  # mean of the valid grid points, None when none is valid
    n_valid: int
    n_expected: int
    min: float | None = None
    max: float | None = None
    reasons: dict[str, int] = field(default_factory=dict)  # invalid grid points by reason

    @property
    def availability(self) -> float:
        return self.n_valid / self.n_expected if self.n_expected else 0.0


@dataclass(slots=True)
class MinuteAggregate:
    kiln: str
    plant: str
    start_ns: int
    co2_t_per_h: float | None
    clinker_t_per_h: float | None
    intensity_kg_per_t: float | None
    valid: bool
    params: dict[str, ParameterStats]
    revision: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class HourAggregate:
    kiln: str
    plant: str
    start_ns: int
    co2_t: float | None
    clinker_t: float | None
    intensity_kg_per_t: float | None
    valid: bool
    completeness: float
    params: dict[str, ParameterStats]
    revision: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parameter_stats_from_dict(d: dict[str, Any]) -> ParameterStats:
    return ParameterStats(**d)


def minute_from_dict(d: dict[str, Any]) -> MinuteAggregate:
    params = {k: parameter_stats_from_dict(v) for k, v in d.pop("params").items()}
    return MinuteAggregate(params=params, **d)


def hour_from_dict(d: dict[str, Any]) -> HourAggregate:
    params = {k: parameter_stats_from_dict(v) for k, v in d.pop("params").items()}
    return HourAggregate(params=params, **d)
