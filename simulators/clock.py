"""Simulated time that starts in the past, runs faster until it reaches the present, then runs in real time.

    sim(w) = min(start + (w − w0) · speed, w)        w: wall clock, w0: wall clock at creation

It never runs ahead of the wall clock, so a demo shows hours of history within minutes and then goes live,
and every timestamp the simulators emit is a simulated time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

_NS = 1_000_000_000


class SimClock:
    """Accelerated simulated clock [ns since epoch, UTC]; `wall_ns` is injectable for tests."""

    def __init__(
        self,
        start: datetime | None = None,
        backfill_s: float = 6 * 3600.0,
        speed: float = 1.0,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        if backfill_s < 0:
            raise ValueError(f"backfill_s must be >= 0, got {backfill_s}")
        self._wall_ns = wall_ns
        self._wall0 = wall_ns()
        self.speed = float(speed)
        if start is None:
            self.start_ns = self._wall0 - round(backfill_s * _NS)
        else:
            if start.tzinfo is None:
                raise ValueError("start must be timezone-aware (UTC)")
            self.start_ns = round(start.timestamp() * 1e6) * 1000

    def _unclamped(self, wall: int) -> int:
        return self.start_ns + round((wall - self._wall0) * self.speed)

    def now_ns(self) -> int:
        """Simulated time now [ns since epoch, UTC], never later than the wall clock."""
        wall = self._wall_ns()
        return min(self._unclamped(wall), wall)

    def now(self) -> datetime:
        """Simulated time now as an aware UTC datetime (µs resolution)."""
        return datetime.fromtimestamp(self.now_ns() / _NS, tz=UTC)

    @property
    def caught_up(self) -> bool:
        """True once simulated time has reached the wall clock (it then runs in real time)."""
        wall = self._wall_ns()
        return self._unclamped(wall) >= wall

    def lag_s(self) -> float:
        """How far simulated time is behind the wall clock [s] (0 once caught up)."""
        wall = self._wall_ns()
        return max(0.0, (wall - self._unclamped(wall)) / _NS)

    def wall_s_until(self, sim_ns: int) -> float:
        """Wall time [s] until simulated time reaches `sim_ns` (0 if it already has)."""
        wall = self._wall_ns()
        sim = self._unclamped(wall)
        now = min(sim, wall)
        if sim_ns <= now:
            return 0.0
        if sim >= wall or self.speed <= 1.0:
            rate = 1.0 if sim >= wall else self.speed
            return (sim_ns - now) / rate / _NS
        # The lag shrinks by (speed - 1) per wall second until the clock catches up; then real time.
        catch_up_sim = sim + (wall - sim) * self.speed / (self.speed - 1.0)
        if sim_ns <= catch_up_sim:
            return (sim_ns - sim) / self.speed / _NS
        return ((catch_up_sim - sim) / self.speed + (sim_ns - catch_up_sim)) / _NS
