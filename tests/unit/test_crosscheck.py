"""Mass-balance corroboration of the CEMS CO2 (MRR Art. 46): WE10."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from analytics import crosscheck
from analytics.emissions import co2_mass_flow_t_per_h

from .worked_examples import EXACT, ROW_ARGS, RTOL, assert_reproduces, exp, inp, mid, row


def _we10_ef() -> np.ndarray:
    return crosscheck.clinker_emission_factor(
        inp("WE10", "CaO_clinker"),
        inp("WE10", "MgO_clinker"),
        inp("WE10", "CaO_non_carbonate"),
        inp("WE10", "MgO_non_carbonate"),
    )


def _we10_fuel(clinker: float) -> np.ndarray:
    # coal at NCV 25.8 GJ/t burnt at the specific thermal energy of 3.25 GJ/t clinker
    ncv = 25.8
    heat_gj = inp("WE10", "specific_thermal_energy") * clinker
    return crosscheck.fuel_co2(heat_gj / ncv, ncv, inp("WE10", "fuel_EF"))


def _we10_cross_check(
    threshold_pct: float = crosscheck.DEFAULT_DEVIATION_THRESHOLD_PCT,
) -> crosscheck.CrossCheck:
    clinker = inp("WE10", "clinker_rate")
    return crosscheck.cross_check(
        inp("WE10", "CEMS_result"),
        clinker,
        _we10_fuel(clinker),
        _we10_ef(),
        inp("WE10", "raw_meal_to_clinker"),
        inp("WE10", "TOC_raw_meal"),
        threshold_pct=threshold_pct,
    )


def _we10_day() -> crosscheck.CrossCheck:
    # a kiln-day: 24 h of the WE10 rates; the deviation is the same as per hour
    clinker = 24 * inp("WE10", "clinker_rate")
    return crosscheck.cross_check(
        24 * inp("WE10", "CEMS_result"), clinker, _we10_fuel(clinker), _we10_ef(), 1.55, 0.2
    )


def _we10_toc(clinker: float) -> np.ndarray:
    return crosscheck.toc_co2(clinker, inp("WE10", "raw_meal_to_clinker"), inp("WE10", "TOC_raw_meal"))


WORKED_EXAMPLES = [
    # the parts of the balance
    row("WE10-EF_clinker", _we10_ef, mid("WE10", "EF_clinker")),
    row(
        "WE10-calcination_CO2",
        lambda: crosscheck.calcination_co2(inp("WE10", "clinker_rate"), _we10_ef()),
        mid("WE10", "calcination_CO2"),
    ),
    row(
        "WE10-heat_input",
        lambda: inp("WE10", "specific_thermal_energy") * inp("WE10", "clinker_rate"),
        mid("WE10", "heat_input"),
    ),
    row("WE10-fuel_CO2", lambda: _we10_fuel(inp("WE10", "clinker_rate")), mid("WE10", "fuel_CO2")),
    row("WE10-TOC-default", lambda: crosscheck.TOC_DEFAULT_PCT, inp("WE10", "TOC_raw_meal"), EXACT),
    row("WE10-TOC_CO2_specific", lambda: _we10_toc(1.0), mid("WE10", "TOC_CO2_specific")),
    row("WE10-TOC_CO2", lambda: _we10_toc(inp("WE10", "clinker_rate")), mid("WE10", "TOC_CO2")),
    row(
        "WE10-calcination-CSI-default",
        lambda: crosscheck.calcination_co2(inp("WE10", "clinker_rate")),
        exp("WE10", "calcination_with_CSI_default_525"),
    ),
    # the cross-check
    row("WE10-total", lambda: _we10_cross_check().total_t, exp("WE10", "total_calculated")),
    row(
        "WE10-intensity", lambda: _we10_cross_check().intensity_kg_per_t, exp("WE10", "intensity_calculated")
    ),
    row("WE10-deviation", lambda: _we10_cross_check().deviation_pct, exp("WE10", "CEMS_minus_calc")),
    # -2.38 % is inside the default 5 %, outside 2 %
    row("WE10-not-flagged-at-5pct", lambda: bool(_we10_cross_check().flagged), False, EXACT),
    row("WE10-flagged-at-2pct", lambda: bool(_we10_cross_check(2.0).flagged), True, EXACT),
    # a kiln-day
    row("WE10-day-total", lambda: _we10_day().total_t, 24 * exp("WE10", "total_calculated")),
    row("WE10-day-deviation", lambda: _we10_day().deviation_pct, exp("WE10", "CEMS_minus_calc")),
]


@pytest.mark.parametrize(ROW_ARGS, WORKED_EXAMPLES)
def test_worked_examples(computed, expected, rtol, atol):
    assert_reproduces(computed, expected, rtol, atol)


def test_fuels_along_last_axis():
    # two kilns, three fuels (coal, petcoke, natural gas) [t/day], NCV [GJ/t], EF [t CO2/TJ]
    fuel_t = np.array([[500.0, 100.0, 0.0], [0.0, 0.0, 300.0]])
    ncv = np.array([25.8, 32.5, 48.0])
    ef = np.array(
        [
            crosscheck.IPCC_FUEL_EF_T_PER_TJ[k]
            for k in ("other_bituminous_coal", "petroleum_coke", "natural_gas")
        ]
    )
    got = crosscheck.fuel_co2(fuel_t, ncv, ef)
    assert_allclose(
        got, [(500 * 25.8 * 94.6 + 100 * 32.5 * 97.5) / 1000, 300 * 48.0 * 56.1 / 1000], rtol=1e-12
    )
    assert_allclose(crosscheck.fuel_co2(fuel_t, ncv, ef, oxidation_factor=0.99), got * 0.99, rtol=1e-12)
    assert_allclose(crosscheck.fuel_co2(np.empty((2, 0)), np.empty(0), np.empty(0)), [0.0, 0.0])


@pytest.mark.parametrize(
    ("cems", "clinker", "fuel", "deviation", "flagged", "intensity"),
    [
        (0.0, 0.0, 0.0, np.nan, False, np.nan),
        (10.0, 0.0, 10.0, 0.0, False, np.nan),
        (np.nan, 208.3, 64.0, np.nan, False, None),
        (175.0, np.nan, 64.0, np.nan, False, np.nan),
        (175.0, 208.3, np.nan, np.nan, False, np.nan),
        (200.0, 208.3333333, 64.0520, 13.72, True, 844.184),
    ],
    ids=["kiln-stopped", "zero-clinker-fuel-only", "nan-cems", "nan-clinker", "nan-fuel", "flagged"],
)
def test_cross_check_edges(cems, clinker, fuel, deviation, flagged, intensity):
    out = crosscheck.cross_check(cems, clinker, fuel, 0.525367, 1.55, 0.2)
    assert_allclose(out.deviation_pct, deviation, rtol=1e-3)
    assert bool(out.flagged) is flagged
    if intensity is not None:
        assert_allclose(out.intensity_kg_per_t, intensity, rtol=RTOL)


@pytest.mark.parametrize(
    ("cao", "mgo", "cao_nc", "mgo_nc", "expected"),
    [
        (65.5, 1.6, 0.8, 0.0, 0.525367),
        (0.0, 0.0, 0.0, 0.0, 0.0),
        (100.0, 0.0, 0.0, 0.0, 0.785),
        (0.0, 100.0, 0.0, 0.0, 1.092),
        (np.nan, 1.6, 0.0, 0.0, np.nan),
    ],
    ids=["we10", "zero", "pure-cao", "pure-mgo", "nan"],
)
def test_clinker_ef_table(cao, mgo, cao_nc, mgo_nc, expected):
    assert_allclose(crosscheck.clinker_emission_factor(cao, mgo, cao_nc, mgo_nc), expected, rtol=1e-12)


def test_constants_match_stoichiometry():
    assert_allclose(crosscheck.MR_CAO, 44.0095 / 56.0774, rtol=3e-3)
    assert_allclose(crosscheck.MR_MGO, 44.0095 / 40.3044, rtol=3e-3)


def test_flow_from_mass_balance_inverts_mass_flow():
    q = crosscheck.flow_from_mass_balance(exp("WE3", "m_CO2"), inp("WE3", "CO2_dry"))
    assert_allclose(q, inp("WE3", "Q_N_dry"), rtol=RTOL)
    rng = np.random.default_rng(0)
    flow = rng.uniform(3e5, 5e5, size=(2, 24))
    c = rng.uniform(18, 28, size=(2, 24))
    assert_allclose(crosscheck.flow_from_mass_balance(co2_mass_flow_t_per_h(flow, c), c), flow, rtol=1e-12)
    assert_array_equal(
        np.isnan(crosscheck.flow_from_mass_balance([170.0, 170.0, np.nan], [0.0, np.nan, 22.0])), True
    )


@pytest.mark.parametrize(
    "func",
    [
        lambda a: crosscheck.clinker_emission_factor(a, a, a, a),
        lambda a: crosscheck.calcination_co2(a),
        lambda a: crosscheck.toc_co2(a),
        lambda a: crosscheck.deviation_pct(a, a),
        lambda a: crosscheck.exceeds_threshold(a),
        lambda a: crosscheck.flow_from_mass_balance(a, a),
        lambda a: crosscheck.cross_check(a, a, a).total_t,
        lambda a: crosscheck.cross_check(a, a, a).flagged,
    ],
    ids=["ef", "calcination", "toc", "deviation", "threshold", "flow", "total", "flag"],
)
def test_empty_arrays(func):
    assert func(np.array([], dtype=float)).shape == (0,)
