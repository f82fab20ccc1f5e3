"""SimClock: starts in the past, runs `speed` times faster, never overtakes the wall clock."""

from datetime import UTC, datetime

import pytest

from simulators.clock import SimClock

S = 1_000_000_000
WALL0 = 1_800_000_000 * S


class FakeWall:
    def __init__(self, t: int = WALL0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def test_starts_backfill_before_wall_clock() -> None:
    wall = FakeWall()
    clock = SimClock(backfill_s=3600, speed=60, wall_ns=wall)
    assert clock.now_ns() == WALL0 - 3600 * S
    assert not clock.caught_up
    assert clock.lag_s() == pytest.approx(3600)


def test_runs_speed_times_faster_until_caught_up_then_real_time() -> None:
    wall = FakeWall()
    clock = SimClock(backfill_s=3600, speed=61, wall_ns=wall)
    wall.t += 10 * S
    assert clock.now_ns() == WALL0 - 3600 * S + 610 * S
    # Lag shrinks by 60 s per wall second: caught up after 60 wall seconds.
    wall.t = WALL0 + 59 * S
    assert not clock.caught_up
    wall.t = WALL0 + 60 * S
    assert clock.caught_up
    assert clock.now_ns() == wall.t
    wall.t += 123 * S
    assert clock.now_ns() == wall.t
    assert clock.lag_s() == 0.0


def test_never_ahead_of_wall_clock() -> None:
    wall = FakeWall()
    clock = SimClock(backfill_s=10, speed=1000, wall_ns=wall)
    for step in range(0, 100):
        wall.t = WALL0 + step * S // 7
        assert clock.now_ns() <= wall.t


def test_explicit_start_overrides_backfill() -> None:
    wall = FakeWall()
    start = datetime(2027, 1, 1, tzinfo=UTC)
    clock = SimClock(start=start, speed=2, wall_ns=wall)
    assert clock.now_ns() == round(start.timestamp()) * S
    wall.t += 5 * S
    assert clock.now() == datetime(2027, 1, 1, 0, 0, 10, tzinfo=UTC)


def test_wall_seconds_until_a_simulated_time() -> None:
    wall = FakeWall()
    clock = SimClock(backfill_s=100, speed=11, wall_ns=wall)
    assert clock.wall_s_until(WALL0 - 100 * S) == 0.0
    assert clock.wall_s_until(WALL0 - 45 * S) == pytest.approx(5.0)
    # Catch-up after 10 wall s at sim time WALL0 + 10 s; then real time.
    assert clock.wall_s_until(WALL0 + 20 * S) == pytest.approx(20.0)


@pytest.mark.parametrize("kwargs", [{"speed": 0}, {"speed": -1}, {"backfill_s": -5}])
def test_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SimClock(**kwargs)


def test_rejects_naive_start() -> None:
    with pytest.raises(ValueError, match="timezone"):
        SimClock(start=datetime(2027, 1, 1))
