"""A bounded stop of an asyncua ``Server``: every step waits at most ``step_s`` seconds.

asyncua's own ``Server.stop()`` closes the client connections it knows, awaits their clean-up, and
only then closes the listening socket and waits (``asyncio.Server.wait_closed``) until every
connection is gone. Two real situations make that wait endless: a client that reconnects in
between (its new connection is never closed), and a client that stops reading, since a transport
with unsent bytes only closes once they are sent. And asyncua keeps, after its stop, every session
that has a subscription (so that a client may take it over after a reconnect), with its tasks.

So, in order: stop listening; close every connection (its unsent bytes may go); after ``step_s``,
abort those still open (a TCP reset, unsent bytes dropped); run asyncua's stop, cancelled after
``step_s``; close the sessions left, with their subscriptions and tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asyncua import Server

_log = logging.getLogger(__name__)
STOP_STEP_S = 2.0
"""Default bound of each step of a stop [s]."""


async def bounded(what: str, aw: Awaitable[Any], step_s: float) -> bool:
    """Await ``aw`` for at most ``step_s``; past that cancel it (waiting ``step_s`` more for it to
    end) and log a warning. True when it ended by itself."""
    task = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({task}, timeout=step_s)
    if done:
        if not task.cancelled() and task.exception() is not None:
            _log.warning("%s failed: %r", what, task.exception())
        return True
    task.cancel()
    await asyncio.wait({task}, timeout=step_s)
    _log.warning("%s did not end within %.1f s: cancelled", what, step_s)
    return False


async def _until(predicate: Callable[[], bool], within_s: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not predicate():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def stop_server(server: Server, step_s: float = STOP_STEP_S) -> None:
    """Stop ``server`` and drop every connection and session; returns within about 5 x ``step_s``."""
    iserver = server.iserver
    listener = getattr(server.bserver, "_server", None)
    if listener is not None:
        listener.close()  # first: no client gets back in while the rest is closed
    transports: list[asyncio.Transport] = iserver.asyncio_transports
    for transport in list(transports):
        transport.close()
    if not await _until(lambda: not transports, step_s):
        _log.warning("%d OPC UA client connection(s) did not close: aborted", len(transports))
        for transport in list(transports):
            transport.abort()
        await _until(lambda: not transports, step_s)
    # The server clock task sleeps 1 s between updates and asyncua waits for it: cancel it instead.
    clock_task = getattr(iserver, "time_task", None)
    if clock_task is not None:
        iserver.time_task = None
        clock_task.cancel()
    await bounded("asyncua server stop", server.stop(), step_s)
    sessions = list(getattr(iserver, "_external_sessions", {}).values())
    if sessions:
        closing = asyncio.gather(*(s.close_session(True) for s in sessions), return_exceptions=True)
        await bounded(f"closing {len(sessions)} OPC UA session(s)", closing, step_s)
