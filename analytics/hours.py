"""Rolling closed minutes into hours (EU ETS MRR Art. 43/44; domain.md § 5 rules 2, 3, 5)."""

from __future__ import annotations

from collections.abc import Iterable

from . import emissions as em
from . import kiln_params as kp
from .aggregates import HourAggregate, MinuteAggregate, ParameterStats

HOUR_NS = 3600 * 1_000_000_000


def combine(stats: Iterable[ParameterStats], expected: int) -> ParameterStats:
    """Stats of a longer period from its sub-periods; ``expected`` counts the whole period."""
    n = 0
    total = 0.0
    lo: float | None = None
    hi: float | None = None
    reasons: dict[str, int] = {}
    for s in stats:
        if s.n_valid and s.mean is not None:
            n += s.n_valid
            total += s.mean * s.n_valid
            lo = s.min if lo is None or (s.min is not None and s.min < lo) else lo
            hi = s.max if hi is None or (s.max is not None and s.max > hi) else hi
        for r, c in s.reasons.items():
            reasons[r] = reasons.get(r, 0) + c
    seen = sum(s.n_expected for s in stats) if isinstance(stats, list) else None
    if seen is not None and seen < expected:
        reasons["missing"] = reasons.get("missing", 0) + (expected - seen)
    return ParameterStats(total / n if n else None, n, expected, lo, hi, reasons)


def hour_from_minutes(
    kiln: str,
    plant: str,
    start_ns: int,
    minutes: list[MinuteAggregate],
    points_per_hour: int,
    valid_fraction: float,
    co2_density: float,
    revision: int = 0,
) -> HourAggregate:
    """One hour from the minutes available for it (absent minutes count as missing points).

    CO2 [t] = hourly mean normal dry flow [Nm3/h] x hourly mean dry CO2 [vol %] x density x 1 h,
    each mean over the valid grid points only; a parameter is valid at >= ``valid_fraction``.
    """
    names: list[str] = []
    for m in minutes:
        names.extend(k for k in m.params if k not in names)
    params = {
        name: combine([m.params[name] for m in minutes if name in m.params], points_per_hour)
        for name in names
    }
    empty = ParameterStats(None, 0, points_per_hour)
    flow = params.get(kp.FLOW_N_DRY, empty)
    co2 = params.get(kp.CO2_DRY, empty)
    cli = params.get(kp.CLINKER_RATE, empty)
    co2_t = None
    if flow.mean is not None and co2.mean is not None:
        co2_t = float(em.co2_mass_flow_t_per_h(flow.mean, co2.mean, co2_density))
    clinker_t = cli.mean
    intensity = None
    if co2_t is not None and clinker_t is not None and clinker_t > 0:
        intensity = float(em.intensity_kg_per_t(co2_t, clinker_t))
    required = (flow, co2, cli)
    completeness = min(p.availability for p in required)
    return HourAggregate(
        kiln=kiln,
        plant=plant,
        start_ns=start_ns,
        co2_t=co2_t,
        clinker_t=clinker_t,
        intensity_kg_per_t=intensity,
        valid=all(p.availability >= valid_fraction for p in required),
        completeness=completeness,
        params=params,
        revision=revision,
    )
