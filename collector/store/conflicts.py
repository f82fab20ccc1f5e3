"""Conflicts: readings refused because another value or quality was stored first for their
signal and time (:mod:`collector.store.first_write`). Each is kept in the ``conflict`` table, with the
stored and the offered reading, and as a dead letter."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass

import numpy as np
import numpy.typing as npt

from analytics.batch import ReadingBatch

from .dead_letters import DeadLetter
from .first_write import Verdict


@dataclass(frozen=True, slots=True)
class Conflict:
    """A refused reading (value None: not a number) and the one stored for its signal and time."""

    signal: str
    ts_ns: int
    stored_value: float | None
    stored_quality: int
    value: float | None
    quality: int
    raw: float | None
    source: str
    received_ns: int  # when kilnwatch refused it


def conflicts_of(
    batch: ReadingBatch,
    v: Verdict,
    raw: npt.NDArray[np.float64],
    sources: Sequence[tuple[str, int]],
    signal_names: Sequence[str],
) -> list[Conflict]:
    """The conflicting rows of ``batch``; ``sources``: (name, rows) in row order."""
    at = np.flatnonzero(v.conflict)
    rows = v.order[at]
    names = [s for s, _ in sources]
    source_of = np.repeat(np.arange(len(sources)), [n for _, n in sources])
    value = np.where(np.isfinite(batch.value[rows]), batch.value[rows], np.nan)
    now = time.time_ns()
    return [
        Conflict(
            signal_names[sig],
            ts,
            _none_if_nan(stored),
            stored_q,
            _none_if_nan(val),
            q,
            _none_if_nan(r),
            names[source_of[row]] if row < len(source_of) else "",
            now,
        )
        for row, sig, ts, stored, stored_q, val, q, r in zip(
            rows.tolist(),
            batch.signal[rows].tolist(),
            batch.ts[rows].tolist(),
            v.standing_value[at].tolist(),
            v.standing_quality[at].tolist(),
            value.tolist(),
            batch.quality[rows].tolist(),
            raw[rows].tolist(),
            strict=True,
        )
    ]


def insert_conflicts(c: sqlite3.Connection, conflicts: Sequence[Conflict], db_ids: Mapping[str, int]) -> None:
    c.executemany(
        "INSERT INTO conflict(signal, ts, stored_value, stored_quality, value, quality, raw, source,"
        " received_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(db_ids[k.signal], *astuple(k)[1:]) for k in conflicts],
    )


def read_conflicts(
    c: sqlite3.Connection, signal_name: str | None, start_ns: int, end_ns: int
) -> list[Conflict]:
    rows = c.execute(
        "SELECT name, ts, stored_value, stored_quality, value, quality, raw, source, received_ns"
        " FROM conflict JOIN signal ON signal.id = conflict.signal"
        " WHERE (? IS NULL OR name = ?) AND ts >= ? AND ts < ? ORDER BY ts, conflict.id",
        (signal_name, signal_name, start_ns, end_ns),
    )
    return [Conflict(*row) for row in rows]


def as_dead_letter(k: Conflict) -> DeadLetter:
    """A conflict as a dead letter: the reason names both values, the payload holds them as JSON."""
    reason = (
        f"conflict: {k.signal} at {k.ts_ns} ns is stored as {k.stored_value} (quality {k.stored_quality});"
        f" {k.value} (quality {k.quality}) offered"
    )
    payload = json.dumps(
        {
            "signal": k.signal,
            "ts_ns": k.ts_ns,
            "stored": {"value": k.stored_value, "quality": k.stored_quality},
            "offered": {"value": k.value, "quality": k.quality, "raw": k.raw},
        }
    ).encode()
    return DeadLetter(k.source, reason, payload, k.signal, k.received_ns)


def _none_if_nan(x: float) -> float | None:
    return None if math.isnan(x) else x
