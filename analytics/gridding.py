"""Signals as step functions, sampled on a fixed time grid (docs/method.md § 4.1).

A reading holds its value from its timestamp until the next reading of the same signal, but
for no longer than ``max_hold``; after that the signal counts as missing. Sampling at grid
points turns irregular change points (OPC UA reports changes only, gateways publish every
second) into the "data points" of emissions monitoring: validity and availability are
fractions of grid points, means are grid means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import quality as q

#: The ledger's reason for a grid point without a value in force.
MISSING_REASON = "missing"


@dataclass(frozen=True, slots=True)
class GridSamples:
    """Sampled values of n signals at T grid points (row = signal, column = grid point)."""

    value: npt.NDArray[np.float64]  # [n, T], NaN where missing
    valid: npt.NDArray[np.bool_]  # [n, T]
    quality: npt.NDArray[np.uint8]  # [n, T], COMM_LOSS where missing
    present: npt.NDArray[np.bool_]  # [n, T], a value was in force (not expired, not absent)


def sample_on_grid(
    signal: npt.NDArray[np.int32],
    ts: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
    n_signals: int,
    start_ns: int,
    n_points: int,
    step_ns: int,
    max_hold_ns: int,
) -> GridSamples:
    """Sample change points on the grid ``start_ns + i * step_ns`` for i in [0, n_points).

    ``signal`` holds local indexes in [0, n_signals). Points may come in any order and may
    precede ``start_ns`` (they carry into the grid while younger than ``max_hold_ns``).
    Of two points with the same signal and timestamp, the later one in the input wins.
    """
    if n_points <= 0 or n_signals <= 0:
        shape = (max(n_signals, 0), max(n_points, 0))
        return GridSamples(
            np.full(shape, np.nan), np.zeros(shape, bool), np.zeros(shape, np.uint8), np.zeros(shape, bool)
        )
    horizon = max_hold_ns + step_ns
    base = start_ns - horizon
    span = horizon + n_points * step_ns + 1
    # Older points are expired for every grid point; clamping keeps them expired.
    rel = np.clip(ts - base, 0, span - 1)
    keys = signal.astype(np.int64) * span + rel
    order = np.argsort(keys, kind="stable")
    keys_sorted = keys[order]

    grid_rel = horizon + np.arange(n_points, dtype=np.int64) * step_ns
    query = (np.arange(n_signals, dtype=np.int64)[:, None] * span + grid_rel[None, :]).ravel()
    pos = np.searchsorted(keys_sorted, query, side="right") - 1
    hit = pos >= 0
    pos_c = np.where(hit, pos, 0)
    src = order[pos_c] if len(order) else np.zeros_like(pos_c)
    if len(order):
        same_signal = signal[src] == np.repeat(np.arange(n_signals, dtype=np.int32), n_points)
        age = np.tile(grid_rel, n_signals) - rel[src]
        present = hit & same_signal & (age <= max_hold_ns)
    else:
        present = np.zeros(n_signals * n_points, dtype=bool)

    shape = (n_signals, n_points)
    vals = np.where(present, value[src] if len(order) else np.nan, np.nan).reshape(shape)
    quals = np.where(present, quality[src] if len(order) else 0, q.BAD | q.COMM_LOSS).astype(np.uint8)
    quals = quals.reshape(shape)
    present = present.reshape(shape)
    valid = present & q.is_valid(quals) & np.isfinite(vals)
    return GridSamples(vals, valid, quals, present)
