"""Target trajectories (analytics.targets) against values computed by hand."""

from __future__ import annotations

import pytest

from analytics.targets import Milestone, TargetSpec, assess, trajectory

# baseline 2020: 800 kg/t; -20 % by 2030 (640), net zero by 2050 (0)
MILESTONES = [Milestone(2050, reduction_pct=100.0), Milestone(2030, reduction_pct=20.0)]

#   year  linear                      stepwise
TABLE = [
    (2015, 800.0, 800.0),
    (2020, 800.0, 800.0),
    (2025, 720.0, 800.0),  # halfway 800 -> 640
    (2030, 640.0, 640.0),
    (2040, 320.0, 640.0),  # halfway 640 -> 0
    (2049, 32.0, 640.0),
    (2050, 0.0, 0.0),
    (2060, 0.0, 0.0),
]


@pytest.mark.parametrize(("year", "linear", "stepwise"), TABLE)
def test_trajectory_values(year: int, linear: float, stepwise: float) -> None:
    assert trajectory("k", 2020, 800.0, MILESTONES).value_at(year) == pytest.approx(linear)
    assert trajectory("k", 2020, 800.0, MILESTONES, "stepwise").value_at(year) == pytest.approx(stepwise)


# year, actual, on track, gap, reduction needed [kg/t/yr], [%/yr]
ASSESS = [
    (2026, 700.0, True, 700.0 - 704.0, 700.0 / 24, 100.0 / 24),  # 2026 target 800 - 160 x 6/10 = 704
    (2026, 710.0, False, 6.0, 710.0 / 24, 100.0 / 24),
    (2050, 10.0, False, 10.0, 10.0, 100.0),  # the last year: the whole gap at once
]


@pytest.mark.parametrize(("year", "actual", "on_track", "gap", "per_year", "pct"), ASSESS)
def test_assess(year: int, actual: float, on_track: bool, gap: float, per_year: float, pct: float) -> None:
    a = assess(trajectory("k", 2020, 800.0, MILESTONES), year, actual)
    assert a.on_track is on_track
    assert a.gap == pytest.approx(gap)
    assert a.reduction_per_year == pytest.approx(per_year)
    assert a.reduction_pct_per_year == pytest.approx(pct)


def test_below_the_final_value_needs_nothing_and_no_actual_is_unknown() -> None:
    t = trajectory("k", 2020, 800.0, [Milestone(2030, value=600.0)])
    assert assess(t, 2026, 500.0).reduction_per_year == 0.0
    assert assess(t, 2026, None).on_track is None


def test_spec_takes_the_computed_baseline_only_without_a_value() -> None:
    spec = TargetSpec("k", 2020, None, (Milestone(2030, reduction_pct=50.0),))
    assert spec.trajectory(None) is None
    t = spec.trajectory(900.0)
    assert t is not None and t.final_value == 450.0
    fixed = TargetSpec("k", 2020, 1000.0, (Milestone(2030, reduction_pct=50.0),))
    t2 = fixed.trajectory(900.0)
    assert t2 is not None and t2.final_value == 500.0
