"""Late data: minutes and hours that late readings touched, recomputed from the durable store.

Readings and computation run on a thread of their own, one slice (an hour at most) at a time;
the engine's state changes only on the loop, so the API and the collectors stay live.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from analytics.aggregates import MinuteAggregate
from analytics.batch import ReadingBatch
from analytics.engine import EmissionsEngine, EngineOutput
from analytics.hours import HOUR_NS
from analytics.recompute import Recomputation
from analytics.signals import SignalTable
from collector.metrics import Metrics
from collector.pipeline import Pipeline
from collector.store.reader import StoreReader

log = logging.getLogger("kilnwatch")

#: Longest wait for late data to stop arriving before it is recomputed anyway [s].
LATE_SETTLE_MAX_S = 10.0
#: How often substitution history out of the time window's reach is dropped [s].
FORGET_EVERY_S = 3600.0

#: Writes closed minutes and hours and tells the listeners; returns the write, if any.
Emit = Callable[[EngineOutput], "asyncio.Future[None] | None"]


def stored_readings(
    reader: StoreReader, table: SignalTable, members: Sequence[str], start_ns: int, end_ns: int
) -> ReadingBatch:
    """Stored readings of ``members`` in [start, end), with the table's signal indexes."""
    names, batch = reader.readings(members, start_ns, end_ns)
    index = np.array([table.index(n) for n in names], dtype=np.int32)
    return ReadingBatch(_remap(batch.signal, index), batch.ts, batch.value, batch.quality)


def _remap(local: npt.NDArray[np.int32], index: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    return index[local] if len(local) else local.astype(np.int32)


class LateData:
    """Waits for late data to settle, then recomputes what it touched; ``run()`` until cancelled.

    It also counts late readings (``kilnwatch_late_readings_total``) and keeps the substitution
    history bounded: reporting periods that no reading inside the time window (``max_age_ns``)
    can reach any more are dropped from it.
    """

    def __init__(
        self,
        engine: EmissionsEngine,
        table: SignalTable,
        reader: StoreReader,
        pipeline: Pipeline,
        emit: Emit,
        metrics: Metrics,
        max_age_ns: int,
        settle_max_s: float = LATE_SETTLE_MAX_S,
    ) -> None:
        self.engine, self.table, self.reader, self.pipeline = engine, table, reader, pipeline
        self._emit = emit
        self._metrics = metrics
        self._max_age_ns = max_age_ns
        self._settle_max_s = settle_max_s
        self._counted = dict.fromkeys(engine.kilns, 0)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="kilnwatch-recompute")

    def count(self) -> None:
        """Count the late readings the engine took since the last call, per kiln (on the loop)."""
        for kiln_id, state in self.engine.kilns.items():
            new = state.late_count - self._counted[kiln_id]
            if new:
                self._metrics.late_readings.labels(kiln_id).inc(new)
                self._counted[kiln_id] = state.late_count

    def forget(self, now_ns: int | None = None) -> None:
        """Drop substitution history of reporting periods before the one holding the oldest
        plausible reading time."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        self.engine.forget_history_before(now_ns - self._max_age_ns)

    async def run(self) -> None:
        """Recompute once late data has stopped arriving for half a second (a redelivered queue
        makes one revision, not one per second of its delivery), or after ``settle_max_s``."""
        seen, waited = 0, 0.0
        forget_at = 0.0
        while True:
            if time.monotonic() >= forget_at:
                self.forget()
                forget_at = time.monotonic() + FORGET_EVERY_S
            await asyncio.sleep(0.5)
            count = self.engine.late_readings
            if count != seen and waited < self._settle_max_s:
                seen, waited = count, waited + 0.5
                continue
            seen, waited = count, 0.0
            await self.recompute()

    async def recompute(self) -> None:
        """Recompute every range late readings touched, slice by slice."""
        loop = asyncio.get_running_loop()
        for kiln_id, start, end in self.engine.late_ranges():
            members = [self.table.ids[i] for i in self.engine.kilns[kiln_id].spec.signals]
            job = self.engine.recomputation(kiln_id, start, end)
            n_minutes = n_hours = 0
            while not job.done:
                minutes = await loop.run_in_executor(self._thread, self._compute_slice, job, members)
                if not minutes:
                    continue
                # On the store thread: after every minute already queued for the ledger is in it.
                stored = await self.pipeline.on_store_thread(
                    self.reader.minutes,
                    kiln_id,
                    minutes[0].start_ns // HOUR_NS * HOUR_NS,
                    (minutes[-1].start_ns // HOUR_NS + 1) * HOUR_NS,
                )
                out = self.engine.apply_recomputed(job, minutes, stored)
                n_minutes, n_hours = n_minutes + len(out.minutes), n_hours + len(out.hours)
                write = self._emit(out)
                if write is not None:  # one slice's aggregates in the store before the next is computed
                    await asyncio.wait([write])
            log.info("late data for %s recomputed %d minutes and %d hours", kiln_id, n_minutes, n_hours)

    def _compute_slice(self, job: Recomputation, members: Sequence[str]) -> list[MinuteAggregate]:
        """On the recompute thread: the next slice's stored readings, computed."""
        lo, hi = job.readings_window()
        return job.compute(stored_readings(self.reader, self.table, members, lo, hi))

    async def close(self) -> None:
        """A slice being computed ends within its bound; the queued ones are dropped."""
        await asyncio.to_thread(self._thread.shutdown, wait=True, cancel_futures=True)
