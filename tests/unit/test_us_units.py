"""US conventions: 40 CFR 75 App. F Eq. F-11 / F-2 and 40 CFR 98 Eq. C-6 (WE7)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics import us_units
from analytics.emissions import co2_mass_flow_t_per_h, dry_to_wet_concentration

from .worked_examples import EXACT, ROW_ARGS, RTOL, RTOL_DEFAULT, assert_reproduces, exp, inp, mid, row


def _we7_q_h() -> np.ndarray:
    return us_units.nm3_to_scf(inp("WE7", "Q_N_wet"))


def _we7_f11() -> np.ndarray:
    return us_units.f11_short_tons_per_h(inp("WE7", "CO2_wet"), _we7_q_h())


def _we7_f11_deviation_from_eu() -> np.ndarray:
    metric = us_units.short_tons_to_metric(_we7_f11())
    eu = co2_mass_flow_t_per_h(inp("WE7", "Q_N_wet"), inp("WE7", "CO2_wet"))
    return (metric - eu) / eu * 100


WORKED_EXAMPLES = [
    # WE7 constants, and the regulatory constants against their derivations (docs/method.md § 11)
    row("WE7-scf_per_Nm3", lambda: us_units.SCF_PER_NM3, mid("WE7", "scf_per_Nm3_(35.31467*293.15/273.15)")),
    row("WE7-K_F11", lambda: us_units.K_PART75_CO2, mid("WE7", "K_F11"), EXACT),
    row("WE7-K_C6", lambda: us_units.K_PART98_C6, mid("WE7", "K_C6"), EXACT),
    row("K_F11-derivation", lambda: us_units.K_PART75_CO2, 44.01 / 385.33 / 2000 / 100, rtol=2e-3),
    row("K_C6-derivation", lambda: us_units.K_PART98_C6, 44.0095 / 849.5 / 1000 / 100, rtol=2e-4),
    # Part 75
    row("WE7-Q_h", _we7_q_h, mid("WE7", "Q_h")),
    row("WE7-F11", _we7_f11, exp("WE7", "E_h_F11")),
    row(
        "WE7-F2-dry-conc",
        lambda: us_units.f2_short_tons_per_h(inp("WE7", "CO2_dry"), _we7_q_h(), inp("WE7", "H2O")),
        exp("WE7", "E_h_F2_dry_conc"),
    ),
    row("WE7-F11-metric", lambda: us_units.short_tons_to_metric(_we7_f11()), exp("WE7", "E_h_F11_metric")),
    # the JSON prints this deviation to three decimals [%]; compare at that precision
    row(
        "WE7-F11-vs-WE3",
        _we7_f11_deviation_from_eu,
        exp("WE7", "deviation_F11_metric_vs_WE3"),
        rtol=RTOL_DEFAULT,
        atol=5e-4,
    ),
    # Part 98
    row(
        "WE7-C6",
        lambda: us_units.c6_metric_t_per_h(inp("WE7", "CO2_wet"), _we7_q_h()),
        exp("WE7", "E_h_C6"),
    ),
    # Eq. C-7: a dry concentration is brought to the wet basis of the flow first
    row(
        "WE7-C6-via-C7",
        lambda: us_units.c6_metric_t_per_h(
            dry_to_wet_concentration(inp("WE7", "CO2_dry"), inp("WE7", "H2O")), _we7_q_h()
        ),
        exp("WE7", "E_h_C6"),
    ),
]


@pytest.mark.parametrize(ROW_ARGS, WORKED_EXAMPLES)
def test_worked_examples(computed, expected, rtol, atol):
    assert_reproduces(computed, expected, rtol, atol)


@pytest.mark.parametrize(
    ("convention", "expected_key"),
    [
        ("eu_mrr", ("WE3", "m_CO2")),
        ("us_part75", ("WE7", "E_h_F11_metric")),
        ("us_part98", ("WE7", "E_h_C6")),
    ],
)
def test_reporting_convention(convention, expected_key):
    got = us_units.co2_metric_t_per_h(inp("WE7", "Q_N_wet"), inp("WE7", "CO2_wet"), convention)
    assert_allclose(got, exp(*expected_key), rtol=RTOL)
    same = us_units.co2_metric_t_per_h(
        inp("WE7", "Q_N_wet"), inp("WE7", "CO2_wet"), us_units.ReportingConvention(convention)
    )
    assert_allclose(same, got, rtol=0)


def test_unknown_convention():
    with pytest.raises(ValueError, match="epa"):
        us_units.co2_metric_t_per_h(1.0, 1.0, "epa")


@pytest.mark.parametrize("convention", list(us_units.ReportingConvention))
@pytest.mark.parametrize(
    ("q", "c", "expected"),
    [(0.0, 19.58, 0.0), (446588.0, 0.0, 0.0), (np.nan, 19.58, np.nan), (446588.0, np.nan, np.nan)],
    ids=["zero-flow", "zero-co2", "nan-flow", "nan-co2"],
)
def test_edges(convention, q, c, expected):
    assert_allclose(us_units.co2_metric_t_per_h(q, c, convention), expected)


@pytest.mark.parametrize("convention", list(us_units.ReportingConvention))
def test_empty_and_shape(convention):
    assert us_units.co2_metric_t_per_h(np.array([]), np.array([]), convention).shape == (0,)
    out = us_units.co2_metric_t_per_h(np.full((2, 24), 4e5), np.full((2, 24), 19.0), convention)
    assert out.shape == (2, 24)


def test_f2_nan_moisture_and_empty():
    assert np.isnan(us_units.f2_short_tons_per_h(22.0, 1.7e7, np.nan))
    assert us_units.f2_short_tons_per_h(np.array([]), np.array([]), np.array([])).shape == (0,)
    assert us_units.nm3_to_scf(np.array([])).shape == (0,)
