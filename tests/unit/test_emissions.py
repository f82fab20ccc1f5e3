"""Flow normalisation, CO2 mass flow, CO as CO2 and intensity: WE1-WE5 of domain.md § 6."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics import emissions

from .worked_examples import RTOL, exp, inp, mid


def test_constants():
    assert_allclose(emissions.CO2_DENSITY_KG_PER_NM3, mid("WE3", "rho_CO2_ideal"), rtol=RTOL)
    assert_allclose(emissions.CO2_PER_CO, mid("WE5", "factor_M_CO2/M_CO"), rtol=RTOL)
    assert inp("WE3", "M_CO2") == emissions.M_CO2
    assert inp("WE3", "V_m") == emissions.V_M


def test_we1_actual_to_standard_flow():
    p_abs = emissions.absolute_pressure_kpa(inp("WE1", "p_barometric"), inp("WE1", "p_static_gauge"))
    assert_allclose(p_abs, mid("WE1", "p_abs"), rtol=RTOL)
    t_k = inp("WE1", "t_stack") + emissions.T_N_K
    assert_allclose(t_k, mid("WE1", "T_stack"), rtol=RTOL)
    assert_allclose(emissions.T_N_K / t_k, mid("WE1", "temperature_factor_273.15/T"), rtol=RTOL)
    assert_allclose(p_abs / emissions.P_N_KPA, mid("WE1", "pressure_factor_p/101.325"), rtol=RTOL)
    q_n = emissions.actual_to_standard_flow(inp("WE1", "Q_actual"), inp("WE1", "t_stack"), p_abs)
    assert_allclose(q_n, exp("WE1", "Q_N_wet"), rtol=RTOL)


def test_we2_wet_to_dry():
    h2o = inp("WE2", "H2O")
    assert_allclose(emissions.dry_fraction(h2o), mid("WE2", "dry_factor_(1-H2O/100)"), rtol=RTOL)
    assert_allclose(emissions.wet_to_dry_flow(inp("WE2", "Q_N_wet"), h2o), exp("WE2", "Q_N_dry"), rtol=RTOL)
    co2_wet = emissions.dry_to_wet_concentration(inp("WE2", "CO2_dry"), h2o)
    assert_allclose(co2_wet, exp("WE2", "CO2_wet"), rtol=RTOL)
    assert_allclose(
        emissions.wet_to_dry_concentration(co2_wet, h2o), exp("WE2", "check_CO2_dry_from_wet"), rtol=RTOL
    )


def test_we3_co2_mass_flow():
    q, c = inp("WE3", "Q_N_dry"), inp("WE3", "CO2_dry")
    assert_allclose(q * c / 100, mid("WE3", "CO2_volume_flow"), rtol=RTOL)
    assert_allclose(c / 100 * emissions.CO2_DENSITY_KG_PER_NM3 * 1000, mid("WE3", "CO2_mass_conc"), rtol=RTOL)
    assert_allclose(emissions.co2_mass_flow_t_per_h(q, c), exp("WE3", "m_CO2"), rtol=RTOL)
    # Same mass on the wet basis: wet flow x wet concentration (WE2 values).
    wet = emissions.co2_mass_flow_t_per_h(inp("WE2", "Q_N_wet"), exp("WE2", "CO2_wet"))
    assert_allclose(wet, exp("WE3", "m_CO2_same_via_wet_flow_and_wet_conc"), rtol=RTOL)
    real_gas = emissions.co2_mass_flow_t_per_h(q, c, density_kg_per_nm3=1.9768)
    assert_allclose(real_gas, exp("WE3", "m_CO2_if_real_gas_density_1.9768_used"), rtol=RTOL)


def test_we1_to_we3_chain():
    q_dry = emissions.standard_dry_flow(
        inp("WE1", "Q_actual"),
        inp("WE1", "t_stack"),
        emissions.absolute_pressure_kpa(inp("WE1", "p_barometric"), inp("WE1", "p_static_gauge")),
        inp("WE2", "H2O"),
    )
    assert_allclose(q_dry, exp("WE2", "Q_N_dry"), rtol=RTOL)
    assert_allclose(
        emissions.co2_mass_flow_t_per_h(q_dry, inp("WE2", "CO2_dry")), exp("WE3", "m_CO2"), rtol=RTOL
    )


def test_we4_intensity():
    clinker_t_per_h = inp("WE4", "clinker_rate") / 24.0
    assert_allclose(clinker_t_per_h, mid("WE4", "clinker_rate_hourly"), rtol=RTOL)
    assert_allclose(
        emissions.intensity_kg_per_t(inp("WE4", "m_CO2"), clinker_t_per_h), exp("WE4", "intensity"), rtol=RTOL
    )


def test_we5_co_counted_as_co2():
    co2_from_co = emissions.co2_from_co_t_per_h(inp("WE5", "Q_N_dry"), inp("WE5", "CO_dry"))
    assert_allclose(co2_from_co, exp("WE5", "CO2_from_CO"), rtol=RTOL)
    share = co2_from_co / emissions.co2_mass_flow_t_per_h(inp("WE5", "Q_N_dry"), inp("WE3", "CO2_dry")) * 100
    assert_allclose(share, exp("WE5", "share_of_WE3"), rtol=RTOL)


def test_mass_flow_units():
    # 1e6 Nm3/h at 1000 mg/Nm3 is 1e9 mg/h = 1 t/h
    assert_allclose(emissions.mass_flow_t_per_h(1e6, 1000.0), 1.0, rtol=1e-12)


@pytest.mark.parametrize(
    ("q", "c", "expected"),
    [
        (0.0, 22.0, 0.0),
        (397464.0, 0.0, 0.0),
        (np.nan, 22.0, np.nan),
        (397464.0, np.nan, np.nan),
    ],
    ids=["zero-flow", "zero-co2", "nan-flow", "nan-co2"],
)
def test_co2_mass_flow_edges(q, c, expected):
    assert_allclose(emissions.co2_mass_flow_t_per_h(q, c), expected)
    assert_allclose(emissions.co2_from_co_t_per_h(q, c), 0.0 if expected == 0.0 else np.nan)


@pytest.mark.parametrize(
    ("co2_t", "clinker_t", "expected"),
    [
        (171.691, 208.3333333, 824.1168),
        (171.691, 0.0, np.nan),
        (0.0, 0.0, np.nan),
        (171.691, -1.0, np.nan),
        (np.nan, 208.3, np.nan),
        (171.691, np.nan, np.nan),
        (0.0, 208.3, 0.0),
    ],
    ids=["we4", "zero-clinker", "kiln-stopped", "negative-clinker", "nan-co2", "nan-clinker", "zero-co2"],
)
def test_intensity_edges(co2_t, clinker_t, expected):
    assert_allclose(emissions.intensity_kg_per_t(co2_t, clinker_t), expected, rtol=RTOL)


@pytest.mark.parametrize(
    "func",
    [
        lambda a: emissions.actual_to_standard_flow(a, a, a),
        lambda a: emissions.absolute_pressure_kpa(a, a),
        lambda a: emissions.standard_dry_flow(a, a, a, a),
        lambda a: emissions.wet_to_dry_concentration(a, a),
        lambda a: emissions.dry_to_wet_concentration(a, a),
        lambda a: emissions.co2_mass_flow_t_per_h(a, a),
        lambda a: emissions.mass_flow_t_per_h(a, a),
        lambda a: emissions.co2_from_co_t_per_h(a, a),
        lambda a: emissions.intensity_kg_per_t(a, a),
    ],
    ids=[
        "std-flow",
        "p-abs",
        "std-dry-flow",
        "wet-to-dry",
        "dry-to-wet",
        "co2",
        "mass",
        "co-as-co2",
        "intensity",
    ],
)
def test_empty_arrays(func):
    out = func(np.array([], dtype=float))
    assert out.shape == (0,)
    assert out.dtype == np.float64


def test_vectorised_over_kilns_and_hours():
    rng = np.random.default_rng(7)
    q = rng.uniform(3e5, 5e5, size=(2, 24))
    c = rng.uniform(18, 28, size=(2, 24))
    out = emissions.co2_mass_flow_t_per_h(q, c)
    assert out.shape == (2, 24)
    assert_allclose(out[1, 5], q[1, 5] * c[1, 5] / 100 * 44.0095 / 22.414 / 1000, rtol=1e-12)
    # Mass is invariant to the moisture basis: Q_dry x C_dry = Q_wet x C_wet.
    h2o = rng.uniform(6, 15, size=(2, 24))
    assert_allclose(
        emissions.co2_mass_flow_t_per_h(
            q / emissions.dry_fraction(h2o), emissions.dry_to_wet_concentration(c, h2o)
        ),
        out,
        rtol=1e-12,
    )
