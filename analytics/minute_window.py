"""A kiln's recently closed minutes, in memory.

The newest ``full`` minutes keep every parameter's statistics: an hour closes from them, and
late data within them is recomputed from memory. Older minutes, up to ``keep`` in all, keep only
their headline (CO2, clinker, intensity, validity, revision): what the trend and the live view
show, at about a twentieth of the memory (7.6 KiB -> 0.4 KiB per minute for the demo kiln).
Hours further back are rebuilt from the ledger's minutes (``EmissionsEngine.recompute``).
Minutes are held in time order and without gaps: closing appends, revising only replaces.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterable

from .aggregates import MinuteAggregate

#: An hour closes from its own minutes, so at least one hour of them is held in full.
MIN_FULL_MINUTES = 60


def headline(m: MinuteAggregate) -> MinuteAggregate:
    """The minute without its per-parameter statistics."""
    return dataclasses.replace(m, params={})


class MinuteWindow:
    def __init__(self, full: int, keep: int) -> None:
        if full < MIN_FULL_MINUTES:
            raise ValueError(f"full_minutes={full}: an hour needs {MIN_FULL_MINUTES} minutes in full")
        if keep < full:
            raise ValueError(f"keep_minutes={keep} is below full_minutes={full}")
        self.full = full
        self.keep = keep
        self._full: OrderedDict[int, MinuteAggregate] = OrderedDict()
        self._headlines: OrderedDict[int, MinuteAggregate] = OrderedDict()

    def __len__(self) -> int:
        return len(self._full) + len(self._headlines)

    def append(self, minutes: Iterable[MinuteAggregate]) -> None:
        """Newly closed minutes, oldest first; call :meth:`trim` once the hours are built."""
        for m in minutes:
            self._full[m.start_ns] = m

    def restore(self, minutes: Iterable[MinuteAggregate]) -> None:
        """Minutes of the open hour taken back from the ledger at start-up."""
        self.append(minutes)
        self._full = OrderedDict(sorted(self._full.items()))
        self.trim()

    def trim(self) -> None:
        while len(self._full) > self.full:
            t, m = self._full.popitem(last=False)
            self._headlines[t] = headline(m)
        while self._headlines and len(self) > self.keep:
            self._headlines.popitem(last=False)

    def revise(self, m: MinuteAggregate, stored: MinuteAggregate | None = None) -> None:
        """A recomputed minute: its revision one above the one held (in memory, else ``stored``,
        the ledger's), and it replaces the held one; a minute older than memory is not held."""
        t = m.start_ns
        held = self._full.get(t) or self._headlines.get(t) or stored
        m.revision = 0 if held is None else held.revision + 1
        if t in self._full:
            self._full[t] = m
        elif t in self._headlines:
            self._headlines[t] = headline(m)

    def full_between(self, start_ns: int, end_ns: int) -> dict[int, MinuteAggregate]:
        """Minutes held in full that start in [start, end)."""
        return {t: m for t, m in self._full.items() if start_ns <= t < end_ns}

    def newest(self) -> MinuteAggregate | None:
        if self._full:
            return self._full[next(reversed(self._full))]
        return self._headlines[next(reversed(self._headlines))] if self._headlines else None

    def since(self, start_ns: int) -> list[MinuteAggregate]:
        """Minutes from ``start_ns`` on, oldest first (the older ones as headlines)."""
        older = [m for t, m in self._headlines.items() if t >= start_ns]
        return older + [m for t, m in self._full.items() if t >= start_ns]
