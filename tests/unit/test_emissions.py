"""Flow normalisation, CO2 mass flow, CO as CO2 and intensity: WE1-WE5 (docs/method.md § 14)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics import emissions

from .worked_examples import EXACT, ROW_ARGS, RTOL, assert_reproduces, exp, inp, mid, row


def _we1_p_abs() -> np.ndarray:
    return emissions.absolute_pressure_kpa(inp("WE1", "p_barometric"), inp("WE1", "p_static_gauge"))


def _we1_t_k() -> float:
    return inp("WE1", "t_stack") + emissions.T_N_K


def _we2_co2_wet() -> np.ndarray:
    return emissions.dry_to_wet_concentration(inp("WE2", "CO2_dry"), inp("WE2", "H2O"))


def _we1_to_we2_q_dry() -> np.ndarray:
    return emissions.standard_dry_flow(
        inp("WE1", "Q_actual"), inp("WE1", "t_stack"), _we1_p_abs(), inp("WE2", "H2O")
    )


def _we5_co2_from_co() -> np.ndarray:
    return emissions.co2_from_co_t_per_h(inp("WE5", "Q_N_dry"), inp("WE5", "CO_dry"))


WORKED_EXAMPLES = [
    # constants
    row("rho_CO2", lambda: emissions.CO2_DENSITY_KG_PER_NM3, mid("WE3", "rho_CO2_ideal")),
    row("CO2_per_CO", lambda: emissions.CO2_PER_CO, mid("WE5", "factor_M_CO2/M_CO")),
    row("M_CO2", lambda: emissions.M_CO2, inp("WE3", "M_CO2"), EXACT),
    row("V_m", lambda: emissions.V_M, inp("WE3", "V_m"), EXACT),
    # WE1: actual -> standard flow
    row("WE1-p_abs", _we1_p_abs, mid("WE1", "p_abs")),
    row("WE1-T_stack", _we1_t_k, mid("WE1", "T_stack")),
    row(
        "WE1-temperature_factor",
        lambda: emissions.T_N_K / _we1_t_k(),
        mid("WE1", "temperature_factor_273.15/T"),
    ),
    row(
        "WE1-pressure_factor",
        lambda: _we1_p_abs() / emissions.P_N_KPA,
        mid("WE1", "pressure_factor_p/101.325"),
    ),
    row(
        "WE1-Q_N_wet",
        lambda: emissions.actual_to_standard_flow(
            inp("WE1", "Q_actual"), inp("WE1", "t_stack"), _we1_p_abs()
        ),
        exp("WE1", "Q_N_wet"),
    ),
    # WE2: wet -> dry
    row(
        "WE2-dry_factor",
        lambda: emissions.dry_fraction(inp("WE2", "H2O")),
        mid("WE2", "dry_factor_(1-H2O/100)"),
    ),
    row(
        "WE2-Q_N_dry",
        lambda: emissions.wet_to_dry_flow(inp("WE2", "Q_N_wet"), inp("WE2", "H2O")),
        exp("WE2", "Q_N_dry"),
    ),
    row("WE2-CO2_wet", _we2_co2_wet, exp("WE2", "CO2_wet")),
    row(
        "WE2-CO2_dry_from_wet",
        lambda: emissions.wet_to_dry_concentration(_we2_co2_wet(), inp("WE2", "H2O")),
        exp("WE2", "check_CO2_dry_from_wet"),
    ),
    # WE3: CO2 mass flow
    row(
        "WE3-CO2_volume_flow",
        lambda: inp("WE3", "Q_N_dry") * inp("WE3", "CO2_dry") / 100,
        mid("WE3", "CO2_volume_flow"),
    ),
    row(
        "WE3-CO2_mass_conc",
        lambda: inp("WE3", "CO2_dry") / 100 * emissions.CO2_DENSITY_KG_PER_NM3 * 1000,
        mid("WE3", "CO2_mass_conc"),
    ),
    row(
        "WE3-m_CO2",
        lambda: emissions.co2_mass_flow_t_per_h(inp("WE3", "Q_N_dry"), inp("WE3", "CO2_dry")),
        exp("WE3", "m_CO2"),
    ),
    # same mass on the wet basis: wet flow x wet concentration (WE2 values)
    row(
        "WE3-m_CO2-wet-basis",
        lambda: emissions.co2_mass_flow_t_per_h(inp("WE2", "Q_N_wet"), exp("WE2", "CO2_wet")),
        exp("WE3", "m_CO2_same_via_wet_flow_and_wet_conc"),
    ),
    row(
        "WE3-m_CO2-real-gas-density",
        lambda: emissions.co2_mass_flow_t_per_h(
            inp("WE3", "Q_N_dry"), inp("WE3", "CO2_dry"), density_kg_per_nm3=1.9768
        ),
        exp("WE3", "m_CO2_if_real_gas_density_1.9768_used"),
    ),
    # WE1 to WE3 in one chain
    row("WE1-WE2-Q_N_dry", _we1_to_we2_q_dry, exp("WE2", "Q_N_dry")),
    row(
        "WE1-WE3-m_CO2",
        lambda: emissions.co2_mass_flow_t_per_h(_we1_to_we2_q_dry(), inp("WE2", "CO2_dry")),
        exp("WE3", "m_CO2"),
    ),
    # WE4: intensity
    row(
        "WE4-clinker_rate_hourly",
        lambda: inp("WE4", "clinker_rate") / 24.0,
        mid("WE4", "clinker_rate_hourly"),
    ),
    row(
        "WE4-intensity",
        lambda: emissions.intensity_kg_per_t(inp("WE4", "m_CO2"), inp("WE4", "clinker_rate") / 24.0),
        exp("WE4", "intensity"),
    ),
    # WE5: CO counted as CO2
    row("WE5-CO2_from_CO", _we5_co2_from_co, exp("WE5", "CO2_from_CO")),
    row(
        "WE5-share_of_WE3",
        lambda: (
            _we5_co2_from_co()
            / emissions.co2_mass_flow_t_per_h(inp("WE5", "Q_N_dry"), inp("WE3", "CO2_dry"))
            * 100
        ),
        exp("WE5", "share_of_WE3"),
    ),
]


@pytest.mark.parametrize(ROW_ARGS, WORKED_EXAMPLES)
def test_worked_examples(computed, expected, rtol, atol):
    assert_reproduces(computed, expected, rtol, atol)


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
