"""Per-value corrections before averaging (docs/method.md § 3.2, § 3.3, § 5.5-5.7; WE5, WE6, WE11).

4-20 mA scaling with NAMUR NE 43 status, the EN 14181 QAL2 calibration function, ppm <-> mg/Nm3,
the O2 reference correction for pollutants and CO counted as CO2. Arrays in, arrays out; NaN in gives
NaN out, and where a quality is returned it says why a value is not usable.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from . import quality as qc
from .emissions import CO2_PER_CO, M_CO, M_CO2, V_M, ArrayLike, FloatArray

BoolArray = npt.NDArray[np.bool_]

#: Molar mass of NO2 [g/mol]; NOx is expressed as NO2 (IUPAC; docs/method.md § 2.1).
M_NO2: Final = 46.0055
#: Molar mass of SO2 [g/mol] (IUPAC; docs/method.md § 2.1).
M_SO2: Final = 64.064
#: Molar masses [g/mol] by component name, for ppm <-> mg/Nm3 (docs/method.md § 2.1).
MOLAR_MASS: Final[dict[str, float]] = {"nox": M_NO2, "no2": M_NO2, "so2": M_SO2, "co": M_CO, "co2": M_CO2}

#: Live zero and full scale of the 4-20 mA loop [mA].
LIVE_ZERO_MA: Final = 4.0
FULL_SCALE_MA: Final = 20.0
#: NAMUR NE 43 bands [mA] (docs/method.md § 3.2): measurement information 3.8-20.5 mA,
#: failure at or below 3.6 mA and at or above 21 mA; between them the under-/over-range bands.
NE43_FAILURE_LOW_MA: Final = 3.6
NE43_MEASUREMENT_LOW_MA: Final = 3.8
NE43_MEASUREMENT_HIGH_MA: Final = 20.5
NE43_FAILURE_HIGH_MA: Final = 21.0

#: O2 content of air in the reference formula [vol %] (IED 2010/75/EU Annex VI Part 7; docs/method.md § 5.6).
O2_AIR_PCT: Final = 21.0
#: Reference O2 for cement kilns [vol %, dry] (IED Annex VI Part 4 point 2.1; docs/method.md § 5.6).
O2_REFERENCE_CEMENT_PCT: Final = 10.0


class Scaled(NamedTuple):
    """A value in engineering units and the quality that goes with it."""

    value: FloatArray
    quality: qc.QualityArray


class Calibrated(NamedTuple):
    """QAL2-calibrated value, its quality, and where it lies outside the valid calibration range."""

    value: FloatArray
    quality: qc.QualityArray
    outside_range: BoolArray


def _raise_class(quality: qc.QualityArray, cls: int, where: BoolArray) -> qc.QualityArray:
    """Raise the class bits to at least ``cls`` where ``where``; flags are kept."""
    q = np.asarray(quality, dtype=np.uint8)
    raised = (q & ~np.uint8(qc.CLASS_MASK)) | np.maximum(q & np.uint8(qc.CLASS_MASK), np.uint8(cls))
    return np.where(where, raised, q).astype(np.uint8)


def scale_4_20ma(current_ma: ArrayLike, lo: ArrayLike, hi: ArrayLike) -> Scaled:
    """Loop current [mA] to a value in the range [lo, hi] [engineering unit], with NE 43 status (WE11).

    x = lo + (I - 4)/16 * (hi - lo). Bands (NAMUR NE 43):

    ============================  =========================  ===============================
    current I [mA]                value                      quality
    ============================  =========================  ===============================
    4 <= I <= 20                  linear                     good
    3.8 <= I < 4, 20 < I <= 20.5  linear (beyond the span)   uncertain (measurement band)
    3.6 < I < 3.8, 20.5 < I < 21  linear                     uncertain + out of range
    I <= 3.6 or I >= 21           NaN                        bad + fault (failure signal)
    NaN                           NaN                        bad
    ============================  =========================  ===============================

    A 3.7 mA reading is therefore flagged and never counts as a valid zero.
    """
    i = np.asarray(current_ma, dtype=float)
    lo_a = np.asarray(lo, dtype=float)
    hi_a = np.asarray(hi, dtype=float)
    value = lo_a + (i - LIVE_ZERO_MA) / (FULL_SCALE_MA - LIVE_ZERO_MA) * (hi_a - lo_a)
    value, i = np.broadcast_arrays(value, i)
    nan = np.isnan(i)
    failure = (i <= NE43_FAILURE_LOW_MA) | (i >= NE43_FAILURE_HIGH_MA)
    in_measurement = (i >= NE43_MEASUREMENT_LOW_MA) & (i <= NE43_MEASUREMENT_HIGH_MA)
    in_span = (i >= LIVE_ZERO_MA) & (i <= FULL_SCALE_MA)
    quality = np.select(
        [nan, failure, in_span, in_measurement],
        [qc.BAD, qc.BAD | qc.FAULT, qc.GOOD, qc.UNCERTAIN],
        default=qc.UNCERTAIN | qc.OUT_OF_RANGE,
    ).astype(np.uint8)
    return Scaled(np.where(failure | nan, np.nan, value), quality)


def qal2_calibrate(
    x: ArrayLike,
    a: ArrayLike,
    b: ArrayLike,
    valid_min: ArrayLike = -np.inf,
    valid_max: ArrayLike = np.inf,
    quality: ArrayLike | None = None,
    invalidate_outside: bool = False,
) -> Calibrated:
    """EN 14181 QAL2 calibration function y = a + b*x (docs/method.md § 3.3) [unit of the calibrated value].

    x: raw AMS reading; a [unit of y], b [unit of y per unit of x]: QAL2 coefficients;
    valid_min, valid_max: valid calibration range, in calibrated units [unit of y].

    Values outside the valid calibration range are flagged: class raised to uncertain, and
    ``outside_range`` True (the count of such values decides when a new QAL2 is due). They stay
    usable unless ``invalidate_outside`` is set, which adds the invalidating out-of-range flag; the
    permit decides. NaN x gives NaN y with class bad. ``quality`` is the incoming quality (default good).
    """
    y = np.asarray(a, dtype=float) + np.asarray(b, dtype=float) * np.asarray(x, dtype=float)
    q_in = np.zeros(y.shape, dtype=np.uint8) if quality is None else np.asarray(quality, dtype=np.uint8)
    y, q_in = np.broadcast_arrays(y, q_in)
    finite = np.isfinite(y)
    outside = finite & ((y < np.asarray(valid_min, dtype=float)) | (y > np.asarray(valid_max, dtype=float)))
    q = _raise_class(q_in, qc.UNCERTAIN, outside)
    if invalidate_outside:
        q = np.where(outside, q | np.uint8(qc.OUT_OF_RANGE), q).astype(np.uint8)
    q = _raise_class(q, qc.BAD, ~finite)
    return Calibrated(np.where(finite, y, np.nan), q, outside)


def ppm_to_mg_per_nm3(ppm: ArrayLike, molar_mass: ArrayLike) -> FloatArray:
    """ppm(v) to mass concentration [mg/Nm3] = ppm * M [g/mol] / 22.414 [L/mol] (docs/method.md § 5.5).

    Same moisture basis in and out; 0 degC, 101.325 kPa.
    """
    return np.asarray(ppm, dtype=float) * np.asarray(molar_mass, dtype=float) / V_M


def mg_per_nm3_to_ppm(mg_per_nm3: ArrayLike, molar_mass: ArrayLike) -> FloatArray:
    """Mass concentration [mg/Nm3] to ppm(v) = C * 22.414 [L/mol] / M [g/mol] (docs/method.md § 5.5)."""
    m = np.asarray(molar_mass, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(m > 0, np.asarray(mg_per_nm3, dtype=float) * V_M / np.where(m > 0, m, 1.0), np.nan)


def o2_reference_correction(
    e_measured: ArrayLike,
    o2_measured_pct: ArrayLike,
    o2_reference_pct: ArrayLike = O2_REFERENCE_CEMENT_PCT,
    only_above_reference: bool = False,
) -> FloatArray:
    """Concentration at reference O2: E_S = (21 - O_S)/(21 - O_M) * E_M (IED Annex VI Part 7; WE6).

    e_measured [mg/Nm3, dry], o2_measured_pct O_M [vol %, dry], o2_reference_pct O_S [vol %, dry;
    default 10 for cement kilns]. For pollutant concentrations compared with limit values only,
    never for CO2 mass (docs/method.md § 5.6). O_M >= 21 (air, or a sample-line leak) has no defined
    correction and gives NaN. ``only_above_reference`` applies the factor only where O_M > O_S
    (German 13./17. BImSchV practice,; follow the permit).
    """
    e_m = np.asarray(e_measured, dtype=float)
    o_m = np.asarray(o2_measured_pct, dtype=float)
    o_s = np.asarray(o2_reference_pct, dtype=float)
    defined = o_m < O2_AIR_PCT
    factor = (O2_AIR_PCT - o_s) / np.where(defined, O2_AIR_PCT - o_m, 1.0)
    if only_above_reference:
        factor = np.where(o_m > o_s, factor, 1.0)
    return np.where(defined, factor * e_m, np.nan)


def co_as_co2_equivalent(co_mg_per_nm3: ArrayLike) -> FloatArray:
    """CO [mg/Nm3] as molar-equivalent CO2 [mg/Nm3] = CO * 44.0095/28.0101 (MRR Art. 43(1); WE5)."""
    return np.asarray(co_mg_per_nm3, dtype=float) * CO2_PER_CO
