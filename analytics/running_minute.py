"""The running minute: the open minute of a kiln from the points received so far (provisional)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RunningMinute:
    """The minute still open, from its grid points so far: provisional, never a minute aggregate.

    ``through_ns`` is its newest grid point: every signal of the kiln that is active has reported
    up to it, so the numbers are those the closed minute will have on these points (late data
    aside). ``points``: grid points from ``start_ns`` to ``through_ns``; ``valid``: those points meet
    the minute's validity rules (as fractions of them)."""

    kiln: str
    plant: str
    start_ns: int
    through_ns: int
    points: int
    co2_t_per_h: float | None
    clinker_t_per_h: float | None
    intensity_kg_per_t: float | None
    valid: bool
