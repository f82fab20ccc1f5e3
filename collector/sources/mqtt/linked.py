"""The life of a source that reads a broker through a link (paho on its thread, or in a worker
process): ``run()`` until cancelled or ``stop()``, ``quiesce()`` before a stop. The MQTT and the
Sparkplug B sources share it; each says how to make its link and how to consume its inbox."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from ..quiesce import Quiescence
from .inbox import Inbox
from .session import AckToken


class Link(Protocol):
    """Where the paho session runs: a thread of kilnwatch's process or a worker process."""

    def start(self) -> None: ...

    def ack(self, acks: Sequence[AckToken]) -> None: ...

    def resume(self) -> None: ...

    async def close(self) -> None: ...


class LinkedSource:
    """Base of broker sources. Subclasses call :meth:`_init_link` in ``__init__`` and implement
    ``_make_link``, ``_consume`` (until cancelled) and ``_set_down``."""

    name: str
    kind: str  # "MQTT", "Sparkplug": in messages

    def _init_link(self, inbox_max_bytes: int) -> None:
        self._inbox_max_bytes = inbox_max_bytes
        self._inbox = Inbox(inbox_max_bytes)  # filled by the link, emptied by _consume
        self._wakeup = asyncio.Event()
        self._quiescence = Quiescence()
        self._link: Link | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def _make_link(self) -> Link:
        raise NotImplementedError

    async def _consume(self) -> None:
        raise NotImplementedError

    def _set_down(self, reason: str) -> None:
        raise NotImplementedError

    def _starting(self) -> None:
        """Reset what one run must not inherit from the one before."""

    async def run(self) -> None:
        if self._task is not None:
            raise RuntimeError(f"{self.kind} source {self.name} is already running")
        self._task, self._stopping = asyncio.current_task(), False
        self._starting()
        self._inbox = Inbox(self._inbox_max_bytes)  # what an earlier run left comes again
        link = None
        try:
            link = self._link = self._make_link()
            link.start()  # in a thread link, raises on a TLS file that cannot be read
            await self._consume()
        except asyncio.CancelledError:
            if not self._stopping or self._task is None:
                raise
            self._task.uncancel()
        finally:
            self._stopping = True
            if link is not None:
                await link.close()
                self._link = None
                self._set_down("stopped")
            self._task = None

    async def quiesce(self) -> None:
        """Hand nothing new to the sink; the link stays open for the acks of what it holds."""
        await self._quiescence.quiesce(self._wakeup)

    async def stop(self) -> None:
        """Disconnect (the broker keeps the session and queues for it) and end ``run()``."""
        self._stopping = True
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait([task])
