"""Constants and the stack-gas formulas of docs/method.md § 2 and § 5, as the simulated instruments see them.

The simulator keeps its own copy of these few lines on purpose: it stands in for the plant and must not
share code with the analytics it is used to test.
"""

from __future__ import annotations

import numpy as np

T_N_K = 273.15
"""Normal temperature [K] (IED 2010/75/EU Annex VI Part 4; docs/method.md § 2.1)."""
P_N_KPA = 101.325
"""Normal pressure [kPa] (ISO standard atmosphere; docs/method.md § 2.1)."""
V_M_L_PER_MOL = 22.414
"""Ideal molar volume at T_N, P_N [L/mol] (CODATA 22.41396954, rounded as in docs/method.md § 2.1)."""
M_CO2_G_PER_MOL = 44.0095
"""Molar mass of CO2 [g/mol] (IUPAC; docs/method.md § 2.1)."""
RHO_CO2_KG_PER_NM3 = M_CO2_G_PER_MOL / V_M_L_PER_MOL
"""CO2 density as a flue-gas component [kg/Nm3] (docs/method.md § 2.2: 1.963483)."""
X_O2_AIR = 0.20946
"""O2 mole fraction of dry air [-] (US Standard Atmosphere 1976)."""
EF_CALCINATION_T_PER_T = 0.525
"""Calcination emission factor [t CO2 / t clinker] (CSI/GCCA protocol default B1; docs/method.md § 2.4)."""
EF_COAL_T_PER_TJ = 94.6
"""Other bituminous coal emission factor [t CO2 / TJ NCV] (IPCC 2006 Vol. 2 Table 2.2; method.md § 2.4)."""
NCV_COAL_GJ_PER_T = 25.8
"""Net calorific value of the kiln coal [GJ/t] (docs/method.md § 14, WE10)."""
O2_PER_FUEL_CO2 = 1.16
"""Combustion O2 demand per mol of fuel CO2 [mol/mol]: bituminous coal of about 75 % C, 5 % H, 8 % O by
mass gives (6.25 + 1.24 - 0.25) mol O2 per 6.25 mol CO2 [derived, typical ultimate analysis]."""


def normal_wet_flow(
    q_actual_m3_h: np.ndarray, temp_c: np.ndarray, p_baro_kpa: np.ndarray, p_static_kpa: np.ndarray
) -> np.ndarray:
    """Actual wet flow [m3/h] at stack T [°C], pressure [kPa] → wet normal flow [Nm3/h] (method.md § 5.2)."""
    p_abs = p_baro_kpa + p_static_kpa
    return q_actual_m3_h * (T_N_K / (temp_c + T_N_K)) * (p_abs / P_N_KPA)


def dry_flow(q_wet_nm3_h: np.ndarray, h2o_pct: np.ndarray) -> np.ndarray:
    """Wet normal flow [Nm3/h] and H2O [vol % wet] → dry normal flow [Nm3/h] (docs/method.md § 5.3)."""
    return q_wet_nm3_h * (1.0 - h2o_pct / 100.0)


def co2_mass_flow(q_dry_nm3_h: np.ndarray, co2_dry_pct: np.ndarray) -> np.ndarray:
    """Dry normal flow [Nm3/h] and CO2 [vol % dry] → CO2 mass flow [t/h] (docs/method.md § 5.4)."""
    return q_dry_nm3_h * (co2_dry_pct / 100.0) * RHO_CO2_KG_PER_NM3 / 1000.0


def measured_co2_t_per_h(signals: dict[str, np.ndarray]) -> np.ndarray:
    """CO2 mass flow [t/h] computed from the instrument signals only, the way a DAHS does."""
    q_wet = normal_wet_flow(
        signals["stack.flow"],
        signals["stack.temperature"],
        signals["stack.barometric_pressure"],
        signals["stack.static_pressure"],
    )
    return co2_mass_flow(dry_flow(q_wet, signals["stack.h2o"]), signals["stack.co2"])
