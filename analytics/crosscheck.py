"""Mass-balance corroboration of the CEMS CO2 (MRR 2018/2066 Art. 46; docs/method.md § 9.1; WE10).

Calculated CO2 = calcination (clinker x EF from CaO/MgO, or the 525 kg/t default) + kiln fuels
(rate x NCV x EF) + raw-meal organic carbon; compared with the CEMS result in %. Masses are per the
same period on both sides: t/h for rates, t for a day's totals.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from .emissions import CO2_DENSITY_KG_PER_NM3, ArrayLike, FloatArray, intensity_kg_per_t

BoolArray = npt.NDArray[np.bool_]

#: CO2 released per CaO [t/t] (40 CFR 98.83(d)(2)(i) Eq. H-3; stoichiometric 0.78480).
MR_CAO: Final = 0.785
#: CO2 released per MgO [t/t] (40 CFR 98.83 Eq. H-3; stoichiometric 1.09193).
MR_MGO: Final = 1.092
#: Default calcination EF [t CO2/t clinker] (CSI/GCCA Cement CO2 Protocol, method B1).
CSI_DEFAULT_EF_T_PER_T: Final = 0.525
#: Default organic carbon of raw meal [wt %] (40 CFR 98.83 Eq. H-5).
TOC_DEFAULT_PCT: Final = 0.2
#: CO2 per carbon [t/t] as written in 40 CFR 98.83 Eq. H-5 (44/12; docs/method.md § 9.1).
CO2_PER_C: Final = 44.0 / 12.0
#: Raw meal per clinker [t/t] [assumption: typical dry-process kiln feed; give the plant's value].
RAW_MEAL_PER_CLINKER_DEFAULT: Final = 1.55
#: IPCC default fuel EFs [t CO2/TJ, NCV] (IPCC 2006 GL Vol. 2 Table 2.2; MRR Annex VI Table 1).
IPCC_FUEL_EF_T_PER_TJ: Final[dict[str, float]] = {
    "other_bituminous_coal": 94.6,
    "natural_gas": 56.1,
    "petroleum_coke": 97.5,
}
#: |CEMS - calculated| above which the day is flagged [%]. [assumption]: the MRR gives no tolerance
#: (docs/method.md § 9.2); twice the Tier-4 uncertainty of +-2.5 %.
DEFAULT_DEVIATION_THRESHOLD_PCT: Final = 5.0


class CrossCheck(NamedTuple):
    """Calculated CO2 by source [t per period], total, intensity and the comparison with CEMS."""

    calcination_t: FloatArray
    fuel_t: FloatArray
    toc_t: FloatArray
    total_t: FloatArray
    intensity_kg_per_t: FloatArray
    deviation_pct: FloatArray
    flagged: BoolArray


def clinker_emission_factor(
    cao_pct: ArrayLike,
    mgo_pct: ArrayLike,
    cao_non_carbonate_pct: ArrayLike = 0.0,
    mgo_non_carbonate_pct: ArrayLike = 0.0,
) -> FloatArray:
    """Calcination EF [t CO2/t clinker] = (CaO - CaO_nc) x 0.785 + (MgO - MgO_nc) x 1.092 (Eq. H-3; WE10).

    All contents in clinker [wt %]; nc = non-carbonate sources (slag, fly ash, CaSO4).
    """
    cao = (np.asarray(cao_pct, dtype=float) - np.asarray(cao_non_carbonate_pct, dtype=float)) / 100.0
    mgo = (np.asarray(mgo_pct, dtype=float) - np.asarray(mgo_non_carbonate_pct, dtype=float)) / 100.0
    return cao * MR_CAO + mgo * MR_MGO


def calcination_co2(clinker_t: ArrayLike, ef_t_per_t: ArrayLike = CSI_DEFAULT_EF_T_PER_T) -> FloatArray:
    """Calcination CO2 [t] = clinker [t] x EF [t CO2/t clinker] (CSI B1/B2; WE10)."""
    return np.asarray(clinker_t, dtype=float) * np.asarray(ef_t_per_t, dtype=float)


def fuel_co2(
    fuel_t: ArrayLike,
    ncv_gj_per_t: ArrayLike,
    ef_t_per_tj: ArrayLike,
    oxidation_factor: ArrayLike = 1.0,
) -> FloatArray:
    """Kiln fuel CO2 [t] = sum over fuels of fuel [t] x NCV [GJ/t] x EF [t CO2/TJ] / 1000 x OF [-].

    Fuels along the last axis (a fuel's NCV and EF broadcast along the others); no fuel gives 0.
    Biomass fuels are left out of gross CO2 (docs/method.md § 9.1): give them an EF of 0.
    """
    per_fuel = (
        np.asarray(fuel_t, dtype=float)
        * np.asarray(ncv_gj_per_t, dtype=float)
        * np.asarray(ef_t_per_tj, dtype=float)
        * np.asarray(oxidation_factor, dtype=float)
        / 1000.0
    )
    return np.asarray(np.atleast_1d(per_fuel).sum(axis=-1))


def toc_co2(
    clinker_t: ArrayLike,
    raw_meal_per_clinker: ArrayLike = RAW_MEAL_PER_CLINKER_DEFAULT,
    toc_pct: ArrayLike = TOC_DEFAULT_PCT,
) -> FloatArray:
    """Raw-meal organic carbon CO2 [t] = clinker [t] x raw meal/clinker [t/t] x TOC [wt %]/100 x 44/12."""
    return (
        np.asarray(clinker_t, dtype=float)
        * np.asarray(raw_meal_per_clinker, dtype=float)
        * np.asarray(toc_pct, dtype=float)
        / 100.0
        * CO2_PER_C
    )


def deviation_pct(cems_t: ArrayLike, calculated_t: ArrayLike) -> FloatArray:
    """(CEMS - calculated) / calculated x 100 [%]; NaN where the calculated value is not > 0."""
    c = np.asarray(calculated_t, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            c > 0, (np.asarray(cems_t, dtype=float) - c) / np.where(c > 0, c, 1.0) * 100.0, np.nan
        )


def exceeds_threshold(
    dev_pct: ArrayLike, threshold_pct: ArrayLike = DEFAULT_DEVIATION_THRESHOLD_PCT
) -> BoolArray:
    """True where |deviation| [%] > threshold [%]; a NaN deviation (nothing to compare) is not flagged."""
    d = np.asarray(dev_pct, dtype=float)
    return np.asarray(np.isfinite(d) & (np.abs(d) > np.asarray(threshold_pct, dtype=float)))


def cross_check(
    cems_co2_t: ArrayLike,
    clinker_t: ArrayLike,
    fuel_co2_t: ArrayLike,
    ef_clinker_t_per_t: ArrayLike = CSI_DEFAULT_EF_T_PER_T,
    raw_meal_per_clinker: ArrayLike = RAW_MEAL_PER_CLINKER_DEFAULT,
    toc_pct: ArrayLike = TOC_DEFAULT_PCT,
    threshold_pct: ArrayLike = DEFAULT_DEVIATION_THRESHOLD_PCT,
) -> CrossCheck:
    """Art. 46 corroboration for kiln-days (WE10): calculated CO2 [t] by source vs the CEMS CO2 [t].

    cems_co2_t, clinker_t [t]; fuel_co2_t [t] from :func:`fuel_co2`; ef_clinker_t_per_t from
    :func:`clinker_emission_factor` or the CSI default; intensity [kg CO2/t clinker] of the calculated total.
    """
    calc = calcination_co2(clinker_t, ef_clinker_t_per_t)
    fuel = np.asarray(fuel_co2_t, dtype=float)
    toc = toc_co2(clinker_t, raw_meal_per_clinker, toc_pct)
    total = calc + fuel + toc
    dev = deviation_pct(cems_co2_t, total)
    return CrossCheck(
        calc,
        fuel,
        toc,
        total,
        intensity_kg_per_t(total, clinker_t),
        dev,
        exceeds_threshold(dev, threshold_pct),
    )


def flow_from_mass_balance(
    co2_t_per_h: ArrayLike, co2_pct_dry: ArrayLike, density_kg_per_nm3: float = CO2_DENSITY_KG_PER_NM3
) -> FloatArray:
    """Substitute dry flow [Nm3/h] for an invalid flow hour from calculated CO2 [t/h] and CO2 [vol %, dry].

    Q = m / (C/100 x rho / 1000), the inverse of the mass-flow formula (MRR Art. 45(4): flow
    by a mass balance, never by C_mean + 2 sigma). NaN where the concentration is not > 0.
    """
    c = np.asarray(co2_pct_dry, dtype=float)
    per_nm3 = c / 100.0 * density_kg_per_nm3 / 1000.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(c > 0, np.asarray(co2_t_per_h, dtype=float) / np.where(c > 0, per_nm3, 1.0), np.nan)
