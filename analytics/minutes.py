"""Closing minutes: grid samples of one kiln become minute aggregates (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from . import emissions as em
from . import kiln_params as kp
from .aggregates import MinuteAggregate, ParameterStats
from .gridding import GridSamples
from .ledger import LEDGER_REASONS, reason_codes, reason_counts, received_counts
from .signals import KilnSpec, SignalInfo
from .validity import numbers_usable

MINUTE_NS = 60 * 1_000_000_000
#: Per period: valid points, their sum, minimum and maximum.
PeriodStats = tuple[
    npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]
]


def _period_stats(values: npt.NDArray[np.float64], valid: npt.NDArray[np.bool_], periods: int) -> PeriodStats:
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
    checked, stats = _derived_stats(kiln, signals, samples, stuck, n_minutes, reference_o2_pct)
    reasons = reason_counts(reason_codes(samples, stuck), per_minute)  # [n, M, R]
    received = received_counts(samples.present, per_minute)  # [n, M]
    member_stats = [
        _period_stats(checked.value[i], checked.valid[i], n_minutes) for i in range(len(kiln.signals))
    ]
    n_running = None if running is None else running.reshape(n_minutes, per_minute).sum(axis=1)
    head = _headlines(stats, per_minute, valid_fraction, co2_density, co_counts_as_co2)

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
        out.append(
            MinuteAggregate(
                kiln=kiln.id,
                plant=kiln.plant,
                start_ns=start_ns + m * MINUTE_NS,
                co2_t_per_h=_number(head.co2[m]),
                clinker_t_per_h=_number(head.clinker[m]),
                intensity_kg_per_t=_number(head.intensity[m]),
                valid=bool(head.valid[m]),
                params=params,
                revision=revision,
                co_as_co2_t_per_h=_number(head.co_as_co2[m]),
                n_running=None if n_running is None else int(n_running[m]),
            )
        )
    return out


def _derived_stats(
    kiln: KilnSpec,
    signals: Sequence[SignalInfo],
    samples: GridSamples,
    stuck: npt.NDArray[np.bool_],
    periods: int,
    reference_o2_pct: float | None,
) -> tuple[GridSamples, dict[str, PeriodStats]]:
    """The samples without their stuck points, and each derived parameter's statistics per period."""
    checked = GridSamples(samples.value, samples.valid & ~stuck, samples.quality, samples.present)
    row = {g: i for i, g in enumerate(kiln.signals)}
    series = kp.derive(kiln, signals, row, checked, reference_o2_pct)
    return checked, {name: _period_stats(v, ok, periods) for name, (v, ok) in series.items()}


class MinuteHeadline(NamedTuple):
    """The headline of one (possibly partial) minute: what the running minute shows."""

    co2_t_per_h: float | None
    clinker_t_per_h: float | None
    intensity_kg_per_t: float | None
    valid: bool


def minute_headline(
    kiln: KilnSpec,
    signals: Sequence[SignalInfo],
    samples: GridSamples,
    valid_fraction: float,
    co2_density: float,
    *,
    stuck: npt.NDArray[np.bool_] | None = None,
    co_counts_as_co2: bool = True,
) -> MinuteHeadline:
    """The headline numbers of the grid points in ``samples`` taken as one minute, however many
    there are: :func:`close_minutes`'s kernels on a full minute give its numbers, on the first
    points of a minute the running minute's (validity as a fraction of those points)."""
    points = samples.valid.shape[1]
    if points == 0:
        return MinuteHeadline(None, None, None, False)
    if stuck is None:
        stuck = np.zeros(samples.valid.shape, dtype=bool)
    _, stats = _derived_stats(kiln, signals, samples, stuck, 1, None)
    head = _headlines(stats, points, valid_fraction, co2_density, co_counts_as_co2)
    return MinuteHeadline(
        _number(head.co2[0]), _number(head.clinker[0]), _number(head.intensity[0]), bool(head.valid[0])
    )


class _Headlines(NamedTuple):
    """Per minute: CO2 [t/h], clinker [t/h], intensity [kg/t], CO as CO2 [t/h] (NaN: none), valid."""

    co2: npt.NDArray[np.float64]
    clinker: npt.NDArray[np.float64]
    intensity: npt.NDArray[np.float64]
    co_as_co2: npt.NDArray[np.float64]
    valid: npt.NDArray[np.bool_]


def _headlines(
    stats: dict[str, PeriodStats],
    per_minute: int,
    valid_fraction: float,
    co2_density: float,
    co_counts_as_co2: bool,
) -> _Headlines:
    """The headline numbers and validity of every minute at once.

    CO2 needs flow and CO2 means; CO as CO2 is added where the CO mean exists (``co_counts_as_co2``);
    intensity needs clinker > 0. Valid: flow, CO2 and clinker each at >= ``valid_fraction`` of
    their points, and the numbers usable (:func:`analytics.validity.numbers_usable`).
    """
    flow, co2, cli = (_means(stats[k]) for k in (kp.FLOW_N_DRY, kp.CO2_DRY, kp.CLINKER_RATE))
    with np.errstate(over="ignore", invalid="ignore"):
        co2_t = em.co2_mass_flow_t_per_h(flow, co2, co2_density)
        co_as_co2 = np.full_like(co2_t, np.nan)
        if kp.CO_DRY in stats:
            co_as_co2 = np.where(
                np.isnan(co2_t), np.nan, em.co2_from_co_t_per_h(flow, _means(stats[kp.CO_DRY]))
            )
            if co_counts_as_co2:
                co2_t = np.where(np.isnan(co_as_co2), co2_t, co2_t + co_as_co2)
        intensity = em.intensity_kg_per_t(co2_t, cli)
    enough = np.logical_and.reduce([stats[k][0] / per_minute >= valid_fraction for k in _REQUIRED])
    return _Headlines(co2_t, cli, intensity, co_as_co2, enough & numbers_usable(co2_t, cli, intensity))


_REQUIRED = (kp.FLOW_N_DRY, kp.CO2_DRY, kp.CLINKER_RATE)


def _means(s: PeriodStats) -> npt.NDArray[np.float64]:
    n, total = s[0], s[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _number(x: float) -> float | None:
    """A headline as it travels: a number, or None (not computable, or overflowed: then not valid)."""
    return float(x) if np.isfinite(x) else None
