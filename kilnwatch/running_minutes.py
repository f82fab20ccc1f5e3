"""The running minutes: each kiln's provisional value of the minute still open, kept for ``/live``
and published on the stream (``running_minute`` events).

A closed minute reaches the page the allowed lateness after the minute ends. In between, the
engine's :meth:`~analytics.engine.EmissionsEngine.running_minute` gives the open minute from the
grid points every active signal has reported. It is computed for a kiln only when that point moved
on to a new second (one reduction over all kilns tells), and at most every ``min_interval_s``: at
1 Hz data once a second per kiln, shortly after the second's readings are in. Nothing here is
stored: the closed minute replaces it.

One kiln's running minute costs about a millisecond of small numpy steps, on the event loop (it
reads the engine's buffers, which only the loop changes). A pass computes the kilns that are due,
the longest-waiting first, until it has spent ``budget_s``; the rest are first in the next pass.
A few kilns are all computed every second; a fleet of hundreds refreshes each kiln less often
(200 kilns: every 2-3 s) instead of holding up the loop (the stream, the API, closing minutes) for
a third of every second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from analytics import tables
from analytics.engine import EmissionsEngine
from api.events import Broadcaster

log = logging.getLogger(__name__)

#: How often the engine is asked how far each kiln's data is complete [s]; cheap.
CHECK_S = 0.1
#: Shortest time between two computations of one kiln's running minute [s] (while history
#: is replayed, every check would find new seconds).
MIN_INTERVAL_S = 0.5
#: Longest time one pass may compute running minutes before it yields the loop [s] (a tenth of
#: :data:`CHECK_S`: at most about a tenth of the loop; 200 kilns refresh every 2-3 s).
BUDGET_S = 0.01
#: The Broadcaster event of a new running minute (the stream sends its ``row``).
EVENT = "running_minute"


class RunningMinutes:
    def __init__(
        self,
        engine: EmissionsEngine,
        events: Broadcaster,
        check_s: float = CHECK_S,
        min_interval_s: float = MIN_INTERVAL_S,
        budget_s: float = BUDGET_S,
    ) -> None:
        self.engine = engine
        self.events = events
        self.check_s = check_s
        self.min_interval_s = min_interval_s
        self.budget_s = budget_s
        self._rows: dict[str, dict[str, Any]] = {}
        self._through: dict[str, int] = {}
        self._computed: dict[str, float] = {}

    def row(self, kiln_id: str) -> dict[str, Any] | None:
        """The ``tables.RUNNING_MINUTE`` row of the kiln's running minute as last computed."""
        return self._rows.get(kiln_id)

    def update(self, now_s: float) -> int:
        """Compute the running minute of the kilns whose complete data moved on since their last one
        (``now_s``: the engine's arrival clock), the longest-waiting first, until ``budget_s`` is
        spent; returns how many were published."""
        due: list[tuple[float, str, int]] = []
        for kiln, through in self.engine.complete_through(now_s).items():
            if through is None:  # no signal active: the running minute is gone with them
                self._rows.pop(kiln, None)
                self._through.pop(kiln, None)
                continue
            last = self._computed.get(kiln, -float("inf"))
            if through != self._through.get(kiln) and now_s - last >= self.min_interval_s:
                due.append((last, kiln, through))
        due.sort()
        published = computed = 0
        started = time.perf_counter()
        for _, kiln, through in due:
            if computed and time.perf_counter() - started >= self.budget_s:
                break
            self._through[kiln], self._computed[kiln] = through, now_s
            running = self.engine.running_minute(kiln, now_s)
            computed += 1
            if running is None:  # its minute is closed already
                self._rows.pop(kiln, None)
                continue
            row = self._rows[kiln] = tables.RUNNING_MINUTE.row(running)
            self.events.publish({"type": EVENT, "kiln": kiln, "row": row})
            published += 1
        return published

    async def run(self) -> None:
        while True:
            try:
                self.update(time.monotonic())
            except Exception:  # a bad state of one pass must not end the provisional values
                log.exception("computing the running minutes failed")
            await asyncio.sleep(self.check_s)
