"""IED Annex VI pollutant averages: half-hour, confidence interval, daily validity and exceedance (WE9)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from analytics import pollutants
from analytics.averaging import PeriodMean, valid_sum_count

from .worked_examples import EXACT, ROW_ARGS, assert_reproduces, exp, inp, mid, row


def _we9_half_hour() -> tuple[np.ndarray, np.ndarray]:
    """14 x 552 and 12 x 538 valid minutes, 4 minutes zero/span (read 0, invalid)."""
    values = np.r_[np.full(14, 552.0), np.full(12, 538.0), np.zeros(4)]
    valid = np.r_[np.ones(26, dtype=bool), np.zeros(4, dtype=bool)]
    return values, valid


def _we9_day() -> tuple[np.ndarray, np.ndarray]:
    """48 half-hours: 20 x 430, 25 x 470 validated, 3 discarded for maintenance."""
    validated = np.r_[np.full(20, 430.0), np.full(25, 470.0), np.full(3, np.nan)]
    valid = np.r_[np.ones(45, dtype=bool), np.zeros(3, dtype=bool)]
    return validated, valid


def _we9_hh() -> PeriodMean:
    values, valid = _we9_half_hour()
    return pollutants.half_hour_mean(*valid_sum_count(values, valid), 30)


def _we9_ci() -> np.ndarray:
    return pollutants.confidence_interval(inp("WE9", "ELV_NOx_daily"), pollutants.ci_fraction("NOx"))


def _we9_daily() -> pollutants.DailyMean:
    return pollutants.daily_mean(*_we9_day())


WORKED_EXAMPLES = [
    # the half-hour
    row("WE9-half_hour_availability", lambda: _we9_hh().availability, mid("WE9", "half_hour_availability")),
    row("WE9-half_hour_valid", lambda: bool(_we9_hh().valid), True, EXACT),
    row("WE9-half_hour_mean", lambda: _we9_hh().mean, mid("WE9", "half_hour_mean")),
    row("WE9-CI_fraction", lambda: pollutants.ci_fraction("nox"), inp("WE9", "CI_fraction_NOx"), EXACT),
    row("WE9-confidence_interval", _we9_ci, mid("WE9", "confidence_interval")),
    row(
        "WE9-validated_half_hour",
        lambda: pollutants.validated_value(_we9_hh().mean, _we9_ci()),
        exp("WE9", "validated_half_hour"),
    ),
    # the day
    row("WE9-daily_average", lambda: _we9_daily().mean, exp("WE9", "daily_average")),
    row(
        "WE9-counts",
        lambda: (float(_we9_daily().n_valid), float(_we9_daily().n_discarded)),
        (45.0, 3.0),
        EXACT,
    ),
    row("WE9-day_valid", lambda: bool(_we9_daily().valid), exp("WE9", "day_valid"), EXACT),
    row(
        "WE9-ELV",
        lambda: pollutants.DEFAULT_DAILY_ELV_MG_PER_NM3["nox"],
        inp("WE9", "ELV_NOx_daily"),
        EXACT,
    ),
    row(
        "WE9-compliant",
        lambda: bool(
            ~pollutants.exceeds_elv(
                _we9_daily().mean, pollutants.DEFAULT_DAILY_ELV_MG_PER_NM3["nox"], _we9_daily().valid
            )
        ),
        exp("WE9", "compliant"),
        EXACT,
    ),
]


@pytest.mark.parametrize(ROW_ARGS, WORKED_EXAMPLES)
def test_worked_examples(computed, expected, rtol, atol):
    assert_reproduces(computed, expected, rtol, atol)


@pytest.mark.parametrize(
    ("pollutant", "fraction"),
    [("co", 0.10), ("so2", 0.20), ("nox", 0.20), ("dust", 0.30), ("toc", 0.30), ("hcl", 0.40), ("hf", 0.40)],
)
def test_ci_table_part6(pollutant, fraction):
    assert pollutants.ci_fraction(pollutant) == fraction


def test_ci_unknown_pollutant():
    with pytest.raises(ValueError, match="no IED confidence interval"):
        pollutants.ci_fraction("n2o")


@pytest.mark.parametrize(
    ("pollutant", "elv"),
    [("dust", 30.0), ("hcl", 10.0), ("hf", 1.0), ("nox", 500.0), ("so2", 50.0), ("toc", 10.0), ("hg", 0.05)],
)
def test_default_elv_table_part4(pollutant, elv):
    assert pollutants.DEFAULT_DAILY_ELV_MG_PER_NM3[pollutant] == elv


def test_co_has_no_default_elv():
    assert "co" not in pollutants.DEFAULT_DAILY_ELV_MG_PER_NM3


@pytest.mark.parametrize(
    ("n_valid", "threshold", "valid"),
    [
        (30, pollutants.HALF_HOUR_MIN_AVAILABILITY, True),
        (20, pollutants.HALF_HOUR_MIN_AVAILABILITY, True),
        (19, pollutants.HALF_HOUR_MIN_AVAILABILITY, False),
        (0, pollutants.HALF_HOUR_MIN_AVAILABILITY, False),
        (24, 0.8, True),
        (23, 0.8, False),
    ],
    ids=["all", "exactly-2/3", "below-2/3", "all-invalid", "exactly-80%", "below-80%"],
)
def test_half_hour_validity_table(n_valid, threshold, valid):
    values = np.full(30, 300.0)
    mask = np.arange(30) < n_valid
    hh = pollutants.half_hour_mean(*valid_sum_count(values, mask), 30, threshold=threshold)
    assert bool(hh.valid) is valid


@pytest.mark.parametrize(
    ("n_discarded", "max_discarded", "valid"),
    [(0, 5, True), (5, 5, True), (6, 5, False), (48, 5, False), (6, 6, True)],
    ids=["none", "exactly-5", "six", "all-invalid", "permit-allows-6"],
)
def test_day_validity_table(n_discarded, max_discarded, valid):
    validated = np.full(48, 400.0)
    ok = np.arange(48) >= n_discarded
    day = pollutants.daily_mean(validated, ok, max_discarded=max_discarded)
    assert bool(day.valid) is valid
    assert float(day.n_discarded) == n_discarded
    if n_discarded == 48:
        assert np.isnan(day.mean)
    else:
        assert_allclose(day.mean, 400.0)


def test_day_outside_operation_is_not_discarded():
    validated = np.full(48, 400.0)
    operating = np.arange(48) < 20  # kiln stopped after 10:00
    ok = operating.copy()
    ok[:2] = False  # two discarded while running
    day = pollutants.daily_mean(validated, ok, operating)
    assert (float(day.n_valid), float(day.n_discarded)) == (18.0, 2.0)
    assert bool(day.valid)
    stopped = pollutants.daily_mean(validated, np.zeros(48, bool), np.zeros(48, bool))
    assert not bool(stopped.valid)
    assert np.isnan(stopped.mean)


def test_nan_half_hour_counts_as_discarded():
    validated = np.full(48, 400.0)
    validated[:6] = np.nan
    day = pollutants.daily_mean(validated, np.ones(48, dtype=bool))
    assert float(day.n_discarded) == 6.0
    assert not bool(day.valid)


@pytest.mark.parametrize(
    ("mean", "ci", "clip", "expected"),
    [
        (545.538, 100.0, True, 445.538),
        (5.0, 9.0, True, 0.0),
        (5.0, 9.0, False, -4.0),
        (np.nan, 100.0, True, np.nan),
    ],
    ids=["we9", "below-ci-clipped", "below-ci-unclipped", "nan"],
)
def test_validated_value_table(mean, ci, clip, expected):
    assert_allclose(pollutants.validated_value(mean, ci, clip_at_zero=clip), expected, rtol=1e-12)


def test_exceedance_three_days():
    # days: NOx above the limit, at the limit, above but day invalid, NaN mean, CO without an ELV
    daily = np.array([540.0, 500.0, 700.0, np.nan, 900.0])
    elv = np.array([500.0, 500.0, 500.0, 500.0, np.nan])
    day_valid = np.array([True, True, False, True, True])
    assert_array_equal(pollutants.exceeds_elv(daily, elv, day_valid), [True, False, False, False, False])
    assert_array_equal(pollutants.exceeds_elv(daily, elv), [True, False, True, False, False])


def test_vectorised_days_of_kilns_and_pollutants():
    rng = np.random.default_rng(4)
    validated = rng.uniform(300, 560, size=(2, 3, 7, 48))  # kilns, pollutants, days, half-hours
    valid = rng.uniform(size=validated.shape) > 0.08
    day = pollutants.daily_mean(validated, valid)
    assert day.mean.shape == day.valid.shape == (2, 3, 7)
    assert_allclose(day.mean[1, 2, 3], validated[1, 2, 3][valid[1, 2, 3]].mean(), rtol=1e-12)
    assert_array_equal(day.valid, (~valid).sum(axis=-1) <= 5)
    ex = pollutants.exceeds_elv(day.mean, np.array([500.0, 50.0, 30.0])[None, :, None], day.valid)
    assert ex.shape == (2, 3, 7)


def test_empty():
    day = pollutants.daily_mean(np.empty((0, 48)), np.empty((0, 48), dtype=bool))
    assert day.mean.shape == day.valid.shape == (0,)
    hh = pollutants.half_hour_mean(np.array([]), np.array([]), np.array([]))
    assert hh.mean.shape == (0,)
    assert pollutants.exceeds_elv(np.array([]), 500.0).shape == (0,)
    assert pollutants.validated_value(np.array([]), 100.0).shape == (0,)
