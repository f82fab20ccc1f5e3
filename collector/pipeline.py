"""The pipeline: a bounded queue from the collectors to the durable store, then to the consumers.

Collectors ``await pipeline.put(batch, ack, source=name)``; when the queue is full they wait
(back-pressure), nothing is dropped. Every batch passes the time window of
:mod:`collector.plausibility` first, whichever source it comes from: readings outside it become
dead letters, the rest of the batch goes on. The pipeline groups queued batches, conditions
them, commits them to SQLite on its single store thread, then calls each batch's ``ack`` (MQTT
acknowledges only now, when the readings are durable) and hands the readings the store accepted
to the consumers (the analytics engine): a duplicate or a conflicting reading never reaches them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from prometheus_client import Counter

from analytics.batch import ReadingBatch
from collector.store.local import DeadLetter, LocalStore

from .conditioning import Conditioner
from .metrics import Metrics
from .plausibility import TimeGuard, TimeWindow

log = logging.getLogger(__name__)

Ack = Callable[[], None]
BatchConsumer = Callable[[ReadingBatch], None]
#: Source name of batches put without one (the service's own empty batches, tests).
UNNAMED_SOURCE = "-"
T = TypeVar("T")


class Pipeline:
    def __init__(
        self,
        store: LocalStore,
        conditioner: Conditioner,
        signal_names: tuple[str, ...],
        metrics: Metrics,
        *,
        maxsize: int = 256,
        max_group: int = 64,
        max_group_readings: int = 16_384,
        window: TimeWindow | None = None,
        ack_gate: Callable[[], bool] | None = None,
        consumers: Sequence[BatchConsumer] = (),
    ) -> None:
        self.store = store
        self.conditioner = conditioner
        self.signal_names = signal_names
        self.metrics = metrics
        self.max_group = max_group
        #: A group stops growing at this many readings: its conditioning and the consumers run on
        #: the event loop, so a backlog is committed in pieces that keep the loop's lag short.
        self.max_group_readings = max_group_readings
        #: Called on the loop with each committed batch (the engine).
        self.consumers: list[BatchConsumer] = list(consumers)
        #: While it returns False, acks are held back (the InfluxDB outbox over its budget).
        self.ack_gate = ack_gate
        self._held_acks: list[Ack] = []
        self._queue: asyncio.Queue[tuple[ReadingBatch, Ack | None, str]] = asyncio.Queue(maxsize)
        self._dead: list[DeadLetter] = []
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="kilnwatch-store")
        self.stored_readings = 0
        #: The time window (None: none, for tests with fixed old timestamps).
        self.guard = (
            None
            if window is None
            else TimeGuard(window, signal_names, metrics, self.dead_letter, time.time_ns)
        )

    async def put(self, batch: ReadingBatch, ack: Ack | None = None, *, source: str = UNNAMED_SOURCE) -> None:
        """Queue the readings of ``batch`` inside the time window; waits while the queue is full.

        ``source``: where the readings came from. ``ack`` is called once the batch's readings and
        dead letters are committed, also when the window rejected every reading.
        """
        if self.guard is not None and len(batch):
            batch = self.guard(batch, source)
        await self._queue.put((batch, ack, source))
        self.metrics.queue_depth.set(self._queue.qsize())

    def dead_letter(self, letter: DeadLetter) -> None:
        """Keep an input that could not be decoded; it is committed with the next group (cut to the
        head it is stored with, so that waiting letters hold 4 KiB each at most)."""
        self._dead.append(letter.kept())
        self.metrics.dead_letters.labels(letter.source).inc()
        if self._queue.empty():
            self._queue.put_nowait((ReadingBatch.empty(), None, UNNAMED_SOURCE))

    async def on_store_thread(self, fn: Callable[..., T], *args: object) -> T:
        """Run store work on the single store thread, serialised with the reading commits."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run(self) -> None:
        while True:
            first = await self._queue.get()
            group = [first]
            readings = len(first[0])
            while (
                len(group) < self.max_group and readings < self.max_group_readings and not self._queue.empty()
            ):
                group.append(self._queue.get_nowait())
                readings += len(group[-1][0])
            try:
                await self._commit(group)
            finally:
                for _ in group:
                    self._queue.task_done()
                self.metrics.queue_depth.set(self._queue.qsize())

    async def _commit(self, group: list[tuple[ReadingBatch, Ack | None, str]]) -> None:
        raw = ReadingBatch.concat(b for b, _, _ in group)
        batch, counts = self.conditioner.apply(raw)  # row for row: raw.value is each value as it came
        letters, self._dead = self._dead, []
        sources = [(s, len(b)) for b, _, s in group]
        write = partial(self.store.write, batch, letters, raw_value=raw.value, sources=sources)
        started = time.perf_counter()
        while True:
            try:
                result = await self.on_store_thread(write)
                break
            except Exception:
                # A full disk or a locked file: keep the data in memory and the collectors waiting.
                log.exception("cannot commit %d readings to the local store; retrying in 1 s", len(batch))
                await asyncio.sleep(1.0)
        self.metrics.store_seconds.observe(time.perf_counter() - started)
        accepted = batch.take(result.accepted)
        self.stored_readings += len(accepted)
        self._count_refused(self.metrics.duplicates, batch, result.duplicate, sources)
        self._count_refused(self.metrics.conflicts, batch, result.conflict, sources)
        self._count_flags(counts.non_finite, "non_finite")
        self._count_flags(counts.out_of_range, "out_of_range")
        self._count_flags(counts.loop_current, "loop_current")
        self._count_flags(counts.outside_calibration, "outside_calibration")
        self._count_flags(counts.calibration_not_in_force, "calibration_not_in_force")
        self._release_acks([a for _, a, _ in group if a is not None])
        if len(accepted):
            for consume in self.consumers:
                try:
                    consume(accepted)
                except Exception:
                    log.exception("a consumer failed on a batch of %d readings", len(accepted))

    def _release_acks(self, acks: list[Ack]) -> None:
        self._held_acks.extend(acks)
        if self.ack_gate is not None and not self.ack_gate():
            return
        held, self._held_acks = self._held_acks, []
        for ack in held:
            try:
                ack()
            except Exception:
                log.exception("acknowledging a message failed")

    def _count_refused(
        self,
        counter: Counter,
        batch: ReadingBatch,
        refused: npt.NDArray[np.bool_],
        sources: list[tuple[str, int]],
    ) -> None:
        """Count refused rows per (source, signal): one increment per pair, not per reading."""
        if not refused.any():
            return
        source_of = np.repeat(np.arange(len(sources)), [n for _, n in sources])
        n_signals = len(self.signal_names)
        pairs, n = np.unique(source_of[refused] * n_signals + batch.signal[refused], return_counts=True)
        for pair, count in zip(pairs.tolist(), n.tolist(), strict=True):
            source, signal = divmod(pair, n_signals)
            counter.labels(sources[source][0], self.signal_names[signal]).inc(count)

    def _count_flags(self, counts: dict[int, int], reason: str) -> None:
        for sig, n in counts.items():
            self.metrics.flagged.labels(self.signal_names[sig], reason).inc(n)

    async def drain(self) -> None:
        """Wait until every queued batch is committed (for a clean stop)."""
        await self._queue.join()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
