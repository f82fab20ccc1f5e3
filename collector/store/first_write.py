"""First write wins: which readings of a batch are new, which repeat a stored reading, which
contradict one.

A reading is identified by its signal and source time. The first value stored for that key
stands: an identical reading offered again (same value, NaN equal to NaN, and same quality) is
a *duplicate*; one with another value or quality is a *conflict*. Neither replaces the stored
reading. Within one batch, the earliest row of a key is the one offered first.

The check costs one index seek per distinct signal of the batch (the newest stored time of
each): rows newer than it cannot exist yet, which is the common case. Only the other rows (late
data, redeliveries, history read-back) are looked up one by one, in one statement.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson

_NEWEST_SQL = "SELECT j.value, (SELECT max(ts) FROM reading WHERE signal = j.value) FROM json_each(?) AS j"
_STORED_SQL = (
    "SELECT j.key, r.value, r.quality FROM json_each(?) AS j JOIN reading AS r"
    " ON r.signal = json_extract(j.value, '$[0]') AND r.ts = json_extract(j.value, '$[1]')"
)
_NO_TS = np.iinfo(np.int64).min


@dataclass(frozen=True, slots=True)
class Verdict:
    """Rows of a batch in key order (``order``: positions in the batch), each exactly one of
    ``accepted``, ``duplicate``, ``conflict``; ``standing_value`` / ``standing_quality``: the
    reading that holds its key (stored before, or the earlier row of this batch)."""

    order: npt.NDArray[np.intp]
    accepted: npt.NDArray[np.bool_]
    duplicate: npt.NDArray[np.bool_]
    conflict: npt.NDArray[np.bool_]
    standing_value: npt.NDArray[np.float64]
    standing_quality: npt.NDArray[np.int64]

    def in_batch_order(self, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        out = np.empty(len(mask), dtype=np.bool_)
        out[self.order] = mask
        return out


def judge(
    conn: sqlite3.Connection,
    signal: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
) -> Verdict:
    """Classify rows (database signal ids; values with non-finite as NaN) against ``reading``.

    Run it in the transaction that then inserts the accepted rows, so nothing writes between.
    """
    n = len(signal)
    order = np.lexsort((np.arange(n), ts, signal))
    sig, t, val, qual = signal[order], ts[order], value[order], quality[order].astype(np.int64)
    first = np.ones(n, dtype=np.bool_)
    first[1:] = (sig[1:] != sig[:-1]) | (t[1:] != t[:-1])
    run = np.cumsum(first) - 1  # each row's key, numbered in key order
    starts = np.flatnonzero(first)
    standing_v, standing_q = val[starts].copy(), qual[starts].copy()
    stored = np.zeros(len(starts), dtype=np.bool_)
    found = _stored(conn, sig[starts], t[starts])
    if found is not None:
        keys, stored_v, stored_q = found
        standing_v[keys], standing_q[keys], stored[keys] = stored_v, stored_q, True
    accepted = first & ~stored[run]
    ref_v, ref_q = standing_v[run], standing_q[run]
    same = ((val == ref_v) | (np.isnan(val) & np.isnan(ref_v))) & (qual == ref_q)
    return Verdict(order, accepted, ~accepted & same, ~accepted & ~same, ref_v, ref_q)


def _stored(
    conn: sqlite3.Connection, sig: npt.NDArray[np.int64], ts: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.int64]] | None:
    """Of distinct keys (sorted), those already stored: (their positions, value, quality)."""
    if not len(sig):
        return None
    ids = np.unique(sig)
    newest = dict(conn.execute(_NEWEST_SQL, (orjson.dumps(ids.tolist()),)).fetchall())
    bound = np.array([_NO_TS if newest.get(i) is None else newest[i] for i in ids.tolist()], dtype=np.int64)
    maybe = np.flatnonzero(ts <= bound[np.searchsorted(ids, sig)])
    if not len(maybe):
        return None
    pairs = orjson.dumps(np.column_stack((sig[maybe], ts[maybe])).tolist())  # not orjson's numpy path
    rows = conn.execute(_STORED_SQL, (pairs,)).fetchall()
    if not rows:
        return None
    found = np.array(rows, dtype=np.float64)  # a NULL value (not a number) becomes NaN
    return maybe[found[:, 0].astype(np.intp)], found[:, 1], found[:, 2].astype(np.int64)
