"""US reporting conventions: 40 CFR 75 App. F and 40 CFR 98 Subpart C (docs/method.md § 11; WE7).

US "standard" is 68 degF (20 degC), 1 atm, so a normal cubic metre (0 degC) holds 37.9004 scf.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

import numpy as np

from .emissions import T_N_K, ArrayLike, FloatArray, co2_mass_flow_t_per_h, dry_fraction

#: Cubic feet per cubic metre [ft3/m3] (exact from 1 ft = 0.3048 m).
FT3_PER_M3: Final = 35.31466672
#: US standard temperature, 68 degF [K] (40 CFR 98.33(a)(3)(iii) molar volume at 68 degF).
T_US_STD_K: Final = 293.15
#: scf (68 degF, 1 atm) per Nm3 (0 degC, 1 atm) [scf/Nm3] = 35.31467 x 293.15/273.15 = 37.90040 [derived].
SCF_PER_NM3: Final = FT3_PER_M3 * T_US_STD_K / T_N_K
#: Part 75 App. F Eq. F-11 / F-2 constant [short tons/scf/%CO2] (exact 5.7107e-7).
K_PART75_CO2: Final = 5.7e-7
#: Part 98 Eq. C-6 constant [metric t/scf/%CO2] (40 CFR 98.33(a)(4)(ii)).
K_PART98_C6: Final = 5.18e-7
#: Metric tonnes per short ton [t/short ton] (exact; Part 98 divides by 1.1023, § 98.33(a)(5)(i)(C)).
METRIC_T_PER_SHORT_TON: Final = 0.90718474


class ReportingConvention(StrEnum):
    """Which rule turns hourly flow and CO2 into a mass rate."""

    EU_MRR = "eu_mrr"
    US_PART75 = "us_part75"
    US_PART98 = "us_part98"


def nm3_to_scf(q_nm3: ArrayLike) -> FloatArray:
    """Volume or flow at 0 degC, 1 atm [Nm3 or Nm3/h] to 68 degF, 1 atm [scf or scfh]."""
    return np.asarray(q_nm3, dtype=float) * SCF_PER_NM3


def f11_short_tons_per_h(co2_pct_wet: ArrayLike, q_scfh_wet: ArrayLike) -> FloatArray:
    """Part 75 Eq. F-11: E_h [short tons/h] = K x C_h [% CO2, wet] x Q_h [scfh, wet]."""
    return K_PART75_CO2 * np.asarray(co2_pct_wet, dtype=float) * np.asarray(q_scfh_wet, dtype=float)


def f2_short_tons_per_h(co2_pct_dry: ArrayLike, q_scfh_wet: ArrayLike, h2o_pct: ArrayLike) -> FloatArray:
    """Part 75 Eq. F-2 form: E_h [short tons/h] = K x C [% CO2, dry] x Q [scfh, wet] x (100 - %H2O)/100."""
    return f11_short_tons_per_h(np.asarray(co2_pct_dry, dtype=float) * dry_fraction(h2o_pct), q_scfh_wet)


def c6_metric_t_per_h(co2_pct: ArrayLike, q_scfh: ArrayLike) -> FloatArray:
    """Part 98 Eq. C-6: CO2 [metric t/h] = 5.18e-7 x C [% CO2] x Q [scfh], both on the same moisture basis.

    For a dry CO2 and a wet flow, convert the concentration first with Eq. C-7
    (:func:`analytics.emissions.dry_to_wet_concentration`).
    """
    return K_PART98_C6 * np.asarray(co2_pct, dtype=float) * np.asarray(q_scfh, dtype=float)


def short_tons_to_metric(short_tons: ArrayLike) -> FloatArray:
    """Short tons [short ton] to metric tonnes [t]."""
    return np.asarray(short_tons, dtype=float) * METRIC_T_PER_SHORT_TON


def co2_metric_t_per_h(
    q_n_wet: ArrayLike, co2_pct_wet: ArrayLike, convention: ReportingConvention | str
) -> FloatArray:
    """CO2 mass rate [metric t/h] from wet normal flow [Nm3/h, 0 degC] and wet CO2 [vol %] per convention.

    eu_mrr: ideal-gas density 44.0095/22.414 kg/Nm3 (WE3); us_part75: Eq. F-11 in short tons, converted;
    us_part98: Eq. C-6. Multiply by the operating time [h] for the hour's mass.
    """
    conv = ReportingConvention(convention)
    if conv is ReportingConvention.EU_MRR:
        return co2_mass_flow_t_per_h(q_n_wet, co2_pct_wet)
    q_scfh = nm3_to_scf(q_n_wet)
    if conv is ReportingConvention.US_PART75:
        return short_tons_to_metric(f11_short_tons_per_h(co2_pct_wet, q_scfh))
    return c6_metric_t_per_h(co2_pct_wet, q_scfh)
