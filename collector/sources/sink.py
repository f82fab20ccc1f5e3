"""Where every source hands its readings: the pipeline, or a test's stand-in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from analytics.batch import ReadingBatch
from collector.store.dead_letters import DeadLetter


class Sink(Protocol):
    async def put(
        self, batch: ReadingBatch, ack: Callable[[], None] | None = None, *, source: str = ...
    ) -> None:
        """Take ``batch`` (waits while full); ``ack`` is called once it is durable."""

    def dead_letter(self, letter: DeadLetter) -> None:
        """Keep a message that could not be decoded, with its reason."""
