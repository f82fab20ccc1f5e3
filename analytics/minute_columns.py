"""Closed minutes of one kiln held as columns: one numpy array per field and parameter.

A recomputation over a long window (a month of hours) rebuilds its hours from these in one
vectorised pass (:mod:`analytics.hour_columns`) instead of one Python object walk per hour.
:meth:`MinuteColumns.from_minutes` takes the minutes as the engine and the store give them; it
returns None for minutes the columns cannot hold exactly (their parameters differ from minute to
minute, two share a start, a start off the minute, a ledger reason it does not know), and the
caller then takes the per-hour path, which gives the same hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .aggregates import MinuteAggregate
from .ledger import LEDGER_REASONS
from .minutes import MINUTE_NS

_REASON_INDEX = {r: i for i, r in enumerate(LEDGER_REASONS)}

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class MinuteColumns:
    """``n`` minutes in time order, ``names`` their parameters (in the minutes' order); the per
    parameter arrays are [len(names), n]. ``total`` is mean x n_valid where the minute has valid
    points (0 elsewhere), ``lo``/``hi`` the minimum/maximum there (+/-inf elsewhere)."""

    start_ns: Ints
    names: tuple[str, ...]
    n_valid: Ints
    n_expected: Ints
    total: Floats
    lo: Floats
    hi: Floats
    received: Ints  # 0 where the minute has no count (derived parameters)
    has_received: Bools
    # the ledger's nonzero counts, sparse (most minutes have none): minute, parameter, reason, count
    reason_at: tuple[Ints, Ints, Ints, Ints]
    n_running: Ints  # 0 where unknown
    has_running: Bools

    def __len__(self) -> int:
        return len(self.start_ns)

    @classmethod
    def from_minutes(cls, minutes: Sequence[MinuteAggregate]) -> MinuteColumns | None:
        """The minutes (any order) as columns; None when they do not fit (see the module doc)."""
        if not minutes:
            return None
        ordered = sorted(minutes, key=lambda m: m.start_ns)
        start = np.fromiter((m.start_ns for m in ordered), dtype=np.int64, count=len(ordered))
        if (start % MINUTE_NS).any() or (np.diff(start) <= 0).any():
            return None
        names = tuple(ordered[0].params)
        if any(tuple(m.params) != names for m in ordered):
            return None
        n, p = len(ordered), len(names)
        stats = [s for m in ordered for s in m.params.values()]  # minute-major: [n * p]
        n_valid = np.fromiter((s.n_valid for s in stats), dtype=np.int64, count=n * p)
        means = np.fromiter((np.nan if s.mean is None else s.mean for s in stats), dtype=float, count=n * p)
        used = (n_valid != 0) & ~np.isnan(means)
        if (np.isnan(means) != np.fromiter((s.mean is None for s in stats), dtype=bool, count=n * p)).any():
            return None  # a NaN mean (not None): the per-hour path knows what to make of it
        lo = np.fromiter((np.inf if s.min is None else s.min for s in stats), dtype=float, count=n * p)
        hi = np.fromiter((-np.inf if s.max is None else s.max for s in stats), dtype=float, count=n * p)
        received = [s.n_received for s in stats]
        at: list[tuple[int, int, int]] = []
        for i, why in enumerate([s.reasons for s in stats]):
            for r, c in why.items():
                k = _REASON_INDEX.get(r)
                if k is None or not c:
                    return None
                at.append((i, k, c))
        coo = np.array(at, dtype=np.int64).reshape(-1, 3)
        running = [m.n_running for m in ordered]

        def cols(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return np.ascontiguousarray(a.reshape(n, p, *a.shape[1:]).swapaxes(0, 1))

        return cls(
            start_ns=start,
            names=names,
            n_valid=cols(np.where(used, n_valid, 0)),  # as hours.combine counts them
            n_expected=cols(np.fromiter((s.n_expected for s in stats), dtype=np.int64, count=n * p)),
            total=cols(np.where(used, means * n_valid, 0.0)),
            lo=cols(np.where(used, lo, np.inf)),
            hi=cols(np.where(used, hi, -np.inf)),
            received=cols(np.array([r or 0 for r in received], dtype=np.int64)),
            has_received=cols(np.array([r is not None for r in received], dtype=bool)),
            reason_at=(coo[:, 0] // p, coo[:, 0] % p, coo[:, 1], coo[:, 2]),
            n_running=np.array([r or 0 for r in running], dtype=np.int64),
            has_running=np.array([r is not None for r in running], dtype=bool),
        )
