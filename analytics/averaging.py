"""Period validity, means over valid points, hourly CO2 and substitution (docs/method.md § 7, § 8; WE8).

Periods (minutes, half-hours, hours) are described by their valid-point sum, valid-point count and
expected count, so the same functions serve any grid and any number of kilns and signals at once:
every argument broadcasts, the last axis is time where a function reduces over time.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from .emissions import (
    CO2_DENSITY_KG_PER_NM3,
    ArrayLike,
    FloatArray,
    co2_from_co_t_per_h,
    co2_mass_flow_t_per_h,
)

BoolArray = npt.NDArray[np.bool_]

#: A parameter's hour is valid with at least 80 % of the possible data points valid
#: (MRR 2018/2066 Art. 44(2); docs/method.md § 7.1).
ETS_HOUR_MIN_AVAILABILITY: Final = 0.8
#: Substitute for an invalid concentration hour: C_mean + 2 sigma
#: (MRR Annex VIII Eq. 4; docs/method.md § 8.1).
SUBSTITUTION_SIGMAS: Final = 2.0
#: Degrees of freedom for sigma in Eq. 4: the sample standard deviation [assumption, docs/method.md § 8.1
#: does not fix it].
SUBSTITUTION_DDOF: Final = 1


class PeriodMean(NamedTuple):
    """One period's mean over its valid points, availability and validity.

    mean: mean over the valid points [unit of the values], NaN without valid points; it is the
    pro-rata mean even when the period is not valid (for the ledger); use ``valid`` to accept it.
    availability: valid / expected points [-], NaN where nothing was expected.
    valid: availability >= threshold.
    """

    mean: FloatArray
    availability: FloatArray
    valid: BoolArray


class Substituted(NamedTuple):
    """Values after substitution and where a substitute was used."""

    value: FloatArray
    substituted: BoolArray


def valid_sum_count(
    values: ArrayLike, valid: ArrayLike | None = None, axis: int = -1
) -> tuple[FloatArray, FloatArray]:
    """Sum [unit of values] and count [-] of the valid points along ``axis``.

    NaN values never count, whatever ``valid`` says; invalid points are left out, never read as zero.
    """
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v) if valid is None else np.asarray(valid, dtype=bool) & np.isfinite(v)
    return np.where(ok, v, 0.0).sum(axis=axis), ok.sum(axis=axis).astype(float)


def meets_availability(valid_count: ArrayLike, expected_count: ArrayLike, threshold: float) -> BoolArray:
    """valid_count / expected_count >= threshold, decided exactly (48 of 60 meets 0.8).

    The threshold is read as the nearest fraction with a denominator up to 10 000 (0.8 -> 4/5,
    2/3 -> 2/3), so the comparison is done on integers-valued floats without rounding at the edge.
    Nothing expected -> False.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within [0, 1], got {threshold}")
    frac = Fraction(threshold).limit_denominator(10_000)
    n = np.asarray(valid_count, dtype=float)
    e = np.asarray(expected_count, dtype=float)
    return np.asarray((e > 0) & (n * frac.denominator >= e * frac.numerator))


def period_mean(
    valid_sum: ArrayLike,
    valid_count: ArrayLike,
    expected_count: ArrayLike,
    threshold: float = ETS_HOUR_MIN_AVAILABILITY,
) -> PeriodMean:
    """Mean over valid points and validity of periods (MRR Art. 44(1)-(2); WE8 hour A and B).

    valid_sum [unit of values], valid_count [-], expected_count [-]: the possible data points of the
    period (60 for an hour of minute values). threshold [-]: minimum availability (default 0.8).
    """
    s = np.asarray(valid_sum, dtype=float)
    n = np.asarray(valid_count, dtype=float)
    e = np.asarray(expected_count, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, s / np.where(n > 0, n, 1.0), np.nan)
        availability = np.where(e > 0, n / np.where(e > 0, e, 1.0), np.nan)
    valid = meets_availability(n, e, threshold) & np.isfinite(mean)
    return PeriodMean(mean, availability, valid)


