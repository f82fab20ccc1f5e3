"""The pipe from the MQTT worker stays readable message by message under uvloop.

uvloop's ``add_reader`` makes the descriptor non-blocking; ``Connection.recv`` then raised
BlockingIOError for a message still arriving, and kilnwatch replaced a healthy worker.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection

import pytest
import uvloop

from collector.sources.mqtt.worker import _add_reader

BIG = 8_000_000  # larger than a pipe's buffer: it arrives in pieces


@pytest.mark.parametrize(
    "new_loop", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)
def test_a_message_arriving_in_pieces_is_received_whole(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    loop = new_loop()
    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    received: list[int] = []
    failures: list[BaseException] = []
    done = asyncio.Event()

    def readable(conn: Connection) -> None:
        try:
            while conn.poll():
                received.append(len(conn.recv_bytes()))
        except OSError as err:
            failures.append(err)
        if received or failures:
            done.set()

    async def main() -> None:
        _add_reader(loop, ours, readable)
        assert os.get_blocking(ours.fileno())
        sender = threading.Thread(target=theirs.send_bytes, args=(b"x" * BIG,))
        sender.start()
        await asyncio.wait_for(done.wait(), 20)
        await asyncio.to_thread(sender.join, 20)
        loop.remove_reader(ours.fileno())

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
        ours.close()
        theirs.close()
    assert failures == []
    assert received == [BIG]
