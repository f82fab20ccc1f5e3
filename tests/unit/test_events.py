"""The stream's fan-out: a subscriber that falls behind loses its oldest events, each one counted."""

from __future__ import annotations

import asyncio

from api.events import Broadcaster


def test_a_full_queue_loses_its_oldest_events_counts_each_and_keeps_the_rest_in_order() -> None:
    async def scenario() -> tuple[list[str], list[list[int]]]:
        dropped: list[str] = []
        events = Broadcaster(maxsize=4, on_drop=dropped.append)
        stream = events.subscribe()
        first = asyncio.ensure_future(anext(stream))  # subscribed: waits for the first event
        await asyncio.sleep(0)
        events.publish({"type": "minute", "n": 0})
        got = [[e["n"] for e in await first]]
        for n in range(1, 8):  # 7 events for a queue of 4: the 3 oldest are lost
            events.publish({"type": "running_minute" if n % 2 else "minute", "n": n})
        got.append([e["n"] for e in await anext(stream)])
        events.close()
        await stream.aclose()
        return dropped, got

    dropped, got = asyncio.run(scenario())
    assert got == [[0], [4, 5, 6, 7]]
    assert dropped == ["running_minute", "minute", "running_minute"]


def test_without_a_counter_a_full_queue_still_keeps_the_newest() -> None:
    async def scenario() -> list[int]:
        events = Broadcaster(maxsize=2)
        stream = events.subscribe()
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        for n in range(5):
            events.publish({"type": "hour", "n": n})
        got = [e["n"] for e in await first]
        events.close()
        await stream.aclose()
        return got

    assert asyncio.run(scenario()) == [3, 4]
