"""Per-value corrections: NE 43 scaling (WE11), QAL2, ppm <-> mg/Nm3 and 10 % O2 (WE6), CO as CO2 (WE5)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from analytics import corrections
from analytics import quality as qc
from analytics.emissions import M_CO, wet_to_dry_concentration

from .worked_examples import EXACT, ROW_ARGS, RTOL, RTOL_DEFAULT, assert_reproduces, exp, inp, mid, row

# --- WE11: 4-20 mA and NAMUR NE 43 -------------------------------------------------------------


def _we11(i: int) -> tuple[float, int]:
    """Value and quality of the i-th WE11 current, scaled together with the others."""
    lo, hi = (float(v) for v in inp("WE11", "range").split("-"))
    out = corrections.scale_4_20ma(np.array(inp("WE11", "currents")), lo, hi)
    return float(out.value[i]), int(out.quality[i])


def _we11_valid(i: int) -> bool:
    return bool(qc.is_valid(np.array([_we11(i)[1]], dtype=np.uint8))[0])


WE11_ROWS = [
    # 15.2, 4.0 and 20.0 mA are measurements
    row("WE11-15.2mA", lambda: _we11(0)[0], exp("WE11", "15.2mA"), RTOL_DEFAULT, 1e-12),
    row("WE11-4.0mA", lambda: _we11(1)[0], exp("WE11", "4.0mA"), RTOL_DEFAULT, 1e-12),
    row("WE11-20.0mA", lambda: _we11(2)[0], exp("WE11", "20.0mA"), RTOL_DEFAULT, 1e-12),
    row("WE11-15.2mA-valid", lambda: _we11_valid(0), True, EXACT),
    row("WE11-4.0mA-valid", lambda: _we11_valid(1), True, EXACT),
    row("WE11-20.0mA-valid", lambda: _we11_valid(2), True, EXACT),
    # 3.7 mA: under-range band, flagged, not a valid 0; 3.2 and 21.5 mA: failure, invalid
    row("WE11-3.7mA-invalid", lambda: _we11_valid(3), False, EXACT),
    row("WE11-3.2mA-invalid", lambda: _we11_valid(4), False, EXACT),
    row("WE11-21.5mA-invalid", lambda: _we11_valid(5), False, EXACT),
    row("WE11-3.7mA-out-of-range", lambda: bool(_we11(3)[1] & qc.OUT_OF_RANGE), True, EXACT),
    row("WE11-3.7mA-uncertain", lambda: _we11(3)[1] & qc.CLASS_MASK, qc.UNCERTAIN, EXACT),
    row("WE11-3.7mA-not-zero", lambda: _we11(3)[0] != 0.0, True, EXACT),
    row("WE11-3.2mA-fault", lambda: bool(_we11(4)[1] & qc.FAULT), True, EXACT),
    row("WE11-3.2mA-bad", lambda: _we11(4)[1] & qc.CLASS_MASK, qc.BAD, EXACT),
    row("WE11-3.2mA-nan", lambda: bool(np.isnan(_we11(4)[0])), True, EXACT),
    row("WE11-21.5mA-fault", lambda: bool(_we11(5)[1] & qc.FAULT), True, EXACT),
    row("WE11-21.5mA-bad", lambda: _we11(5)[1] & qc.CLASS_MASK, qc.BAD, EXACT),
    row("WE11-21.5mA-nan", lambda: bool(np.isnan(_we11(5)[0])), True, EXACT),
]


@pytest.mark.parametrize(
    ("current", "value", "quality", "valid"),
    [
        (np.nan, np.nan, qc.BAD, False),
        (0.0, np.nan, qc.BAD | qc.FAULT, False),
        (3.6, np.nan, qc.BAD | qc.FAULT, False),
        (3.61, -0.73125, qc.UNCERTAIN | qc.OUT_OF_RANGE, False),
        (3.79, -0.39375, qc.UNCERTAIN | qc.OUT_OF_RANGE, False),
        (3.8, -0.375, qc.UNCERTAIN, True),
        (3.99, -0.01875, qc.UNCERTAIN, True),
        (4.0, 0.0, qc.GOOD, True),
        (12.0, 15.0, qc.GOOD, True),
        (20.0, 30.0, qc.GOOD, True),
        (20.5, 30.9375, qc.UNCERTAIN, True),
        (20.6, 31.125, qc.UNCERTAIN | qc.OUT_OF_RANGE, False),
        (20.99, 31.85625, qc.UNCERTAIN | qc.OUT_OF_RANGE, False),
        (21.0, np.nan, qc.BAD | qc.FAULT, False),
        (24.0, np.nan, qc.BAD | qc.FAULT, False),
    ],
)
def test_ne43_bands(current, value, quality, valid):
    out = corrections.scale_4_20ma(current, 0.0, 30.0)
    assert_allclose(out.value, value, atol=1e-9)
    assert int(out.quality) == quality
    assert bool(qc.is_valid(out.quality)) is valid


def test_scale_4_20ma_offset_range_and_shapes():
    out = corrections.scale_4_20ma(
        [[4.0, 12.0, 20.0]], np.array([[-10.0], [0.0]]), np.array([[10.0], [100.0]])
    )
    assert out.value.shape == out.quality.shape == (2, 3)
    assert_allclose(out.value, [[-10.0, 0.0, 10.0], [0.0, 50.0, 100.0]])
    empty = corrections.scale_4_20ma(np.array([]), 0.0, 30.0)
    assert empty.value.shape == empty.quality.shape == (0,)
    assert empty.quality.dtype == np.uint8


# --- EN 14181 QAL2 ------------------------------------------------------------------------------


def test_qal2_function_and_range():
    out = corrections.qal2_calibrate(
        [10.0, 100.0, 400.0, 650.0], a=2.0, b=1.1, valid_min=0.0, valid_max=600.0
    )
    assert_allclose(out.value, [13.0, 112.0, 442.0, 717.0])
    assert_array_equal(out.outside_range, [False, False, False, True])
    assert_array_equal(out.quality, [qc.GOOD, qc.GOOD, qc.GOOD, qc.UNCERTAIN])
    # flagged but still usable unless the permit says otherwise
    assert_array_equal(qc.is_valid(out.quality), True)


def test_qal2_invalidate_outside():
    out = corrections.qal2_calibrate([-50.0, 100.0, 700.0], 0.0, 1.0, 0.0, 600.0, invalidate_outside=True)
    assert_array_equal(out.outside_range, [True, False, True])
    assert_array_equal(qc.is_valid(out.quality), [False, True, False])
    assert out.quality[0] & qc.OUT_OF_RANGE


@pytest.mark.parametrize(
    ("x", "q_in", "q_out"),
    [
        (100.0, qc.UNCERTAIN | qc.CALIBRATION, qc.UNCERTAIN | qc.CALIBRATION),
        (900.0, qc.BAD | qc.FAULT, qc.BAD | qc.FAULT),
        (900.0, qc.GOOD | qc.MAINTENANCE, qc.UNCERTAIN | qc.MAINTENANCE),
        (np.nan, qc.GOOD, qc.BAD),
        (np.inf, qc.GOOD, qc.BAD),
    ],
    ids=["keeps-flags", "bad-stays-bad", "raise-to-uncertain", "nan", "inf"],
)
def test_qal2_quality_in_out(x, q_in, q_out):
    out = corrections.qal2_calibrate(x, 0.0, 1.0, 0.0, 600.0, quality=q_in)
    assert int(out.quality) == q_out
    if not np.isfinite(x):
        assert np.isnan(out.value)
        assert not out.outside_range


def test_qal2_per_signal_coefficients_broadcast():
    x = np.array([[100.0, 200.0], [100.0, 200.0]])
    out = corrections.qal2_calibrate(x, a=np.array([[0.0], [5.0]]), b=np.array([[1.0], [0.9]]))
    assert_allclose(out.value, [[100.0, 200.0], [95.0, 185.0]])
    assert out.quality.shape == (2, 2)
    assert corrections.qal2_calibrate(np.array([]), 0.0, 1.0).value.shape == (0,)


# --- § 1.3 concentration units ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("molar_mass", "mg_per_ppm"),
    [(corrections.M_NO2, 2.05253), (corrections.M_SO2, 2.85821), (M_CO, 1.24967)],
    ids=["no2", "so2", "co"],
)
def test_ppm_factors_domain_1_3(molar_mass, mg_per_ppm):
    assert_allclose(corrections.ppm_to_mg_per_nm3(1.0, molar_mass), mg_per_ppm, rtol=RTOL)
    assert_allclose(corrections.mg_per_nm3_to_ppm(mg_per_ppm, molar_mass), 1.0, rtol=RTOL)


def test_ppm_round_trip_and_edges():
    ppm = np.array([0.0, 1.0, 280.0, np.nan])
    mg = corrections.ppm_to_mg_per_nm3(ppm, corrections.MOLAR_MASS["so2"])
    assert_allclose(corrections.mg_per_nm3_to_ppm(mg, corrections.MOLAR_MASS["so2"]), ppm, rtol=1e-12)
    assert np.isnan(corrections.mg_per_nm3_to_ppm(10.0, 0.0))
    assert corrections.ppm_to_mg_per_nm3(np.array([]), corrections.M_NO2).shape == (0,)


# --- WE6: NOx ppm wet -> mg/Nm3 dry -> 10 % O2 ---------------------------------------------------


def _we6_dry_ppm() -> np.ndarray:
    return wet_to_dry_concentration(inp("WE6", "NOx_as_NO2_wet"), inp("WE6", "H2O"))


def _we6_mg() -> np.ndarray:
    return corrections.ppm_to_mg_per_nm3(_we6_dry_ppm(), corrections.M_NO2)


WE6_ROWS = [
    row("WE6-M_NO2", lambda: corrections.M_NO2, inp("WE6", "M_NO2"), EXACT),
    row("WE6-NOx_dry_ppm", _we6_dry_ppm, mid("WE6", "NOx_dry_ppm")),
    row(
        "WE6-ppm_to_mg_factor",
        lambda: corrections.ppm_to_mg_per_nm3(1.0, corrections.M_NO2),
        mid("WE6", "ppm_to_mg_factor_M/22.414"),
    ),
    row("WE6-NOx_dry", _we6_mg, mid("WE6", "NOx_dry")),
    row(
        "WE6-O2_factor",
        lambda: corrections.o2_reference_correction(
            1.0, inp("WE6", "O2_measured_dry"), inp("WE6", "O2_reference")
        ),
        mid("WE6", "O2_factor_(21-10)/(21-8.5)"),
        RTOL_DEFAULT,
    ),
    row(
        "WE6-NOx_at_10pct_O2",
        lambda: corrections.o2_reference_correction(
            _we6_mg(), inp("WE6", "O2_measured_dry"), inp("WE6", "O2_reference")
        ),
        exp("WE6", "NOx_at_10pct_O2"),
    ),
    # the default reference is the cement-kiln 10 %
    row(
        "WE6-NOx-default-reference",
        lambda: corrections.o2_reference_correction(_we6_mg(), inp("WE6", "O2_measured_dry")),
        exp("WE6", "NOx_at_10pct_O2"),
    ),
]


@pytest.mark.parametrize(
    ("e_m", "o_m", "expected"),
    [
        (100.0, 10.0, 100.0),
        (100.0, 0.0, 100.0 * 11 / 21),
        (100.0, 15.0, 100.0 * 11 / 6),
        (100.0, 21.0, np.nan),
        (100.0, 25.0, np.nan),
        (100.0, np.nan, np.nan),
        (np.nan, 8.5, np.nan),
        (0.0, 8.5, 0.0),
    ],
    ids=["at-reference", "zero-o2", "above-reference", "air", "above-21", "nan-o2", "nan-conc", "zero-conc"],
)
def test_o2_correction_edges(e_m, o_m, expected):
    assert_allclose(corrections.o2_reference_correction(e_m, o_m), expected, rtol=1e-12)


def test_o2_correction_only_above_reference():
    out = corrections.o2_reference_correction([100.0, 100.0], [8.5, 12.5], only_above_reference=True)
    assert_allclose(out, [100.0, 100.0 * 11 / 8.5])
    assert corrections.o2_reference_correction(np.array([]), np.array([])).shape == (0,)


# --- WE5: CO as CO2 -----------------------------------------------------------------------------


WE5_ROWS = [
    row("WE5-CO2_per_CO", lambda: corrections.co_as_co2_equivalent(1.0), mid("WE5", "factor_M_CO2/M_CO")),
    row(
        "WE5-CO2_equivalent_conc",
        lambda: corrections.co_as_co2_equivalent(inp("WE5", "CO_dry")),
        mid("WE5", "CO2_equivalent_conc"),
    ),
]


@pytest.mark.parametrize(ROW_ARGS, WE11_ROWS + WE6_ROWS + WE5_ROWS)
def test_worked_examples(computed, expected, rtol, atol):
    assert_reproduces(computed, expected, rtol, atol)


def test_co_as_co2_equivalent_edges():
    assert_allclose(corrections.co_as_co2_equivalent([0.0, np.nan]), [0.0, np.nan])
