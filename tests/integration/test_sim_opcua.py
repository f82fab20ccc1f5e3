"""The simulator's OPC UA server, read by a plain asyncua client on 127.0.0.1."""

import asyncio
import socket
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from asyncua import Client, ua

from simulators.clock import SimClock
from simulators.model import SIGNAL_KEYS, TRUTH_KEY, build_models
from simulators.opcua_server import NAMESPACE_URI, SimOpcUaServer
from simulators.scenarios import Event, Kind, Scenario

pytestmark = pytest.mark.integration
S = 1_000_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def to_ns(ts: datetime | None) -> int:
    assert ts is not None
    return round(ts.replace(tzinfo=UTC).timestamp() * 1e6) * 1000


def nid(name: str, ns: int) -> ua.NodeId:
    return ua.NodeId(ua.String(name), ua.Int16(ns))


def value(dv: ua.DataValue) -> Any:
    assert dv.Value is not None
    return dv.Value.Value


def code(dv: ua.DataValue) -> int:
    assert dv.StatusCode is not None
    return int(dv.StatusCode.value)


class Collect:
    """Subscription handler that keeps every notification per node."""

    def __init__(self) -> None:
        self.values: dict[str, list[ua.DataValue]] = defaultdict(list)

    def datachange_notification(self, node, val, data) -> None:
        self.values[node.nodeid.Identifier].append(data.monitored_item.Value)


