"""Stopping the simulator's OPC UA server is bounded, with real asyncua clients connected to it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest
from asyncua import Client, Node, ua

from simulators.clock import SimClock
from simulators.model import build_models
from simulators.opcua_server import NAMESPACE_URI, SimOpcUaServer
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.integration

STEP_S = 1.0
#: The stop's bound: its steps (publishing task, connections, abort, asyncua's stop, sessions).
BOUND_S = 5 * STEP_S


class Count:
    n = 0

    def datachange_notification(self, node: Node, val: object, data: object) -> None:
        self.n += 1


async def until(predicate: Callable[[], object], within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def server_tasks() -> list[str]:
    """Tasks of an asyncua server still on the loop (sessions, subscriptions, connections)."""
    names = [t.get_coro().__qualname__ for t in asyncio.all_tasks()]  # type: ignore[union-attr]
    prefixes = ("InternalSession.", "InternalSubscription.", "OPCUAProtocol.", "InternalServer.")
    return [n for n in names if n.startswith(prefixes)]


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.fixture
async def sim() -> AsyncIterator[SimOpcUaServer]:
    server = SimOpcUaServer(
        build_models(["kiln1"], seed=1), SimClock(backfill_s=600, speed=60), port=free_port()
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop(STEP_S)


async def subscribed_client(sim: SimOpcUaServer, handler: Count, **kw: object) -> Client:
    client = Client(f"{sim.endpoint}/kilnwatch/sim/", timeout=5, watchdog_intervall=600)
    await client.connect(**kw)  # type: ignore[arg-type]
    ns = await client.get_namespace_index(NAMESPACE_URI)
    sub = await client.create_subscription(100, handler)
    nodes = [client.get_node(f"ns={ns};s=kiln1.{k}") for k in ("stack.flow", "stack.co2", "clinker.rate")]
    await sub.subscribe_data_change(nodes)
    return client


async def stop_within_bound(sim: SimOpcUaServer) -> None:
    started = time.monotonic()
    await sim.stop(STEP_S)
    took = time.monotonic() - started
    assert took < BOUND_S, f"stop took {took:.2f} s"
    assert refused(sim.port)
    assert server_tasks() == []  # no session, subscription or connection left behind


async def drop(client: Client) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.disconnect(), 2)
    client.disconnect_socket()


async def test_stop_returns_within_the_bound_while_subscribed_clients_reconnect(
    sim: SimOpcUaServer,
) -> None:
    # One client as kilnwatch's (asyncua's auto-reconnect: it reconnects at once when the
    # connection drops, while the server is stopping) and one plain client.
    handlers = [Count(), Count()]
    clients = [
        await subscribed_client(sim, handlers[0], auto_reconnect=True, reconnect_max_delay=1.0),
        await subscribed_client(sim, handlers[1]),
    ]
    try:
        await until(lambda: all(h.n > 10 for h in handlers))
        await stop_within_bound(sim)
        await sim.start()  # on the same port, as the outage tests do
        seen = handlers[0].n
        await until(lambda: handlers[0].n > seen + 10)  # the reconnecting client has its data again
        await stop_within_bound(sim)
    finally:
        for client in clients:
            await drop(client)


async def test_stop_is_bounded_when_a_client_stops_reading(sim: SimOpcUaServer) -> None:
    """A client that stops reading its socket (a frozen process, a half-dead link): the server's
    answers pile up unsent, and a connection with unsent bytes never finishes closing, so
    asyncua's own ``Server.stop()`` waits for it forever. The bounded stop aborts it."""
    handler = Count()
    client = await subscribed_client(sim, handler)
    try:
        await until(lambda: handler.n > 5)
        ns = await client.get_namespace_index(NAMESPACE_URI)
        server = sim._server
        assert server is not None
        # A large value (1 MB) makes large answers cheaply.
        big = await server.nodes.objects.add_variable(
            ns, "big", ua.Variant(bytes(1 << 20), ua.VariantType.ByteString)
        )
        protocol = client.uaclient.protocol
        assert protocol is not None and protocol.transport is not None
        protocol.transport.pause_reading()
        read = ua.ReadParameters(
            NodesToRead=[ua.ReadValueId(NodeId=big.nodeid, AttributeId=ua.AttributeIds.Value)]
        )
        pending = []
        for _ in range(40):  # pipelined reads whose answers fill both socket buffers, then the server's
            request = ua.ReadRequest()
            request.Parameters = read
            pending.append(asyncio.ensure_future(protocol.send_request(request, timeout=0)))
        connections = server.iserver.asyncio_transports
        # The situation asyncua's stop cannot end: unsent bytes the client will never take.
        await until(lambda: any(t.get_write_buffer_size() > 0 for t in connections))

        await stop_within_bound(sim)
        for answer in pending:
            answer.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    finally:
        await drop(client)
