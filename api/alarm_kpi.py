"""ISA-18.2 alarm-system performance figures from the alarm history; pure numpy, no I/O.

Per operator position: annunciated alarms in the period, the mean and the highest count per 10 minutes,
the share of 10-minute periods in a flood (more than ``flood_per_10min``; ISA-18.2 aims at under 1 %)
and the mean per hour. For the whole system: stale alarms (active longer than ``stale_alarm_after_s``),
chattering alarms (raised ``chatter_count`` times or more within ``chatter_window_s``), and the most
frequent alarms with their share of all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .alarm_settings import LifecycleSettings

_NS = 1_000_000_000
TEN_MIN_NS = 600 * _NS
DEFAULT_POSITION = "control-room"


@dataclass(frozen=True, slots=True)
class Raised:
    at_ns: int
    key: str
    kiln: str | None


def positions_of(settings: LifecycleSettings, kilns: Sequence[str]) -> dict[str, list[str]]:
    return dict(settings.positions) if settings.positions else {DEFAULT_POSITION: list(kilns)}


def alarm_kpis(
    raised: Sequence[Raised],
    active_since: dict[str, int],
    start_ns: int,
    end_ns: int,
    now_ns: int,
    settings: LifecycleSettings,
    kilns: Sequence[str],
) -> dict[str, Any]:
    """``raised``: annunciated raises in [start, end); ``active_since``: start of each active alarm."""
    positions = positions_of(settings, kilns)
    names = list(positions)
    position_of_kiln = {k: i for i, (_, ks) in enumerate(positions.items()) for k in ks}
    n_bins = max(1, -(-(end_ns - start_ns) // TEN_MIN_NS))
    hours = (end_ns - start_ns) / (3600 * _NS)
    at = np.fromiter((r.at_ns for r in raised), np.int64, len(raised))
    pos = np.fromiter(
        (position_of_kiln.get(r.kiln, 0) if r.kiln is not None else 0 for r in raised), np.int64, len(raised)
    )
    bins = (at - start_ns) // TEN_MIN_NS
    counts = np.zeros((len(names), n_bins), np.int64)
    np.add.at(counts, (pos, bins), 1)
    per_position = {}
    for i, name in enumerate(names):
        c = counts[i]
        per_position[name] = {
            "kilns": positions[name],
            "alarms": int(c.sum()),
            "per_hour": round(float(c.sum()) / hours, 3) if hours > 0 else None,
            "per_10min_mean": round(float(c.mean()), 3),
            "per_10min_max": int(c.max()),
            "flood_periods": int((c > settings.flood_per_10min).sum()),
            "flood_percent": round(100.0 * float((c > settings.flood_per_10min).mean()), 2),
        }
    stale_ns = round(settings.stale_alarm_after_s * _NS)
    stale = [
        {"id": k, "active_s": round((now_ns - s) / _NS, 1)}
        for k, s in sorted(active_since.items(), key=lambda kv: kv[1])
        if now_ns - s > stale_ns
    ]
    return {
        "periods_10min": n_bins,
        "positions": per_position,
        "stale": stale,
        "chattering": _chattering(raised, settings),
        "top": _top(raised),
    }


def _chattering(raised: Sequence[Raised], settings: LifecycleSettings) -> list[dict[str, Any]]:
    """Alarms raised ``chatter_count`` times within ``chatter_window_s`` at least once."""
    window = round(settings.chatter_window_s * _NS)
    n = settings.chatter_count
    by_key: dict[str, list[int]] = {}
    for r in raised:
        by_key.setdefault(r.key, []).append(r.at_ns)
    out = []
    for key, times in by_key.items():
        t = np.sort(np.asarray(times, np.int64))
        if len(t) < n:
            continue
        # the n-th raise after each one: within the window means n raises in it
        spans = t[n - 1 :] - t[: len(t) - n + 1]
        if (spans <= window).any():
            out.append({"id": key, "raised": len(t), "shortest_span_s": round(float(spans.min()) / _NS, 3)})
    return sorted(out, key=lambda d: (-int(d["raised"]), str(d["id"])))


def _top(raised: Sequence[Raised], n: int = 10) -> list[dict[str, Any]]:
    keys, counts = np.unique(np.array([r.key for r in raised], dtype=object).astype(str), return_counts=True)
    order = np.lexsort((keys, -counts))[:n]
    total = max(1, len(raised))
    return [
        {"id": str(keys[i]), "raised": int(counts[i]), "percent": round(100.0 * int(counts[i]) / total, 1)}
        for i in order
    ]
