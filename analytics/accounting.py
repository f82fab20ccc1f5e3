"""One kiln's accounting rules as the engine applies them (:class:`~analytics.rules.KilnRules`).

Minutes: readings sampled on the grid, the stuck-value check (carried from block to block by a
:class:`~analytics.stuck.RunState`), the kiln-running mask, the completeness ledger and the derived
parameters. Hours: the measured hour, its IED half-hours, then substitution from the reporting
period's history and the reporting convention.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import kiln_params as kp
from .aggregates import HourAggregate, MinuteAggregate
from .batch import ReadingBatch
from .gridding import GridSamples, sample_on_grid
from .hour_columns import gc_paused, measured_hours
from .hours import HOUR_NS, hour_from_minutes
from .minute_columns import MinuteColumns
from .minutes import MINUTE_NS, close_minutes
from .periods import half_hours_from_minutes
from .rules import KilnRules
from .signals import KilnSpec, Quantity, SignalInfo
from .stuck import RunState, detect_stuck
from .substitution import SubstitutionHistory, apply_hour_rules


@dataclass(frozen=True, slots=True)
class Grid:
    """The sampling grid and the engine-wide averaging settings."""

    step_ns: int
    max_hold_ns: int
    valid_fraction: float
    co2_density: float

    @property
    def points_per_minute(self) -> int:
        return MINUTE_NS // self.step_ns


class KilnAccounting:
    def __init__(self, kiln: KilnSpec, signals: Sequence[SignalInfo], rules: KilnRules, grid: Grid) -> None:
        self.kiln = kiln
        self.signals = signals
        self.rules = rules
        self.grid = grid
        self.members = np.array(kiln.signals, dtype=np.int64)
        self.stuck_check = np.array([g in rules.stuck_signals for g in kiln.signals], dtype=bool)
        clinker = kiln.roles.get(Quantity.CLINKER_RATE)
        self.clinker_row = None if clinker is None else kiln.signals.index(clinker)
        self.pollutants = tuple(kp.pollutant_signals(kiln, signals)) if Quantity.O2 in kiln.roles else ()
        self.history = SubstitutionHistory(rules.year_starts_ns)

    @property
    def lookback_ns(self) -> int:
        """How far before a recomputed range the stuck check must start [ns] (whole minutes)."""
        if not self.stuck_check.any():
            return 0
        return int(-(-round(self.rules.stuck_s * 1e9) // MINUTE_NS)) * MINUTE_NS

    def minutes(
        self, points: ReadingBatch, start: int, n_minutes: int, run: RunState, revision: int = 0
    ) -> tuple[list[MinuteAggregate], RunState]:
        """Close ``n_minutes`` from ``start`` over ``points`` (global signal indexes, any order)."""
        g = self.grid
        local = np.searchsorted(self.members, points.signal.astype(np.int64)).astype(np.int32)
        samples = sample_on_grid(
            local,
            points.ts,
            points.value,
            points.quality,
            len(self.members),
            start,
            n_minutes * g.points_per_minute,
            g.step_ns,
            g.max_hold_ns,
        )
        running = self.running(samples)
        stuck, run = detect_stuck(
            samples.value,
            start,
            g.step_ns,
            run,
            round(self.rules.stuck_s * 1e9),
            self.stuck_check,
            np.ones(samples.value.shape[1], dtype=bool) if running is None else running,
        )
        minutes = close_minutes(
            self.kiln,
            self.signals,
            samples,
            start,
            n_minutes,
            g.valid_fraction,
            g.co2_density,
            revision,
            stuck=stuck,
            running=running,
            reference_o2_pct=self.rules.reference_o2_pct if self.pollutants else None,
            co_counts_as_co2=self.rules.co_counts_as_co2,
        )
        return minutes, run

    def running(self, samples: GridSamples) -> npt.NDArray[np.bool_] | None:
        """Where the kiln runs: not known to make less clinker than the threshold (unknown = runs)."""
        if self.clinker_row is None:
            return None
        r = self.clinker_row
        with np.errstate(invalid="ignore"):
            stopped = samples.valid[r] & (samples.value[r] < self.rules.running_min_clinker_t_per_h)
        return ~stopped

    def hour(self, hour_start: int, minutes: list[MinuteAggregate], revision: int) -> HourAggregate:
        """The hour from its minutes (in time order), substituted, then recorded in the history."""
        g, rules = self.grid, self.rules
        hour = hour_from_minutes(
            self.kiln.id,
            self.kiln.plant,
            hour_start,
            minutes,
            g.points_per_minute * 60,
            rules.hour_valid_fraction,
            g.co2_density,
            revision,
            convention=rules.convention,
        )
        hour.half_hours = half_hours_from_minutes(
            minutes, hour_start, self.pollutants, rules, g.points_per_minute
        )
        apply_hour_rules(hour, self.history, rules, g.co2_density)
        self._settle(hour)
        return hour

    def hours(self, columns: MinuteColumns, revisions: Sequence[int]) -> list[HourAggregate]:
        """:meth:`hour` of every hour that has minutes in ``columns``, in time order, in one
        vectorised pass (:mod:`analytics.hour_columns`); ``revisions`` one per such hour."""
        with gc_paused():
            return self._hours(columns, revisions)

    def _hours(self, columns: MinuteColumns, revisions: Sequence[int]) -> list[HourAggregate]:
        g, rules = self.grid, self.rules
        got = measured_hours(
            self.kiln.id,
            self.kiln.plant,
            columns,
            revisions,
            g.points_per_minute,
            g.co2_density,
            rules,
            self.pollutants,
        )
        for hour in got.hours:
            # The history takes measured means only, so every hour can go in first: a substitute
            # looks only at the hours before its own, which then hold what they held hour by hour.
            self.history.record(hour, rules.hour_valid_fraction)
        for hour, needs_rules, calculated, usable in zip(
            got.hours, got.needs_rules, got.calculated, got.usable, strict=True
        ):
            if needs_rules:
                apply_hour_rules(hour, self.history, rules, g.co2_density)
                self._settle(hour)
                continue
            hour.calculated = calculated  # reported = measured: nothing else to apply
            if not usable:
                self._settle(hour)
        return got.hours

    def hour_starts(self, columns: MinuteColumns) -> list[int]:
        """The hours :meth:`hours` gives for ``columns`` [ns]."""
        return np.unique(columns.start_ns // HOUR_NS * HOUR_NS).tolist()

    def _settle(self, hour: HourAggregate) -> None:
        """The last check of a reported hour, then its place in the substitution history."""
        rules = self.rules
        if not _usable(hour.co2_t, hour.clinker_t, hour.intensity_kg_per_t):
            # Overflowed means (absurd values within a too wide range): not valid, and not reported as
            # numbers, whichever rule produced them.
            hour.valid = False
            hour.co2_t = _finite(hour.co2_t)
            hour.intensity_kg_per_t = _finite(hour.intensity_kg_per_t)
        self.history.record(hour, rules.hour_valid_fraction)


def _usable(co2: float | None, clinker: float | None, intensity: float | None) -> bool:
    """:func:`analytics.validity.numbers_usable` of one hour's numbers, without arrays."""
    if co2 is None or clinker is None or not (math.isfinite(co2) and math.isfinite(clinker)):
        return False
    return (intensity is not None and math.isfinite(intensity)) or clinker <= 0


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None
