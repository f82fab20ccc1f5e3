"""IED half-hours and days of the pollutants, from minute aggregates (docs/method.md § 10; WE9).

value at the reference O2, dry, per grid point (:mod:`analytics.kiln_params`) -> half-hour mean over
the valid points, valid at >= the half-hour availability (default 2/3, [assumption]) -> minus the
confidence interval (CI fraction x daily ELV) -> validated half-hour -> daily mean of the validated
half-hours within effective operating time, valid with at most 5 discarded -> compared with the ELV.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from . import pollutants as pol
from .aggregates import HalfHourAggregate, MinuteAggregate, PollutantHalfHour
from .hours import combine
from .kiln_params import ref_name
from .minutes import MINUTE_NS
from .rules import KilnRules

HALF_HOUR_NS = 30 * MINUTE_NS
DAY_NS = 24 * 3600 * 1_000_000_000
HALF_HOURS_PER_DAY = 48


def half_hours_from_minutes(
    minutes: Sequence[MinuteAggregate],
    hour_start_ns: int,
    pollutants: Iterable[str],
    rules: KilnRules,
    points_per_minute: int,
) -> list[HalfHourAggregate]:
    """The two half-hours of the hour from ``hour_start_ns``; absent minutes count as missing points."""
    names = list(pollutants)
    expected = 30 * points_per_minute
    out = []
    for start in (hour_start_ns, hour_start_ns + HALF_HOUR_NS):
        inside = [m for m in minutes if start <= m.start_ns < start + HALF_HOUR_NS]
        running = [m.n_running for m in inside if m.n_running is not None]
        # over the minutes seen: time without data says nothing about the kiln (unknown = runs)
        fraction = sum(running) / (len(running) * points_per_minute) if running else None
        operating = fraction is None or fraction >= rules.operating_fraction
        half = HalfHourAggregate(start, operating, fraction)
        for name in names:
            key = ref_name(name)
            stats = combine([m.params[key] for m in inside if key in m.params], expected)
            rule = rules.pollutant(name)
            valid = stats.mean is not None and stats.availability >= rules.half_hour_valid_fraction
            ci = rule.ci_mg_per_nm3
            validated = None
            if valid and ci is not None and stats.mean is not None:
                validated = float(pol.validated_value(stats.mean, ci))
            above = bool(pol.exceeds_elv(_nan(validated), _nan(rule.elv_mg_per_nm3)))
            half.pollutants[name] = PollutantHalfHour(
                stats.mean, stats.n_valid, expected, valid, ci, validated, rule.elv_mg_per_nm3, above
            )
        out.append(half)
    return out


@dataclass(slots=True)
class DailyPollutant:
    """One pollutant over one day (IED Annex VI Part 8) [mg/Nm3 at the reference O2, dry]."""

    day_start_ns: int
    day_end_ns: int  # a local day: 23, 24 or 25 h (analytics.plant_time)
    pollutant: str
    mean_ref: float | None  # mean of the valid half-hour means, before the CI is subtracted
    validated: float | None  # mean of the validated half-hours: the value compared with the ELV
    n_valid: int
    n_discarded: int  # in operating time but not valid (malfunction, maintenance, missing)
    n_not_operating: int
    n_pending: int  # half-hours not closed yet
    n_half_hours: int  # in the day: 46, 48 or 50
    valid: bool
    elv: float | None
    exceedance: bool
    complete: bool
    revision: int  # sum of the revisions of the hours the day is built from


def daily_pollutants(
    day_start_ns: int,
    half_hours: Sequence[tuple[HalfHourAggregate, int]],
    closed_until_ns: int,
    max_discarded: int = pol.MAX_DISCARDED_HALF_HOURS_PER_DAY,
    day_end_ns: int | None = None,
) -> list[DailyPollutant]:
    """Daily values per pollutant from the day's half-hours, each with its hour's revision.

    The day is [day_start_ns, day_end_ns) (default 24 h): a local day with a clock change has 46 or 50
    half-hours, and every one of them counts for the validity rule.

    A half-hour slot without a record counts as discarded if it ended by ``closed_until_ns`` (no data),
    else as pending. A day is valid with at most ``max_discarded`` discarded half-hours and at least one
    valid one; a complete day has no pending half-hour.
    """
    end = day_start_ns + DAY_NS if day_end_ns is None else day_end_ns
    n = (end - day_start_ns) // HALF_HOUR_NS
    slot_start = day_start_ns + np.arange(n, dtype=np.int64) * HALF_HOUR_NS
    pending = slot_start + HALF_HOUR_NS > closed_until_ns
    by_slot: dict[int, tuple[HalfHourAggregate, int]] = {}
    for h, rev in half_hours:
        i = (h.start_ns - day_start_ns) // HALF_HOUR_NS
        if 0 <= i < n:
            by_slot[int(i)] = (h, rev)
    names = sorted({p for h, _ in by_slot.values() for p in h.pollutants})
    revision = sum({h.start_ns // (2 * HALF_HOUR_NS): rev for h, rev in by_slot.values()}.values())
    operating = np.ones(n, dtype=bool)
    for i, (h, _) in by_slot.items():
        operating[i] = h.operating
    operating &= ~pending
    out = []
    for name in names:
        validated = np.full(n, np.nan)
        means = np.full(n, np.nan)
        valid = np.zeros(n, dtype=bool)
        elv = None
        for i, (h, _) in by_slot.items():
            p = h.pollutants.get(name)
            if p is None:
                continue
            valid[i] = p.valid
            means[i] = np.nan if p.mean_ref is None else p.mean_ref
            validated[i] = np.nan if p.validated is None else p.validated
            elv = p.elv if p.elv is not None else elv
        raw = pol.daily_mean(means, valid, operating, max_discarded)
        value = None
        if elv is not None:
            day = pol.daily_mean(validated, valid, operating, max_discarded)
            value = float(day.mean) if np.isfinite(day.mean) else None
        exceed = bool(pol.exceeds_elv(_nan(value), _nan(elv), raw.valid))
        out.append(
            DailyPollutant(
                day_start_ns=day_start_ns,
                day_end_ns=end,
                pollutant=name,
                mean_ref=float(raw.mean) if np.isfinite(raw.mean) else None,
                validated=value,
                n_valid=int(raw.n_valid),
                n_discarded=int(raw.n_discarded),
                n_not_operating=int((~operating & ~pending).sum()),
                n_pending=int(pending.sum()),
                n_half_hours=int(n),
                valid=bool(raw.valid),
                elv=elv,
                exceedance=exceed,
                complete=not bool(pending.any()),
                revision=revision,
            )
        )
    return out


def _nan(x: float | None) -> float:
    return np.nan if x is None else x
