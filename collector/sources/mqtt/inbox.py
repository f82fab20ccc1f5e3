"""A bounded hand-over of received MQTT messages between threads.

paho's network thread puts, the next stage takes. When the inbox holds ``max_bytes``, ``put``
waits: paho stops reading its socket and TCP (and the broker's in-flight window) hold the rest,
so a slow pipeline slows the broker down instead of filling kilnwatch's memory. Nothing is
dropped while the inbox is open; a message that finds it closed was never acknowledged and
comes again with the next session.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Final

from .session import Incoming

#: What a queued message costs besides its payload and topic (the tuple and its fields).
ITEM_OVERHEAD_BYTES: Final = 200


def item_bytes(item: Incoming) -> int:
    payload = item[1]
    return (
        len(item[0])
        + (len(payload) if isinstance(payload, bytes) else len(payload.head))
        + ITEM_OVERHEAD_BYTES
    )


class Inbox:
    """Messages waiting for the next stage, at most ``max_bytes`` of them (one more if it is empty,
    so that no single message waits for ever)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: deque[tuple[Incoming, int]] = deque()
        self._bytes = 0
        self._closed = False
        self._space = threading.Condition()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    def full(self) -> bool:
        return self._bytes >= self.max_bytes

    def put(self, item: Incoming) -> bool:
        """Add a message, waiting while the inbox is full; False (not added) once it is closed."""
        size = item_bytes(item)
        with self._space:
            while self._items and self._bytes + size > self.max_bytes and not self._closed:
                self._space.wait()
            if self._closed:
                return False
            self._items.append((item, size))
            self._bytes += size
            return True

    def put_nowait(self, items: list[Incoming]) -> None:
        """Add messages without waiting (the caller stops taking more once :meth:`full`)."""
        with self._space:
            for item in items:
                size = item_bytes(item)
                self._items.append((item, size))
                self._bytes += size

    def take(self, most: int) -> list[Incoming]:
        """Up to ``most`` messages, oldest first; wakes a waiting ``put``."""
        with self._space:
            n = min(most, len(self._items))
            taken = [self._items.popleft() for _ in range(n)]
            self._bytes -= sum(size for _, size in taken)
            if n:
                self._space.notify_all()
            return [item for item, _ in taken]

    def close(self) -> None:
        """Wake every waiting ``put``; from now on nothing is added."""
        with self._space:
            self._closed = True
            self._space.notify_all()