def hourly_co2_t(
    co2_pct_dry: ArrayLike,
    q_n_dry: ArrayLike,
    co_mg_per_nm3_dry: ArrayLike | None = None,
    density_kg_per_nm3: float = CO2_DENSITY_KG_PER_NM3,
    duration_h: ArrayLike = 1.0,
) -> FloatArray:
    """CO2 of an hour [t] = hourly mean concentration x hourly mean flow (MRR Art. 43(1); WE8).

    co2_pct_dry: hourly mean CO2 [vol %, dry]; q_n_dry: hourly mean flow [Nm3/h, dry];
    co_mg_per_nm3_dry: hourly mean CO [mg/Nm3, dry], counted as CO2 when given (Art. 43(1); WE5);
    duration_h: operating time of the hour [h]. Both means, not the minute products, by definition.
    """
    rate = co2_mass_flow_t_per_h(q_n_dry, co2_pct_dry, density_kg_per_nm3)
    if co_mg_per_nm3_dry is not None:
        rate = rate + co2_from_co_t_per_h(q_n_dry, co_mg_per_nm3_dry)
    return rate * np.asarray(duration_h, dtype=float)


def _std(n: FloatArray, s1: FloatArray, s2: FloatArray, ddof: int) -> FloatArray:
    dof = n - ddof
    with np.errstate(divide="ignore", invalid="ignore"):
        var = (s2 - s1 * s1 / np.where(n > 0, n, 1.0)) / np.where(dof > 0, dof, 1.0)
    return np.where((dof > 0) & (n > 0), np.sqrt(np.maximum(var, 0.0)), np.nan)


def mean_plus_two_sigma(
    hourly: ArrayLike,
    valid: ArrayLike,
    axis: int = -1,
    ddof: int = SUBSTITUTION_DDOF,
    running: bool = False,
) -> FloatArray:
    """Substitute concentration C_mean + 2 sigma_C from valid hours (MRR Annex VIII Eq. 4; WE8 hour B).

    hourly: hourly mean concentrations [unit of the concentration], time along ``axis``;
    valid: which hours are valid. Without ``running`` the result has ``axis`` removed (one value per
    series, from the whole reporting period). With ``running`` it keeps the shape: the value at hour i
    uses the valid hours up to i ("the reporting period so far"). Fewer than ddof + 1 valid hours -> NaN.
    Concentrations only: flow is substituted from a mass balance (Art. 45(4)), never this way.
    """
    x = np.moveaxis(np.asarray(hourly, dtype=float), axis, -1)
    ok = np.moveaxis(
        np.broadcast_to(np.asarray(valid, dtype=bool), np.shape(hourly)), axis, -1
    ) & np.isfinite(x)
    n_total = ok.sum(axis=-1, keepdims=True)
    # Shift by the series mean before summing squares: var from sums loses nothing that way.
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(
            n_total > 0, np.where(ok, x, 0.0).sum(axis=-1, keepdims=True) / np.maximum(n_total, 1), 0.0
        )
    d = np.where(ok, x - shift, 0.0)
    if running:
        n = np.cumsum(ok, axis=-1).astype(float)
        s1 = np.cumsum(d, axis=-1)
        s2 = np.cumsum(d * d, axis=-1)
    else:
        n = n_total[..., 0].astype(float)
        s1 = d.sum(axis=-1)
        s2 = (d * d).sum(axis=-1)
        shift = shift[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, s1 / np.where(n > 0, n, 1.0), np.nan) + shift
    result = mean + SUBSTITUTION_SIGMAS * _std(n, s1, s2, ddof)
    return np.moveaxis(result, -1, axis) if running else result


def substitute(values: ArrayLike, valid: ArrayLike, replacement: ArrayLike) -> Substituted:
    """Keep valid values, put ``replacement`` in the others [unit of the values].

    ``substituted`` is True where a finite replacement was used; where the replacement is NaN the
    value stays NaN (no substitute available) and is not marked substituted.
    """
    v = np.asarray(values, dtype=float)
    r = np.asarray(replacement, dtype=float)
    ok = np.asarray(valid, dtype=bool) & np.isfinite(v)
    v, r, ok = np.broadcast_arrays(v, r, ok)
    used = ~ok & np.isfinite(r)
    return Substituted(np.where(ok, v, np.where(used, r, np.nan)), used)