async def wait_for(predicate, timeout_s: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_serves_every_signal_with_simulated_source_timestamps() -> None:
    models = build_models(["kiln1", "kiln2"], seed=3)
    clock = SimClock(backfill_s=3600, speed=60)
    port = free_port()
    async with SimOpcUaServer(models, clock, port=port, tick_s=1.0) as server:
        await wait_for(lambda: server.stats.ticks > 0)
        async with Client(server.endpoint) as client:
            ns = await client.get_namespace_index(NAMESPACE_URI)
            for model in models:
                keys = (*SIGNAL_KEYS, TRUTH_KEY)
                nodes = [client.get_node(nid(f"{model.kiln_id}.{key}", ns)) for key in keys]
                dvs = await client.read_attributes(nodes)
                ts = {to_ns(dv.SourceTimestamp) for dv in dvs}
                assert len(ts) == 1, "all values of a kiln come from the same tick"
                (t,) = ts
                assert t % S == 0
                assert clock.start_ns <= t <= clock.now_ns() < datetime.now(UTC).timestamp() * S - 1800 * S
                expected = model.sample(np.array([t]))
                for key, dv in zip(keys, dvs, strict=True):
                    assert code(dv) == 0
                    assert dv.Value is not None and dv.Value.VariantType == ua.VariantType.Double
                    assert value(dv) == expected[key][0], key
                status_node = client.get_node(nid(f"{model.kiln_id}.cems.status", ns))
                status = await status_node.read_data_value()
                assert (
                    value(status) == 0
                    and status.Value is not None
                    and status.Value.VariantType == ua.VariantType.Int32
                )
            # Addressing by namespace URI, as kilnwatch's configuration does. asyncua 2.1 parses `nsu=` into
            # an ExpandedNodeId with namespace index 0 and does not resolve it: the client must.
            parsed = ua.NodeId.from_string(f"nsu={NAMESPACE_URI};s=kiln1.stack.co2")
            index = await client.get_namespace_index(getattr(parsed, "NamespaceUri"))  # noqa: B009
            node = client.get_node(ua.NodeId(parsed.Identifier, ua.Int16(index)))
            assert 15.0 < await node.read_value() < 30.0


@pytest.mark.parametrize("queue_size", [1000, 1])
async def test_subscription_queue_delivers_every_value_written_between_publishes(queue_size: int) -> None:
    """About 60 values per node per 500 ms publishing interval: with a queue every one of them must arrive;
    with queue size 1 the server keeps only the newest (so it does honour the requested queue size)."""
    model = build_models(["kiln1"], seed=2)[0]
    clock = SimClock(backfill_s=3600, speed=120)
    keys = ("stack.flow", "stack.co2", "stack.temperature")
    server = SimOpcUaServer([model], clock, port=free_port())
    async with server, Client(server.endpoint) as client:
        ns = await client.get_namespace_index(NAMESPACE_URI)
        handler = Collect()
        sub = await client.create_subscription(500, handler)
        await sub.subscribe_data_change(
            [client.get_node(nid(f"kiln1.{k}", ns)) for k in keys], queuesize=queue_size
        )
        ticks0 = server.stats.ticks
        await wait_for(lambda: server.stats.ticks - ticks0 >= 240)
        await asyncio.sleep(1.0)  # the last publishing intervals
        await sub.delete()
    for key in keys:
        got = handler.values[f"kiln1.{key}"][1:]  # the first one is the initial value
        t = np.array([to_ns(dv.SourceTimestamp) for dv in got])
        assert len(got) > 1
        if queue_size > 1:
            steps = np.diff(t)
            assert (steps == S).all(), f"{key}: gaps or repeats in {np.unique(steps)}"
            np.testing.assert_array_equal([value(dv) for dv in got], model.sample(t)[key])
            assert len(got) >= 240
        else:
            assert len(got) < (t[-1] - t[0]) / S / 5, "queue size 1 should keep only the newest value"
        print(f"\nqueue size {queue_size}: {len(got)} notifications of {key} over {(t[-1] - t[0]) / S:.0f} s")


async def test_restart_on_same_port_leaves_an_event_time_gap() -> None:
    clock = SimClock(backfill_s=600, speed=10)
    server = SimOpcUaServer(build_models(["kiln1"]), clock, port=free_port())
    await server.start()
    try:
        async with Client(server.endpoint) as client:
            ns = await client.get_namespace_index(NAMESPACE_URI)
            first = await client.get_node(nid("kiln1.stack.flow", ns)).read_data_value()
        await asyncio.wait_for(server.stop(), 10)
        assert not server.running
        with pytest.raises((OSError, asyncio.TimeoutError)):
            async with Client(server.endpoint, timeout=1):
                pass
        stopped_at = clock.now_ns()
        await asyncio.sleep(1.0)  # 10 simulated seconds pass while the server is down
        await server.start()
        async with Client(server.endpoint) as client:
            ns = await client.get_namespace_index(NAMESPACE_URI)
            await wait_for(lambda: server.stats.last_tick_ns > stopped_at + 9 * S)
            after = await client.get_node(nid("kiln1.stack.flow", ns)).read_data_value()
        assert to_ns(after.SourceTimestamp) - to_ns(first.SourceTimestamp) >= 9 * S
    finally:
        await asyncio.wait_for(server.stop(), 10)


async def test_scenario_sets_bad_and_uncertain_status_codes_and_the_status_node() -> None:
    clock = SimClock(backfill_s=3600, speed=10)
    server = SimOpcUaServer(build_models(["kiln1"]), clock, port=free_port())
    async with server, Client(server.endpoint) as client:
        ns = await client.get_namespace_index(NAMESPACE_URI)
        handler = Collect()
        sub = await client.create_subscription(100, handler)
        keys = ("stack.flow", "stack.co2", "cems.status")
        await sub.subscribe_data_change([client.get_node(nid(f"kiln1.{k}", ns)) for k in keys])
        # Events from 10 simulated seconds after the newest published tick: the scenario is read per batch.
        await wait_for(lambda: server.stats.ticks > 0)
        t0 = server.stats.last_tick_ns + 10 * S
        server.scenario = Scenario(
            [
                Event(Kind.FLOW_DROPOUT, "kiln1", t0, 3),
                Event(Kind.CALIBRATION, "kiln1", t0 + 5 * S, 4),
                Event(Kind.FAULT, "kiln1", t0 + 11 * S, 2),
            ]
        )
        await wait_for(lambda: server.stats.last_tick_ns >= t0 + 15 * S)
        await asyncio.sleep(0.5)

    def by_time(key: str) -> dict[int, ua.DataValue]:
        return {to_ns(dv.SourceTimestamp) - t0: dv for dv in handler.values[f"kiln1.{key}"]}

    flow, co2 = by_time("stack.flow"), by_time("stack.co2")
    assert code(flow[0]) == ua.StatusCodes.BadNoCommunication
    assert value(flow[0]) is None
    assert code(flow[3 * S]) == 0
    assert code(co2[5 * S]) == ua.StatusCodes.UncertainSensorCalibration
    assert value(co2[5 * S]) == 0.0  # zero gas
    assert value(co2[7 * S]) == 18.0  # span gas
    assert code(co2[11 * S]) == ua.StatusCodes.BadSensorFailure
    status = [(t // S, value(dv)) for t, dv in sorted(by_time("cems.status").items())]
    assert [st for st in status if st[0] >= 0] == [(5, 2), (9, 0), (11, 3), (13, 0)]
