"""Ground truth: integrals of the model on the tick grid, and the regulatory hourly product."""

import numpy as np
import pytest

from simulators.model import TRUTH_KEY, KilnModel
from simulators.truth import GroundTruth

S = 1_000_000_000
HOUR = 3600 * S
H0 = 1_800_000_000 // 3600 * 3600 * S


@pytest.fixture(scope="module")
def model() -> KilnModel:
    return KilnModel("kiln1", seed=11)


def test_hour_integral_is_sum_of_ticks(model: KilnModel) -> None:
    truth = GroundTruth(model, tick_s=1.0)
    t = H0 + np.arange(3600, dtype=np.int64) * S
    expected = model.sample(t)[TRUTH_KEY].sum() / 3600.0
    assert truth.co2_t(H0, H0 + HOUR) == pytest.approx(expected, rel=1e-12)
    assert truth.mean_co2_t_per_h(H0, H0 + HOUR) == pytest.approx(expected, rel=1e-12)


def test_partial_ticks_are_weighted_by_overlap(model: KilnModel) -> None:
    truth = GroundTruth(model, tick_s=10.0)
    v = model.sample(np.array([H0, H0 + 10 * S], dtype=np.int64))[TRUTH_KEY]
    # [H0 + 4 s, H0 + 13 s): 6 s of tick 0 and 3 s of tick 1.
    expected = (v[0] * 6 + v[1] * 3) / 3600.0
    assert truth.co2_t(H0 + 4 * S, H0 + 13 * S) == pytest.approx(expected, rel=1e-12)
    assert truth.co2_t(H0, H0) == 0.0


def test_intervals_add_up(model: KilnModel) -> None:
    truth = GroundTruth(model, tick_s=1.0)
    mid = H0 + 1234_567_000_000 // 1000
    whole = truth.co2_t(H0, H0 + 2 * HOUR)
    assert truth.co2_t(H0, mid) + truth.co2_t(mid, H0 + 2 * HOUR) == pytest.approx(whole, rel=1e-12)


def test_long_intervals_are_chunked_but_exact(model: KilnModel) -> None:
    truth = GroundTruth(model, tick_s=1.0)
    two_days = truth.co2_t(H0, H0 + 48 * HOUR)
    by_hour = sum(h.co2_t for h in truth.hours(H0, H0 + 48 * HOUR))
    assert two_days == pytest.approx(by_hour, rel=1e-10)
    assert 48 * 150 < two_days < 48 * 200


def test_coarser_tick_integrates_its_own_step_function(model: KilnModel) -> None:
    truth = GroundTruth(model, tick_s=5.0)
    t = H0 + np.arange(0, 3600, 5, dtype=np.int64) * S
    expected = model.sample(t)[TRUTH_KEY].sum() * 5 / 3600.0
    assert truth.co2_t(H0, H0 + HOUR) == pytest.approx(expected, rel=1e-12)


def test_clinker_integral(model: KilnModel) -> None:
    truth = GroundTruth(model, tick_s=1.0)
    t = H0 + np.arange(3600, dtype=np.int64) * S
    assert truth.clinker_t(H0, H0 + HOUR) == pytest.approx(model.sample(t)["clinker.rate"].mean(), rel=1e-12)


def test_regulatory_hour_differs_from_integral_by_covariance_only(model: KilnModel) -> None:
    truth = GroundTruth(model, tick_s=1.0)
    hours = truth.hours(H0, H0 + 24 * HOUR)
    assert len(hours) == 24
    rel = np.array([h.covariance_rel for h in hours])
    print(
        f"\nregulatory (mean flow × mean CO2) vs integral over 24 h: "
        f"mean {rel.mean() * 100:+.4f} %, min {rel.min() * 100:+.4f} %, max {rel.max() * 100:+.4f} %"
    )
    assert np.all(np.abs(rel) < 0.005)  # far inside the 0.5 % budget of the end-to-end tests
    assert np.any(rel != 0.0)  # the two definitions are not the same number
    assert truth.regulatory_hour(H0) == hours[0].regulatory_co2_t


def test_hours_only_lists_whole_hours(model: KilnModel) -> None:
    truth = GroundTruth(model, tick_s=1.0)
    hours = truth.hours(H0 + 10 * S, H0 + 3 * HOUR + 5 * S)
    assert [h.hour_ns for h in hours] == [H0 + HOUR, H0 + 2 * HOUR]


def test_rejects_bad_arguments(model: KilnModel) -> None:
    with pytest.raises(ValueError):
        GroundTruth(model, tick_s=0)
    with pytest.raises(ValueError):
        GroundTruth(model).co2_t(H0 + S, H0)
    with pytest.raises(ValueError):
        GroundTruth(model).mean_co2_t_per_h(H0, H0)
