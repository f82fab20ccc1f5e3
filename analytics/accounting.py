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
from .emissions import intensity_kg_per_t
from .gridding import GridSamples, sample_on_grid
from .hour_columns import gc_paused, measured_hours
from .hours import HOUR_NS, hour_from_minutes
from .minute_columns import MinuteColumns
from .minutes import MINUTE_NS, close_minutes, minute_headline
from .overrides import KilnOverrides
from .periods import half_hours_from_minutes
from .rules import KilnRules
from .running_minute import RunningMinute
from .signals import KilnSpec, Quantity, SignalInfo
from .stuck import RunState, detect_stuck
from .substitution import SubstitutionHistory, apply_hour_rules, calculated_co2

#: ``substitution_method`` of an hour that operators marked stopped.
NOT_OPERATING = "not_operating"


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
        #: Operators' stops and manual values; replaced whole (never changed in place), so a
        #: recomputation on another thread sees one consistent set.
        self.overrides = KilnOverrides()

    @property
    def lookback_ns(self) -> int:
        """How far before a recomputed range the stuck check must start [ns] (whole minutes)."""
        if not self.stuck_check.any():
            return 0
        return int(-(-round(self.rules.stuck_s * 1e9) // MINUTE_NS)) * MINUTE_NS

    def _sample(
        self, points: ReadingBatch, start: int, n_points: int, run: RunState
    ) -> tuple[GridSamples, npt.NDArray[np.bool_] | None, npt.NDArray[np.bool_], RunState]:
        """``n_points`` grid points from ``start`` over ``points`` (global signal indexes, any
        order): the samples, where the kiln runs, the stuck points and the stuck check's state after."""
        g = self.grid
        local = np.searchsorted(self.members, points.signal.astype(np.int64)).astype(np.int32)
        samples = sample_on_grid(
            local,
            points.ts,
            points.value,
            points.quality,
            len(self.members),
            start,
            n_points,
            g.step_ns,
            g.max_hold_ns,
        )
        running = self.running(samples)
        stopped = self.overrides.stopped
        if stopped:
            off = stopped.mask(start, samples.value.shape[1], g.step_ns)
            running = ~off if running is None else running & ~off
        stuck, run = detect_stuck(
            samples.value,
            start,
            g.step_ns,
            run,
            round(self.rules.stuck_s * 1e9),
            self.stuck_check,
            np.ones(samples.value.shape[1], dtype=bool) if running is None else running,
        )
        return samples, running, stuck, run

    def minutes(
        self, points: ReadingBatch, start: int, n_minutes: int, run: RunState, revision: int = 0
    ) -> tuple[list[MinuteAggregate], RunState]:
        """Close ``n_minutes`` from ``start`` over ``points`` (global signal indexes, any order)."""
        g = self.grid
        samples, running, stuck, run = self._sample(points, start, n_minutes * g.points_per_minute, run)
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

    def running_minute(
        self, points: ReadingBatch, from_ns: int, minute_ns: int, through_ns: int, run: RunState
    ) -> RunningMinute:
        """The minute from ``minute_ns`` on its grid points up to ``through_ns``, as :meth:`minutes`
        would close them: sampled (and stuck-checked, from ``run``) from ``from_ns``, where closing
        stands; ``run`` is left as it is."""
        step = self.grid.step_ns
        samples, _, stuck, _ = self._sample(points, from_ns, (through_ns - from_ns) // step + 1, run)
        k = (minute_ns - from_ns) // step
        tail = GridSamples(
            samples.value[:, k:], samples.valid[:, k:], samples.quality[:, k:], samples.present[:, k:]
        )
        head = minute_headline(
            self.kiln,
            self.signals,
            tail,
            self.grid.valid_fraction,
            self.grid.co2_density,
            stuck=stuck[:, k:],
            co_counts_as_co2=self.rules.co_counts_as_co2,
        )
        return RunningMinute(
            self.kiln.id,
            self.kiln.plant,
            minute_ns,
            through_ns,
            tail.valid.shape[1],
            head.co2_t_per_h,
            head.clinker_t_per_h,
            head.intensity_kg_per_t,
            head.valid,
        )

    def running(self, samples: GridSamples) -> npt.NDArray[np.bool_] | None:
        """Where the kiln runs: not known to make less clinker than the threshold (unknown = runs)."""
        if self.clinker_row is None:
            return None
        r = self.clinker_row
        with np.errstate(invalid="ignore"):
            stopped = samples.valid[r] & (samples.value[r] < self.rules.running_min_clinker_t_per_h)
        return ~stopped

    def hour(self, hour_start: int, minutes: list[MinuteAggregate], revision: int) -> HourAggregate:
        """The hour from its minutes (in time order), substituted, then recorded in the history.

        The mass balance uses the manual values in force at the hour's start; an hour that operators
        marked stopped for more than ``1 - operating_fraction`` of it is not operating: reported as
        measured (0 t without a measurement), not substituted, and kept out of the history."""
        g = self.grid
        overrides = self.overrides
        rules = overrides.rules_at(self.rules, hour_start)
        operating = overrides.operating_share(hour_start, hour_start + HOUR_NS) >= rules.operating_fraction
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
        if operating:
            apply_hour_rules(hour, self.history, rules, g.co2_density)
        else:
            not_operating(hour, rules)
        self._settle(hour, rules, operating)
        return hour

    def hours(self, columns: MinuteColumns, revisions: Sequence[int]) -> list[HourAggregate]:
        """:meth:`hour` of every hour that has minutes in ``columns``, in time order, in one
        vectorised pass (:mod:`analytics.hour_columns`); ``revisions`` one per such hour. Not for a
        kiln with operators' overrides (:attr:`has_overrides`): those take :meth:`hour`."""
        if self.has_overrides:
            raise ValueError(f"kiln {self.kiln.id} has operators' overrides: hours go one by one")
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
                self._settle(hour, rules)
                continue
            hour.calculated = calculated  # reported = measured: nothing else to apply
            if not usable:
                self._settle(hour, rules)
        return got.hours

    def hour_starts(self, columns: MinuteColumns) -> list[int]:
        """The hours :meth:`hours` gives for ``columns`` [ns]."""
        return np.unique(columns.start_ns // HOUR_NS * HOUR_NS).tolist()

    @property
    def has_overrides(self) -> bool:
        """Operators marked stops or entered manual values: hours need the per-hour path."""
        return bool(self.overrides.stopped) or bool(self.overrides.manual)

    def _settle(self, hour: HourAggregate, rules: KilnRules, operating: bool = True) -> None:
        """The last check of a reported hour, then (when operating) its place in the substitution
        history."""
        if not _usable(hour.co2_t, hour.clinker_t, hour.intensity_kg_per_t):
            # Overflowed means (absurd values within a too wide range): not valid, and not reported as
            # numbers, whichever rule produced them.
            hour.valid = False
            hour.co2_t = _finite(hour.co2_t)
            hour.intensity_kg_per_t = _finite(hour.intensity_kg_per_t)
        if operating:
            self.history.record(hour, rules.hour_valid_fraction)


def _usable(co2: float | None, clinker: float | None, intensity: float | None) -> bool:
    """:func:`analytics.validity.numbers_usable` of one hour's numbers, without arrays."""
    if co2 is None or clinker is None or not (math.isfinite(co2) and math.isfinite(clinker)):
        return False
    return (intensity is not None and math.isfinite(intensity)) or clinker <= 0


def not_operating(hour: HourAggregate, rules: KilnRules) -> HourAggregate:
    """A stopped hour (in place): its measured CO2, or 0 t where nothing valid was measured; no
    substitute, whatever the availability."""
    hour.operating = False
    hour.calculated = calculated_co2(hour.params, rules)
    if hour.co2_t is None:
        hour.co2_t = 0.0
        hour.co2_t_measured = 0.0 if hour.co2_t_measured is None else hour.co2_t_measured
    hour.co2_t_substituted = False
    hour.substitution_method = NOT_OPERATING
    hour.intensity_kg_per_t = None
    if hour.clinker_t is not None and hour.clinker_t > 0:
        hour.intensity_kg_per_t = float(intensity_kg_per_t(hour.co2_t, hour.clinker_t))
    return hour


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None
