"""Quiescing a source before the service stops: it hands nothing new to its sink, and its link stays
open so that the acknowledgements of batches still in the pipeline reach the broker. Without it a
stop could leave the last batch committed but unacknowledged: the broker would deliver it again
after the restart (counted as duplicates, nothing lost, but avoidable)."""

from __future__ import annotations

import asyncio


class Quiescence:
    """Held by a source's consume loop: ``batch()`` around each hand-over to the sink, ``hold()``
    at the top of the loop; ``quiesce()`` from the stopping side."""

    def __init__(self) -> None:
        self.requested = False
        self._idle = asyncio.Event()
        self._idle.set()

    def batch(self) -> _Busy:
        return _Busy(self._idle)

    async def hold(self) -> None:
        """Wait here for ever once quiescing was asked for (until the source is stopped)."""
        if self.requested:
            await asyncio.Future()

    async def quiesce(self, wake: asyncio.Event) -> None:
        """Ask the loop to stop taking messages and wait for the hand-over in progress, if any."""
        self.requested = True
        wake.set()
        await self._idle.wait()


class _Busy:
    def __init__(self, idle: asyncio.Event) -> None:
        self._idle = idle

    def __enter__(self) -> None:
        self._idle.clear()

    def __exit__(self, *exc: object) -> None:
        self._idle.set()
