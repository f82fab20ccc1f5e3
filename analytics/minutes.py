"""Closing minutes: grid samples of one kiln become minute aggregates (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from . import emissions as em
from . import kiln_params as kp
from .aggregates import MinuteAggregate, ParameterStats
from .gridding import REASONS, GridSamples, reason_counts
from .signals import KilnSpec, SignalInfo

MINUTE_NS = 60 * 1_000_000_000


def _period_stats(
    values: npt.NDArray[np.float64], valid: npt.NDArray[np.bool_], periods: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    v = values.reshape(periods, -1)
    ok = valid.reshape(periods, -1)
    n = ok.sum(axis=1)
    total = np.where(ok, v, 0.0).sum(axis=1)
    lo = np.where(ok, v, np.inf).min(axis=1)
    hi = np.where(ok, v, -np.inf).max(axis=1)
    return n, total, lo, hi


def _stats(
    n: int, total: float, lo: float, hi: float, expected: int, reasons: dict[str, int]
) -> ParameterStats:
    if n == 0:
        return ParameterStats(None, 0, expected, None, None, reasons)
    return ParameterStats(total / n, n, expected, lo, hi, reasons)


def close_minutes(
    kiln: KilnSpec,
    signals: Sequence[SignalInfo],
    samples: GridSamples,
    start_ns: int,
    n_minutes: int,
    valid_fraction: float,
    co2_density: float,
    revision: int = 0,
) -> list[MinuteAggregate]:
    """Minute aggregates for ``n_minutes`` consecutive minutes from ``start_ns``.

    ``samples`` rows are the kiln's member signals in ``kiln.signals`` order.
    """
    per_minute = samples.valid.shape[1] // n_minutes
    row = {g: i for i, g in enumerate(kiln.signals)}
    series: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]] = kp.derive(
        kiln, signals, row, samples
    )
    reasons = reason_counts(samples, per_minute)  # [n, M, R]
    stats = {name: _period_stats(v, ok, n_minutes) for name, (v, ok) in series.items()}
    member_stats = [
        _period_stats(samples.value[i], samples.valid[i], n_minutes) for i in range(len(kiln.signals))
    ]

    out = []
    for m in range(n_minutes):
        params: dict[str, ParameterStats] = {}
        for name, (n, tot, lo, hi) in stats.items():
            params[name] = _stats(int(n[m]), float(tot[m]), float(lo[m]), float(hi[m]), per_minute, {})
        for i, gidx in enumerate(kiln.signals):
            n, tot, lo, hi = member_stats[i]
            why = {r: int(c) for r, c in zip(REASONS, reasons[i, m], strict=True) if c}
            params[signals[gidx].id] = _stats(
                int(n[m]), float(tot[m]), float(lo[m]), float(hi[m]), per_minute, why
            )
        out.append(
            _minute_aggregate(kiln, start_ns + m * MINUTE_NS, params, valid_fraction, co2_density, revision)
        )
    return out


def _minute_aggregate(
    kiln: KilnSpec,
    start_ns: int,
    params: dict[str, ParameterStats],
    valid_fraction: float,
    co2_density: float,
    revision: int,
) -> MinuteAggregate:
    flow, co2, cli = params[kp.FLOW_N_DRY], params[kp.CO2_DRY], params[kp.CLINKER_RATE]
    co2_t_per_h = None
    if flow.mean is not None and co2.mean is not None:
        co2_t_per_h = float(em.co2_mass_flow_t_per_h(flow.mean, co2.mean, co2_density))
    clinker = cli.mean
    intensity = None
    if co2_t_per_h is not None and clinker is not None and clinker > 0:
        intensity = float(em.intensity_kg_per_t(co2_t_per_h, clinker))
    valid = all(p.availability >= valid_fraction for p in (flow, co2, cli))
    return MinuteAggregate(
        kiln=kiln.id,
        plant=kiln.plant,
        start_ns=start_ns,
        co2_t_per_h=co2_t_per_h,
        clinker_t_per_h=clinker,
        intensity_kg_per_t=intensity,
        valid=valid,
        params=params,
        revision=revision,
    )
