"""Period validity (MRR Art. 44), hourly CO2 (Art. 43), C + 2 sigma substitution (Annex VIII Eq. 4): WE8."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from analytics import averaging

from .worked_examples import EXACT, ROW_ARGS, assert_reproduces, exp, inp, mid, row


def _we8_minutes() -> tuple[np.ndarray, np.ndarray]:
    """CO2 minute values and validity of WE8 hours A and B, shape (2 hours, 60 minutes)."""
    co2 = np.full((2, 60), np.nan)
    valid = np.zeros((2, 60), dtype=bool)
    co2[0, :30], co2[0, 30:50] = 21.8, 22.4  # 10 minutes span check: stay NaN / invalid
    co2[0, 50:] = 0.0  # what an analyser reads during a span check must never count as 0
    valid[0, :50] = True
    n_b = inp("WE8", "hour_B_valid_minutes")
    co2[1, :n_b] = 22.0
    valid[1, :n_b] = True
    return co2, valid


def _period_with(mean: float, std: float, n: int = 200) -> np.ndarray:
    z = np.random.default_rng(3).normal(size=n)
    return mean + std * (z - z.mean()) / z.std(ddof=1)


def _we8_co2_hours() -> averaging.PeriodMean:
    co2, valid = _we8_minutes()
    s, n = averaging.valid_sum_count(co2, valid)
    return averaging.period_mean(s, n, 60)


def _we8_flow_hours() -> averaging.PeriodMean:
    flow = np.full((2, 60), float(inp("WE8", "flow_hourly_avg_both_hours")))
    fs, fn = averaging.valid_sum_count(flow)
    return averaging.period_mean(fs, fn, 60)


def _we8_substitute() -> np.ndarray:
    period = _period_with(inp("WE8", "reporting_period_mean_CO2"), inp("WE8", "reporting_period_std_CO2"))
    return averaging.mean_plus_two_sigma(period, np.ones(period.shape, dtype=bool))


def _we8_co2_substituted() -> averaging.Substituted:
    hour = _we8_co2_hours()
    return averaging.substitute(hour.mean, hour.valid, _we8_substitute())


def _we8_mass() -> np.ndarray:
    return averaging.hourly_co2_t(_we8_co2_substituted().value, _we8_flow_hours().mean)


def _we8_invalid_as_zero() -> float:
    co2, valid = _we8_minutes()
    return float(np.nansum(co2[0] * valid[0]) / 60)


WORKED_EXAMPLES = [
    # WE8: hourly validity and the mean over valid minutes
    row("WE8-A-availability", lambda: _we8_co2_hours().availability[0], mid("WE8", "hour_A_availability")),
    row("WE8-B-availability", lambda: _we8_co2_hours().availability[1], mid("WE8", "hour_B_availability")),
    row("WE8-A-valid", lambda: bool(_we8_co2_hours().valid[0]), True, EXACT),
    row("WE8-B-invalid", lambda: bool(_we8_co2_hours().valid[1]), False, EXACT),
    row("WE8-A-mean", lambda: _we8_co2_hours().mean[0], mid("WE8", "hour_A_mean_CO2")),
    # the wrong answer (invalid minutes counted as zero), for test_we8_invalid_minutes_are_not_zeros
    row("WE8-invalid-as-zero", _we8_invalid_as_zero, mid("WE8", "WRONG_mean_if_invalid_counted_as_zero")),
    # WE8: substitution and the hourly mass
    row("WE8-flow-valid-A", lambda: bool(_we8_flow_hours().valid[0]), True, EXACT),
    row("WE8-flow-valid-B", lambda: bool(_we8_flow_hours().valid[1]), True, EXACT),
    row("WE8-B-substitute", _we8_substitute, mid("WE8", "hour_B_substitute_CO2_(mean+2sigma)")),
    row("WE8-A-not-substituted", lambda: bool(_we8_co2_substituted().substituted[0]), False, EXACT),
    row("WE8-B-substituted", lambda: bool(_we8_co2_substituted().substituted[1]), True, EXACT),
    row("WE8-A-mass", lambda: _we8_mass()[0], exp("WE8", "hour_A_CO2_mass")),
    row("WE8-B-mass", lambda: _we8_mass()[1], exp("WE8", "hour_B_CO2_mass_substituted")),
    row("WE8-total", lambda: _we8_mass().sum(), exp("WE8", "two_hour_total")),
    # the hourly CO2 function on WE3 and WE5
    row(
        "WE3-hourly_co2_t",
        lambda: averaging.hourly_co2_t(inp("WE3", "CO2_dry"), inp("WE3", "Q_N_dry")),
        exp("WE3", "m_CO2"),
    ),
    row(
        "WE5-hourly_co2_t-with-CO",
        lambda: (
            averaging.hourly_co2_t(inp("WE3", "CO2_dry"), inp("WE3", "Q_N_dry"), inp("WE5", "CO_dry"))
            - averaging.hourly_co2_t(inp("WE3", "CO2_dry"), inp("WE3", "Q_N_dry"))
        ),
        exp("WE5", "CO2_from_CO"),
    ),
]


@pytest.mark.parametrize(ROW_ARGS, WORKED_EXAMPLES)
def test_worked_examples(computed, expected, rtol, atol):
    assert_reproduces(computed, expected, rtol, atol)


def test_we8_invalid_minutes_are_not_zeros():
    assert abs(_we8_co2_hours().mean[0] - mid("WE8", "WRONG_mean_if_invalid_counted_as_zero")) > 3


def test_hourly_co2_duration():
    base = averaging.hourly_co2_t(inp("WE3", "CO2_dry"), inp("WE3", "Q_N_dry"))
    assert_allclose(averaging.hourly_co2_t(22.0, 397464.0, duration_h=0.5), base / 2, rtol=1e-12)


def test_hourly_co2_is_product_of_means():
    # Concentration and flow co-vary within the hour: Art. 43(1) multiplies the hourly means.
    c = np.r_[np.full(30, 20.0), np.full(30, 24.0)]
    q = np.r_[np.full(30, 300000.0), np.full(30, 500000.0)]
    expected = 400000.0 * 0.22 * 44.0095 / 22.414 / 1000
    assert_allclose(averaging.hourly_co2_t(c.mean(), q.mean()), expected, rtol=1e-12)
    minute_products = (q * c / 100 * 44.0095 / 22.414 / 1000).mean()
    assert abs(minute_products - expected) / expected > 1e-3


@pytest.mark.parametrize(
    ("valid_count", "expected_count", "threshold", "valid"),
    [
        (60, 60, 0.8, True),
        (48, 60, 0.8, True),
        (47, 60, 0.8, False),
        (2880, 3600, 0.8, True),
        (2879, 3600, 0.8, False),
        (800, 1000, 0.8, True),
        (799, 1000, 0.8, False),
        (0, 60, 0.8, False),
        (0, 0, 0.8, False),
        (20, 30, 2 / 3, True),
        (19, 30, 2 / 3, False),
        (1, 60, 0.0, True),
    ],
    ids=[
        "all-valid",
        "exactly-80%-minutes",
        "below-80%-minutes",
        "exactly-80%-seconds",
        "79.97%-seconds",
        "exactly-80%",
        "79.9%",
        "all-invalid",
        "nothing-expected",
        "exactly-2/3",
        "below-2/3",
        "threshold-0",
    ],
)
def test_period_validity_table(valid_count, expected_count, threshold, valid):
    out = averaging.period_mean(22.0 * valid_count, valid_count, expected_count, threshold)
    assert bool(out.valid) is valid
    if valid_count:
        assert_allclose(out.mean, 22.0)
    else:
        assert np.isnan(out.mean)
    if expected_count:
        assert_allclose(out.availability, valid_count / expected_count)
    else:
        assert np.isnan(out.availability)


def test_meets_availability_rejects_bad_threshold():
    with pytest.raises(ValueError, match="threshold"):
        averaging.meets_availability(1, 1, 1.5)


def test_valid_sum_count_nan_never_counts():
    s, n = averaging.valid_sum_count([1.0, np.nan, 3.0, 5.0], [True, True, True, False])
    assert (float(s), float(n)) == (4.0, 2.0)
    s, n = averaging.valid_sum_count([np.nan, np.nan])
    assert (float(s), float(n)) == (0.0, 0.0)
    assert np.isnan(averaging.period_mean(s, n, 2).mean)


def test_vectorised_kilns_hours_minutes():
    rng = np.random.default_rng(1)
    values = rng.uniform(18, 28, size=(2, 24, 60))
    valid = rng.uniform(size=values.shape) > 0.15
    s, n = averaging.valid_sum_count(values, valid)
    out = averaging.period_mean(s, n, 60)
    assert out.mean.shape == out.valid.shape == (2, 24)
    k, h = 1, 7
    assert_allclose(out.mean[k, h], values[k, h][valid[k, h]].mean(), rtol=1e-12)
    assert_array_equal(out.valid, valid.sum(axis=-1) >= 48)
    assert not out.valid.all()


@pytest.mark.parametrize("shape", [(0,), (0, 60), (2, 0)], ids=["empty", "no-hours", "no-minutes"])
def test_empty(shape):
    s, n = averaging.valid_sum_count(np.empty(shape), np.empty(shape, dtype=bool))
    out = averaging.period_mean(s, n, shape[-1])
    assert out.mean.shape == out.valid.shape == shape[:-1]
    assert not out.valid.any()
    assert averaging.hourly_co2_t(np.array([]), np.array([])).shape == (0,)
    assert averaging.substitute(np.array([]), np.array([], dtype=bool), 1.0).value.shape == (0,)


# --- Annex VIII Eq. 4 ---------------------------------------------------------------------------


def test_mean_plus_two_sigma_matches_numpy():
    rng = np.random.default_rng(5)
    x = rng.normal(22.0, 0.6, size=(3, 500))
    valid = rng.uniform(size=x.shape) > 0.1
    x[~valid & (rng.uniform(size=x.shape) > 0.5)] = np.nan
    got = averaging.mean_plus_two_sigma(x, valid)
    for k in range(3):
        v = x[k][valid[k] & np.isfinite(x[k])]
        assert_allclose(got[k], v.mean() + 2 * v.std(ddof=1), rtol=1e-12)
    # time on axis 0
    assert_allclose(averaging.mean_plus_two_sigma(x.T, valid.T, axis=0), got, rtol=1e-12)


def test_mean_plus_two_sigma_large_offset_is_accurate():
    x = 1e7 + np.random.default_rng(2).normal(0, 0.01, size=10_000)
    ok = np.ones(x.shape, dtype=bool)
    assert_allclose(averaging.mean_plus_two_sigma(x, ok), x.mean() + 2 * x.std(ddof=1), rtol=1e-14)


def test_running_substitute_uses_period_so_far():
    rng = np.random.default_rng(9)
    x = rng.normal(22.0, 0.5, size=(2, 48))
    valid = rng.uniform(size=x.shape) > 0.2
    got = averaging.mean_plus_two_sigma(x, valid, running=True)
    assert got.shape == x.shape
    for k in range(2):
        for i in range(48):
            v = x[k, : i + 1][valid[k, : i + 1]]
            ref = v.mean() + 2 * v.std(ddof=1) if v.size >= 2 else np.nan
            assert_allclose(got[k, i], ref, rtol=1e-10)
    assert_allclose(averaging.mean_plus_two_sigma(x.T, valid.T, axis=0, running=True), got.T, rtol=1e-12)


@pytest.mark.parametrize(
    ("values", "valid", "expected"),
    [
        ([22.0, 23.0], [False, False], np.nan),
        ([22.0, 23.0], [True, False], np.nan),
        ([22.0, 23.0], [True, True], 22.5 + 2 * np.sqrt(0.5)),
        ([22.0, 22.0, 22.0], [True, True, True], 22.0),
        ([np.nan, 21.0, 23.0], [True, True, True], 22.0 + 2 * np.sqrt(2.0)),
        ([], [], np.nan),
    ],
    ids=["all-invalid", "one-valid", "two-valid", "constant", "nan-skipped", "empty"],
)
def test_mean_plus_two_sigma_edges(values, valid, expected):
    out = averaging.mean_plus_two_sigma(np.array(values, dtype=float), np.array(valid, dtype=bool))
    assert_allclose(out, expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("values", "valid", "replacement", "out", "substituted"),
    [
        ([22.0, 18.0], [True, False], 23.2, [22.0, 23.2], [False, True]),
        ([22.0, 18.0], [True, True], 23.2, [22.0, 18.0], [False, False]),
        ([np.nan, 18.0], [True, False], 23.2, [23.2, 23.2], [True, True]),
        ([22.0, 18.0], [False, False], np.nan, [np.nan, np.nan], [False, False]),
        ([22.0, 18.0], [False, True], [1.0, 2.0], [1.0, 18.0], [True, False]),
    ],
    ids=["one-invalid", "all-valid", "nan-valid-is-invalid", "no-substitute", "per-hour-replacement"],
)
def test_substitute_table(values, valid, replacement, out, substituted):
    got = averaging.substitute(values, valid, replacement)
    assert_allclose(got.value, out)
    assert_array_equal(got.substituted, substituted)
