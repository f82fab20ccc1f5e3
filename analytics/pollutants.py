"""IED pollutant averages for cement kilns co-incinerating waste (docs/method.md § 10; WE9).

Pipeline for one pollutant: value at 10 % O2 dry (see :func:`analytics.corrections.o2_reference_correction`)
-> half-hour mean (validity rule) -> minus the confidence interval -> validated half-hour
-> daily mean of the validated half-hours, valid when at most 5 half-hours are discarded -> compared
with the daily emission limit value (ELV). Time is the last axis where a function reduces over it.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from .averaging import PeriodMean, period_mean
from .emissions import ArrayLike, FloatArray

BoolArray = npt.NDArray[np.bool_]

#: Daily-average ELVs [mg/Nm3, 273.15 K, 101.3 kPa, 10 % O2, dry] (IED 2010/75/EU Annex VI Part 4
#: point 2.1; docs/method.md § 10). CO has none: the competent
#: authority sets it (Part 4 point 2.3); give it in the plant file.
DEFAULT_DAILY_ELV_MG_PER_NM3: Final[dict[str, float]] = {
    "dust": 30.0,
    "hcl": 10.0,
    "hf": 1.0,
    "nox": 500.0,
    "so2": 50.0,
    "toc": 10.0,
    "cd_tl": 0.05,
    "hg": 0.05,
    "metals": 0.5,
}

#: 95 % confidence interval of a single result as a fraction of the daily ELV [-] (IED Annex VI Part 6
#: point 1.3; Dir. 2000/76 Annex III, carried into the IED; docs/method.md § 10).
#: Hg 0.40 to be confirmed against the permit.
CI_FRACTION_OF_ELV: Final[dict[str, float]] = {
    "co": 0.10,
    "so2": 0.20,
    "nox": 0.20,
    "dust": 0.30,
    "toc": 0.30,
    "hcl": 0.40,
    "hf": 0.40,
    "hg": 0.40,
}

#: Minimum share of valid minutes for a valid half-hour [-]. [assumption] (method.md § 10, § 13): EN 17255-1
#: was not read; confirm against it or the permit.
HALF_HOUR_MIN_AVAILABILITY: Final = 2.0 / 3.0
#: A daily average is valid with no more than 5 half-hours discarded (IED Annex VI Part 8 section 1).
MAX_DISCARDED_HALF_HOURS_PER_DAY: Final = 5


class DailyMean(NamedTuple):
    """Daily mean of validated half-hours [mg/Nm3], counts [-] and validity."""

    mean: FloatArray
    n_valid: FloatArray
    n_discarded: FloatArray
    valid: BoolArray


def ci_fraction(pollutant: str) -> float:
    """Confidence-interval fraction of the daily ELV [-] for a pollutant name (``nox``, ``so2``, ...)."""
    try:
        return CI_FRACTION_OF_ELV[pollutant.lower()]
    except KeyError:
        raise ValueError(
            f"no IED confidence interval for {pollutant!r}; known: {sorted(CI_FRACTION_OF_ELV)}"
        ) from None


def half_hour_mean(
    valid_sum: ArrayLike,
    valid_count: ArrayLike,
    expected_count: ArrayLike,
    threshold: float = HALF_HOUR_MIN_AVAILABILITY,
) -> PeriodMean:
    """Half-hour mean over valid minutes [mg/Nm3, 10 % O2 dry], availability [-] and validity (WE9).

    valid_sum [mg/Nm3 summed over valid minutes], valid_count, expected_count [-] (30 for minute data);
    threshold: minimum availability, default 2/3 ([assumption]).
    """
    return period_mean(valid_sum, valid_count, expected_count, threshold)


def confidence_interval(elv: ArrayLike, fraction: ArrayLike) -> FloatArray:
    """95 % confidence interval [mg/Nm3] = fraction [-] x daily ELV [mg/Nm3] (IED Annex VI Part 6 pt 1.3)."""
    return np.asarray(fraction, dtype=float) * np.asarray(elv, dtype=float)


def validated_value(mean: ArrayLike, ci: ArrayLike, clip_at_zero: bool = True) -> FloatArray:
    """Validated half-hour [mg/Nm3] = half-hour mean - confidence interval (IED Annex VI Part 8 pt 1.2).

    ``clip_at_zero``: a concentration below its confidence interval is validated as 0, not negative
    [assumption: the IED does not say; common DAHS practice].
    """
    v = np.asarray(mean, dtype=float) - np.asarray(ci, dtype=float)
    return np.where(v < 0.0, 0.0, v) if clip_at_zero else v


def daily_mean(
    validated: ArrayLike,
    valid: ArrayLike,
    operating: ArrayLike | None = None,
    max_discarded: int = MAX_DISCARDED_HALF_HOURS_PER_DAY,
) -> DailyMean:
    """Daily mean of validated half-hours [mg/Nm3] (IED Annex VI Part 8 pt 1.2 and section 1; WE9).

    validated: validated half-hour values, half-hours along the last axis (48 for a full day);
    valid: which half-hours are valid; operating: which half-hours fall in effective operating time
    (default all). A half-hour in operation but not valid is discarded; the day is valid with at most
    ``max_discarded`` discarded and at least one valid half-hour.
    """
    v = np.asarray(validated, dtype=float)
    ok = np.asarray(valid, dtype=bool) & np.isfinite(v)
    op = (
        np.ones(v.shape, dtype=bool)
        if operating is None
        else np.broadcast_to(np.asarray(operating, bool), v.shape)
    )
    ok = ok & op
    n_valid = ok.sum(axis=-1).astype(float)
    n_discarded = (op & ~ok).sum(axis=-1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(
            n_valid > 0, np.where(ok, v, 0.0).sum(axis=-1) / np.where(n_valid > 0, n_valid, 1.0), np.nan
        )
    day_valid = (n_valid > 0) & (n_discarded <= max_discarded)
    return DailyMean(mean, n_valid, n_discarded, np.asarray(day_valid))


def exceeds_elv(daily: ArrayLike, elv: ArrayLike, day_valid: ArrayLike | None = None) -> BoolArray:
    """True where a (valid) daily mean [mg/Nm3] is above its ELV [mg/Nm3] (IED Annex VI Part 8 pt 1.1).

    A NaN mean or a NaN ELV (none set) never exceeds; an invalid day is not judged here.
    """
    d = np.asarray(daily, dtype=float)
    e = np.asarray(elv, dtype=float)
    over = np.isfinite(d) & np.isfinite(e) & (d > e)
    return np.asarray(over if day_valid is None else over & np.asarray(day_valid, dtype=bool))
