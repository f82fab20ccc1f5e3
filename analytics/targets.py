"""Reduction targets: a baseline and milestones make a trajectory; a period's KPI is on or off it.

Milestones are given as a value or as a reduction in % of the baseline (100 % = net zero). Between
the baseline and the milestones the trajectory is ``linear`` (interpolated year by year) or
``stepwise`` (each milestone's value holds from its year on, the baseline before the first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

Shape = Literal["linear", "stepwise"]


class Milestone(NamedTuple):
    year: int
    value: float | None = None  # the KPI's value in that year, or
    reduction_pct: float | None = None  # a reduction from the baseline [%]


@dataclass(frozen=True, slots=True)
class Trajectory:
    kpi: str
    baseline_year: int
    baseline_value: float
    years: tuple[int, ...]  # milestone years, ascending
    values: tuple[float, ...]
    shape: Shape = "linear"

    @property
    def final_year(self) -> int:
        return self.years[-1]

    @property
    def final_value(self) -> float:
        return self.values[-1]

    def value_at(self, year: float) -> float:
        """The trajectory's value in ``year``: the baseline up to its year, the last milestone after."""
        xs = np.array([self.baseline_year, *self.years], dtype=float)
        ys = np.array([self.baseline_value, *self.values], dtype=float)
        if self.shape == "stepwise":
            return float(ys[np.searchsorted(xs, year, side="right") - 1]) if year >= xs[0] else float(ys[0])
        return float(np.interp(year, xs, ys))


def trajectory(
    kpi: str,
    baseline_year: int,
    baseline_value: float,
    milestones: Sequence[Milestone],
    shape: Shape = "linear",
) -> Trajectory:
    """Milestones (by year) resolved against the baseline: a reduction of p % is baseline x (1 - p/100)."""
    ms = sorted(milestones, key=lambda m: m.year)
    values = tuple(
        float(m.value)
        if m.value is not None
        else baseline_value * (1.0 - float(m.reduction_pct or 0.0) / 100.0)
        for m in ms
    )
    return Trajectory(kpi, baseline_year, baseline_value, tuple(m.year for m in ms), values, shape)


class Assessment(NamedTuple):
    target: float
    on_track: bool | None  # None without an actual value
    gap: float | None  # actual - target
    reduction_per_year: float | None  # [KPI unit / year] still needed to reach the final value
    reduction_pct_per_year: float | None  # the same in % of the actual value


def assess(t: Trajectory, year: int, actual: float | None) -> Assessment:
    """Actual against the trajectory in ``year``, and the linear reduction per year still needed from
    ``actual`` to the last milestone (0 when already at or below it; the whole gap in the last year)."""
    target = t.value_at(year)
    if actual is None:
        return Assessment(target, None, None, None, None)
    left = max(t.final_year - year, 1)
    per_year = max(actual - t.final_value, 0.0) / left
    pct = per_year / actual * 100.0 if actual > 0 else None
    return Assessment(target, actual <= target, actual - target, per_year, pct)


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """A target as configured: the baseline value may still have to come from the store."""

    kpi: str
    baseline_year: int
    baseline_value: float | None
    milestones: tuple[Milestone, ...]
    shape: Shape = "linear"

    def trajectory(self, baseline_value: float | None = None) -> Trajectory | None:
        """The trajectory with the configured baseline value, else ``baseline_value``; None without one."""
        value = self.baseline_value if self.baseline_value is not None else baseline_value
        if value is None:
            return None
        return trajectory(self.kpi, self.baseline_year, value, self.milestones, self.shape)
