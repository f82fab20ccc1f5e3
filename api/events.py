"""Fan-out of closed minutes to Server-Sent Events subscribers, on the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any


class Broadcaster:
    """Each subscriber gets its own bounded queue; a slow one loses its oldest events, never blocks
    others. ``on_drop(type)`` is called for each event a subscriber lost that way (a metric)."""

    def __init__(self, maxsize: int = 256, on_drop: Callable[[str], None] | None = None) -> None:
        self.maxsize = maxsize
        self.on_drop = on_drop
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._closed = asyncio.Event()

    def publish(self, event: dict[str, Any]) -> None:
        for queue in self._subscribers:
            if queue.full():
                lost = queue.get_nowait()
                if self.on_drop is not None:
                    self.on_drop(str(lost.get("type", "")))
            queue.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[list[dict[str, Any]]]:
        """Events until :meth:`close` (the service is stopping), in order, as many at a time as have
        come since the last: a subscriber that fell behind catches up in one step of the loop, not
        one step per event (a minute's close of hundreds of kilns comes as one burst)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.maxsize)
        self._subscribers.add(queue)
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            while not self._closed.is_set():
                get = asyncio.ensure_future(queue.get())
                await asyncio.wait([get, closed], return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    break
                batch = [get.result()]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                yield batch
        finally:
            closed.cancel()
            self._subscribers.discard(queue)

    def close(self) -> None:
        """End every subscription, so open streams let the server stop."""
        self._closed.set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
