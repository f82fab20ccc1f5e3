"""Stuck-value detection on the sampling grid (docs/method.md § 4.4: a frozen value while the process runs).

A grid point is stuck when its signal has shown exactly the same value on every grid point for at
least ``min_s`` up to it, while the kiln runs. The check is causal: the first ``min_s`` of a frozen run
stay valid, because a steady process looks the same until then [assumption]. A missing or NaN point
ends a run. The state (value and start of the current run per signal) carries from one block of
grid points to the next, so the result does not depend on how the engine cuts time into blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_NO_RUN = np.iinfo(np.int64).min


@dataclass(slots=True)
class RunState:
    """Per signal: the value of the last grid point (NaN: none) and when its run began [ns]."""

    value: npt.NDArray[np.float64]
    since_ns: npt.NDArray[np.int64]

    @classmethod
    def empty(cls, n: int) -> RunState:
        return cls(np.full(n, np.nan), np.full(n, _NO_RUN, dtype=np.int64))


def detect_stuck(
    values: npt.NDArray[np.float64],
    start_ns: int,
    step_ns: int,
    state: RunState,
    min_ns: int,
    check: npt.NDArray[np.bool_],
    running: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.bool_], RunState]:
    """Stuck points [n, T] of the grid ``start_ns + i * step_ns`` and the state after its last point.

    values: sampled values [n, T], NaN where missing; check: which signals are checked [n];
    running: whether the kiln runs at each grid point [T].
    """
    n, t_points = values.shape
    if t_points == 0:
        return np.zeros((n, 0), dtype=bool), state
    previous = np.concatenate([state.value[:, None], values[:, :-1]], axis=1)
    same = values == previous  # NaN never equals, so gaps end runs
    idx = np.arange(t_points, dtype=np.int64)
    last_change = np.maximum.accumulate(np.where(same, -1, idx[None, :]), axis=1)
    t = start_ns + idx * step_ns
    since = np.where(last_change >= 0, t[np.maximum(last_change, 0)], state.since_ns[:, None])
    frozen = (since != _NO_RUN) & (t[None, :] - since >= min_ns)
    stuck = frozen & np.isfinite(values) & check[:, None] & running[None, :]
    return stuck, RunState(values[:, -1].copy(), since[:, -1].copy())
