"""Rolling closed minutes into hours (EU ETS MRR Art. 43/44; docs/method.md § 7, § 8, § 12).

This gives the *measured* hour: each parameter's mean over its valid points and its availability.
Substitution of invalid hours and the reporting convention are applied by
:func:`analytics.substitution.apply_hour_rules`, which needs the reporting period's history.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import kiln_params as kp
from .aggregates import HourAggregate, MinuteAggregate, ParameterStats
from .conventions import hour_mass
from .emissions import intensity_kg_per_t
from .ledger import LEDGER_REASONS
from .us_units import ReportingConvention
from .validity import numbers_usable

HOUR_NS = 3600 * 1_000_000_000
_MISSING = LEDGER_REASONS[0]


def combine(stats: Sequence[ParameterStats], expected: int) -> ParameterStats:
    """Stats of a longer period from its sub-periods; ``expected`` counts the whole period.

    Points of sub-periods that are absent count as missing (and not received).
    """
    n = 0
    total = 0.0
    lo: float | None = None
    hi: float | None = None
    reasons: dict[str, int] = {}
    received: int | None = None
    seen = 0
    for s in stats:
        seen += s.n_expected
        if s.n_valid and s.mean is not None:
            n += s.n_valid
            total += s.mean * s.n_valid
            if s.min is not None and (lo is None or s.min < lo):
                lo = s.min
            if s.max is not None and (hi is None or s.max > hi):
                hi = s.max
        for r, c in s.reasons.items():
            reasons[r] = reasons.get(r, 0) + c
        if s.n_received is not None:
            received = (received or 0) + s.n_received
    if seen < expected:
        reasons[_MISSING] = reasons.get(_MISSING, 0) + (expected - seen)
    return ParameterStats(total / n if n else None, n, expected, lo, hi, reasons, received)


def hour_from_minutes(
    kiln: str,
    plant: str,
    start_ns: int,
    minutes: list[MinuteAggregate],
    points_per_hour: int,
    valid_fraction: float,
    co2_density: float,
    revision: int = 0,
    *,
    convention: ReportingConvention = ReportingConvention.EU_MRR,
) -> HourAggregate:
    """One measured hour from the minutes available for it (absent minutes count as missing points).

    CO2 [t] = hourly mean normal dry flow [Nm3/h] x hourly mean dry CO2 [vol %] x density x 1 h, each
    mean over the valid grid points only (+ CO as CO2 under eu_mrr); a parameter is valid at
    >= ``valid_fraction``. ``co2_t`` here is the measured (pro-rata) value, before substitution.
    """
    names: list[str] = []
    seen: set[str] = set()
    for m in minutes:
        for k in m.params:
            if k not in seen:
                seen.add(k)
                names.append(k)
    params = {
        name: combine([m.params[name] for m in minutes if name in m.params], points_per_hour)
        for name in names
    }
    empty = ParameterStats(None, 0, points_per_hour)
    flow = params.setdefault(kp.FLOW_N_DRY, empty)
    co2 = params.setdefault(kp.CO2_DRY, ParameterStats(None, 0, points_per_hour))
    cli = params.setdefault(kp.CLINKER_RATE, ParameterStats(None, 0, points_per_hour))
    co = params.get(kp.CO_DRY)
    mass = hour_mass(flow.mean, co2.mean, None if co is None else co.mean, convention, co2_density)
    clinker_t = cli.mean
    intensity = None
    if mass.co2_t is not None and clinker_t is not None and clinker_t > 0:
        with np.errstate(over="ignore", invalid="ignore"):
            intensity = float(intensity_kg_per_t(mass.co2_t, clinker_t))
    required = (flow, co2, cli)
    running = [m.n_running for m in minutes if m.n_running is not None]
    return HourAggregate(
        kiln=kiln,
        plant=plant,
        start_ns=start_ns,
        co2_t=mass.co2_t,
        clinker_t=clinker_t,
        intensity_kg_per_t=intensity,
        valid=all(p.availability >= valid_fraction for p in required)
        and bool(numbers_usable(mass.co2_t, clinker_t, intensity)),
        completeness=min(p.availability for p in required),
        params=params,
        revision=revision,
        co_as_co2_t=mass.co_as_co2_t,
        co2_t_measured=_co2_part(mass.co2_t, mass.co_as_co2_t, convention),
        convention=convention.value,
        co2_short_tons=mass.short_tons,
        running_fraction=sum(running) / (len(running) * (points_per_hour // 60)) if running else None,
    )


def _co2_part(co2_t: float | None, co_t: float | None, convention: ReportingConvention) -> float | None:
    """The part of the hour's CO2 [t] measured as CO2 (without CO counted as CO2)."""
    if co2_t is None or co_t is None or convention is not ReportingConvention.EU_MRR:
        return co2_t
    return co2_t - co_t
