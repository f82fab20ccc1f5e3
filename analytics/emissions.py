"""Flow normalisation, CO2 mass flow, CO as CO2 and intensity (docs/method.md § 5, worked examples WE1-WE5).

All functions take and return numpy arrays (scalars broadcast). Units are in brackets.
Invalid inputs (NaN) propagate as NaN; nothing here decides validity.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

#: Normal temperature [K] (IED 2010/75/EU Annex VI Part 4 pt 2.1).
T_N_K: Final = 273.15
#: Normal pressure [kPa] (ISO standard atmosphere; IED prints 101.3).
P_N_KPA: Final = 101.325
#: Molar mass of CO2 [g/mol] (IUPAC: C 12.0107, O 15.9994).
M_CO2: Final = 44.0095
#: Molar mass of CO [g/mol].
M_CO: Final = 28.0101
#: Ideal-gas molar volume at 273.15 K, 101.325 kPa [L/mol] (CODATA 22.41396954 rounded; method.md § 2.1).
V_M: Final = 22.414
#: Ideal-gas density of CO2 at normal conditions [kg/Nm3] = M_CO2 / V_M (docs/method.md § 2.2: 1.963483).
CO2_DENSITY_KG_PER_NM3: Final = M_CO2 / V_M
#: CO counted as the molar-equivalent CO2 [-] (MRR 2018/2066 Art. 43(1); docs/method.md § 5.7: 1.571201).
CO2_PER_CO: Final = M_CO2 / M_CO


def actual_to_standard_flow(q_actual: ArrayLike, t_c: ArrayLike, p_abs_kpa: ArrayLike) -> FloatArray:
    """Volume flow at stack conditions [m3/h] to normal conditions [Nm3/h], same moisture basis.

    Q_N = Q * (T_N / T) * (p / p_N), with T = t_c + 273.15 [K] and p the absolute stack pressure [kPa].
    """
    t_k = np.asarray(t_c, dtype=float) + T_N_K
    return np.asarray(q_actual, dtype=float) * (T_N_K / t_k) * (np.asarray(p_abs_kpa, dtype=float) / P_N_KPA)


def absolute_pressure_kpa(p_barometric_kpa: ArrayLike, p_static_gauge_kpa: ArrayLike) -> FloatArray:
    """Absolute stack pressure [kPa] = barometric [kPa abs] + static (gauge) [kPa] (method.md § 5.1, WE1)."""
    return np.asarray(p_barometric_kpa, dtype=float) + np.asarray(p_static_gauge_kpa, dtype=float)


def dry_fraction(h2o_pct: ArrayLike) -> FloatArray:
    """1 - H2O/100 [-], the factor from a wet to a dry basis."""
    return 1.0 - np.asarray(h2o_pct, dtype=float) / 100.0


def wet_to_dry_flow(q_wet: ArrayLike, h2o_pct: ArrayLike) -> FloatArray:
    """Q_dry = Q_wet * (1 - H2O/100) [same unit as q_wet]."""
    return np.asarray(q_wet, dtype=float) * dry_fraction(h2o_pct)


def dry_to_wet_concentration(c_dry: ArrayLike, h2o_pct: ArrayLike) -> FloatArray:
    """C_wet = C_dry * (1 - H2O/100)."""
    return np.asarray(c_dry, dtype=float) * dry_fraction(h2o_pct)


def wet_to_dry_concentration(c_wet: ArrayLike, h2o_pct: ArrayLike) -> FloatArray:
    """C_dry = C_wet / (1 - H2O/100)."""
    return np.asarray(c_wet, dtype=float) / dry_fraction(h2o_pct)


def standard_dry_flow(
    q_actual_wet: ArrayLike, t_c: ArrayLike, p_abs_kpa: ArrayLike, h2o_pct: ArrayLike
) -> FloatArray:
    """Actual wet stack flow [m3/h] to normal dry flow [Nm3/h] (WE1 then WE2)."""
    return wet_to_dry_flow(actual_to_standard_flow(q_actual_wet, t_c, p_abs_kpa), h2o_pct)


def co2_mass_flow_t_per_h(
    q_n_dry: ArrayLike, co2_pct_dry: ArrayLike, density_kg_per_nm3: float = CO2_DENSITY_KG_PER_NM3
) -> FloatArray:
    """CO2 mass flow [t/h] from normal dry flow [Nm3/h] and dry CO2 concentration [vol %] (WE3)."""
    q = np.asarray(q_n_dry, dtype=float)
    c = np.asarray(co2_pct_dry, dtype=float)
    return q * (c / 100.0) * (density_kg_per_nm3 / 1000.0)


#: Samples per block of :func:`stack_co2_mass_flow_into`: its working set (the five inputs, the
#: output and one scratch array of 16 Ki float64 each, 896 KiB) stays in the L2 cache, so each
#: input is read from memory once (measured on the 2-core reference machine: 4 Ki and 64 Ki slower).
BLOCK_SAMPLES: Final = 16_384


def standard_dry_flow_into(
    out: FloatArray,
    q_actual_wet: ArrayLike,
    t_c: ArrayLike,
    p_abs_kpa: ArrayLike,
    h2o_pct: ArrayLike,
    scratch: FloatArray | None = None,
) -> FloatArray:
    """:func:`standard_dry_flow` [Nm3/h] written into ``out`` (float64, the inputs' shape) without
    temporaries of the full size; ``scratch`` (same shape as ``out``) is used if given. Returns ``out``.
    """
    np.add(t_c, T_N_K, out=out)
    np.divide(q_actual_wet, out, out=out)
    np.multiply(out, p_abs_kpa, out=out)
    np.multiply(out, T_N_K / P_N_KPA, out=out)
    dry = np.empty_like(out) if scratch is None else scratch
    np.multiply(h2o_pct, -0.01, out=dry)
    np.add(dry, 1.0, out=dry)
    np.multiply(out, dry, out=out)
    return out


def co2_mass_flow_into(
    out: FloatArray,
    q_n_dry: ArrayLike,
    co2_pct_dry: ArrayLike,
    density_kg_per_nm3: float = CO2_DENSITY_KG_PER_NM3,
) -> FloatArray:
    """:func:`co2_mass_flow_t_per_h` [t/h] written into ``out``; ``q_n_dry`` may be ``out`` itself."""
    np.multiply(q_n_dry, co2_pct_dry, out=out)
    np.multiply(out, density_kg_per_nm3 / 100_000.0, out=out)
    return out


def stack_co2_mass_flow_into(
    out: FloatArray,
    q_actual_wet: FloatArray,
    t_c: FloatArray | float,
    p_abs_kpa: FloatArray | float,
    h2o_pct: FloatArray | float,
    co2_pct_dry: FloatArray | float,
    density_kg_per_nm3: float = CO2_DENSITY_KG_PER_NM3,
    block: int = BLOCK_SAMPLES,
) -> FloatArray:
    """CO2 mass flow [t/h] from the stack's actual wet flow [m3/h], temperature [degC], absolute
    pressure [kPa], H2O [vol %] and dry CO2 [vol %], into the 1-D ``out``.

    The same result as ``co2_mass_flow_t_per_h(standard_dry_flow(...), co2)`` to rounding, computed
    block by block so that the intermediate results never leave the cache (long series: a month of
    1-s samples). Inputs are 1-D arrays of ``out``'s length, or scalars.
    """
    n = len(out)
    scratch = np.empty(min(block, n))

    def part(a: FloatArray | float, lo: int, hi: int) -> FloatArray | float:
        return a[lo:hi] if isinstance(a, np.ndarray) and a.ndim else a

    for lo in range(0, n, block):
        hi = min(lo + block, n)
        o = out[lo:hi]
        standard_dry_flow_into(
            o,
            q_actual_wet[lo:hi],
            part(t_c, lo, hi),
            part(p_abs_kpa, lo, hi),
            part(h2o_pct, lo, hi),
            scratch[: hi - lo],
        )
        co2_mass_flow_into(o, o, part(co2_pct_dry, lo, hi), density_kg_per_nm3)
    return out


def mass_flow_t_per_h(q_n: ArrayLike, conc_mg_per_nm3: ArrayLike) -> FloatArray:
    """Mass flow of one component [t/h] = Q_N [Nm3/h] * C [mg/Nm3] * 1e-9 [t/mg].

    Flow and concentration must be on the same moisture basis (docs/method.md § 5.3).
    """
    return np.asarray(q_n, dtype=float) * np.asarray(conc_mg_per_nm3, dtype=float) * 1e-9


def co2_from_co_t_per_h(q_n_dry: ArrayLike, co_mg_per_nm3_dry: ArrayLike) -> FloatArray:
    """CO emitted, counted as molar-equivalent CO2 [t/h] (MRR 2018/2066 Art. 43(1); WE5).

    q_n_dry [Nm3/h, dry], co_mg_per_nm3_dry [mg/Nm3, dry]; add the result to the reported CO2.
    """
    return mass_flow_t_per_h(q_n_dry, np.asarray(co_mg_per_nm3_dry, dtype=float) * CO2_PER_CO)


def intensity_kg_per_t(co2_t: ArrayLike, clinker_t: ArrayLike) -> FloatArray:
    """CO2 per tonne of clinker [kg/t] = 1000 * sum CO2 [t] / sum clinker [t] (WE4).

    Defined only where clinker > 0; NaN elsewhere (a stopped kiln has no intensity).
    """
    co2 = np.asarray(co2_t, dtype=float)
    cli = np.asarray(clinker_t, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(cli > 0, 1000.0 * co2 / np.where(cli > 0, cli, 1.0), np.nan)
