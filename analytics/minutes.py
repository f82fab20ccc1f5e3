"""Closing minutes: grid samples of one kiln become minute aggregates (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from . import emissions as em
from . import kiln_params as kp
from .aggregates import MinuteAggregate, ParameterStats
from .gridding import GridSamples
from .ledger import LEDGER_REASONS, reason_codes, reason_counts, received_counts
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
    n: int,
    total: float,
    lo: float,
    hi: float,
    expected: int,
    reasons: dict[str, int],
    received: int | None = None,
) -> ParameterStats:
    if n == 0:
        return ParameterStats(None, 0, expected, None, None, reasons, received)
    return ParameterStats(total / n, n, expected, lo, hi, reasons, received)


def close_minutes(
    kiln: KilnSpec,
    signals: Sequence[SignalInfo],
    samples: GridSamples,
    start_ns: int,
    n_minutes: int,
    valid_fraction: float,
    co2_density: float,
    revision: int = 0,
    *,
    stuck: npt.NDArray[np.bool_] | None = None,
    running: npt.NDArray[np.bool_] | None = None,
    reference_o2_pct: float | None = None,
    co_counts_as_co2: bool = True,
) -> list[MinuteAggregate]:
    """Minute aggregates for ``n_minutes`` consecutive minutes from ``start_ns``.

    ``samples`` rows are the kiln's member signals in ``kiln.signals`` order. ``stuck`` [n, T] marks
    points the stuck check rejects (invalid, ledger reason "stuck"); ``running`` [T] whether the kiln
    ran at each point. CO counted as CO2 is added to ``co2_t_per_h`` when ``co_counts_as_co2``.
    """
    per_minute = samples.valid.shape[1] // n_minutes
    if stuck is None:
        stuck = np.zeros(samples.valid.shape, dtype=bool)
    checked = GridSamples(samples.value, samples.valid & ~stuck, samples.quality, samples.present)
    row = {g: i for i, g in enumerate(kiln.signals)}
    series = kp.derive(kiln, signals, row, checked, reference_o2_pct)
    reasons = reason_counts(reason_codes(samples, stuck), per_minute)  # [n, M, R]
    received = received_counts(samples.present, per_minute)  # [n, M]
    stats = {name: _period_stats(v, ok, n_minutes) for name, (v, ok) in series.items()}
    member_stats = [
        _period_stats(checked.value[i], checked.valid[i], n_minutes) for i in range(len(kiln.signals))
    ]
    n_running = None if running is None else running.reshape(n_minutes, per_minute).sum(axis=1)

    out = []
    for m in range(n_minutes):
        params: dict[str, ParameterStats] = {}
        for name, (n, tot, lo, hi) in stats.items():
            params[name] = _stats(int(n[m]), float(tot[m]), float(lo[m]), float(hi[m]), per_minute, {})
        for i, gidx in enumerate(kiln.signals):
            n, tot, lo, hi = member_stats[i]
            why = {r: int(c) for r, c in zip(LEDGER_REASONS, reasons[i, m], strict=True) if c}
            params[signals[gidx].id] = _stats(
                int(n[m]), float(tot[m]), float(lo[m]), float(hi[m]), per_minute, why, int(received[i, m])
            )
        minute = _minute_aggregate(
            kiln, start_ns + m * MINUTE_NS, params, valid_fraction, co2_density, revision, co_counts_as_co2
        )
        minute.n_running = None if n_running is None else int(n_running[m])
        out.append(minute)
    return out


def _minute_aggregate(
    kiln: KilnSpec,
    start_ns: int,
    params: dict[str, ParameterStats],
    valid_fraction: float,
    co2_density: float,
    revision: int,
    co_counts_as_co2: bool,
) -> MinuteAggregate:
    flow, co2, cli = params[kp.FLOW_N_DRY], params[kp.CO2_DRY], params[kp.CLINKER_RATE]
    co2_t_per_h = None
    co_as_co2 = None
    if flow.mean is not None and co2.mean is not None:
        co2_t_per_h = float(em.co2_mass_flow_t_per_h(flow.mean, co2.mean, co2_density))
        co = params.get(kp.CO_DRY)
        if co is not None and co.mean is not None:
            co_as_co2 = float(em.co2_from_co_t_per_h(flow.mean, co.mean))
            if co_counts_as_co2:
                co2_t_per_h += co_as_co2
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
        co_as_co2_t_per_h=co_as_co2,
    )
