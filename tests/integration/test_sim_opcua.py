"""The simulator's OPC UA server, read by a plain asyncua client on 127.0.0.1."""

import asyncio
import socket
from collections import defaultdict
from datetime import UTC, datetime

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


def to_ns(ts: datetime) -> int:
    return round(ts.replace(tzinfo=UTC).timestamp() * 1e6) * 1000


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
                nodes = [client.get_node(ua.NodeId(f"{model.kiln_id}.{key}", ns)) for key in keys]
                dvs = await client.read_attributes(nodes)
                ts = {to_ns(dv.SourceTimestamp) for dv in dvs}
                assert len(ts) == 1, "all values of a kiln come from the same tick"
                (t,) = ts
                assert t % S == 0
                assert clock.start_ns <= t <= clock.now_ns() < datetime.now(UTC).timestamp() * S - 3000 * S
                expected = model.sample(np.array([t]))
                for key, dv in zip(keys, dvs, strict=True):
                    assert dv.StatusCode.is_good()
                    assert dv.Value.VariantType == ua.VariantType.Double
                    assert dv.Value.Value == expected[key][0], key
                status = await client.get_node(ua.NodeId(f"{model.kiln_id}.cems.status", ns)).read_data_value()
                assert status.Value.Value == 0 and status.Value.VariantType == ua.VariantType.Int32
            # Addressing by namespace URI, as kilnwatch's configuration does. asyncua 2.1 parses `nsu=` into
            # an ExpandedNodeId with namespace index 0 and does not resolve it: the client must.
            parsed = ua.NodeId.from_string(f"nsu={NAMESPACE_URI};s=kiln1.stack.co2")
            index = await client.get_namespace_index(parsed.NamespaceUri)
            node = client.get_node(ua.NodeId(parsed.Identifier, index))
            assert 15.0 < await node.read_value() < 30.0


@pytest.mark.parametrize("queue_size", [1000, 1])
async def test_subscription_queue_delivers_every_value_written_between_publishes(queue_size: int) -> None:
    """About 30 values per node per 500 ms publishing interval: with a queue every one of them must arrive;
    with queue size 1 the server keeps only the newest (so it does honour the requested queue size)."""
    model = build_models(["kiln1"], seed=2)[0]
    clock = SimClock(backfill_s=3600, speed=60)
    keys = ("stack.flow", "stack.co2", "stack.temperature")
    async with SimOpcUaServer([model], clock, port=free_port()) as server:
        async with Client(server.endpoint) as client:
            ns = await client.get_namespace_index(NAMESPACE_URI)
            handler = Collect()
            sub = await client.create_subscription(500, handler)
            await sub.subscribe_data_change(
                [client.get_node(ua.NodeId(f"kiln1.{k}", ns)) for k in keys], queuesize=queue_size
            )
            ticks0 = server.stats.ticks
            await wait_for(lambda: server.stats.ticks - ticks0 >= 180)
            await asyncio.sleep(1.0)  # the last publishing intervals
            await sub.delete()
    for key in keys:
        got = handler.values[f"kiln1.{key}"][1:]  # the first one is the initial value
        t = np.array([to_ns(dv.SourceTimestamp) for dv in got])
        assert len(got) > 1
        if queue_size > 1:
            steps = np.diff(t)
            assert (steps == S).all(), f"{key}: gaps or repeats in {np.unique(steps)}"
            np.testing.assert_array_equal([dv.Value.Value for dv in got], model.sample(t)[key])
            assert len(got) >= 180
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
            first = await client.get_node(ua.NodeId("kiln1.stack.flow", ns)).read_data_value()
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
            after = await client.get_node(ua.NodeId("kiln1.stack.flow", ns)).read_data_value()
        assert to_ns(after.SourceTimestamp) - to_ns(first.SourceTimestamp) >= 9 * S
    finally:
        await asyncio.wait_for(server.stop(), 10)


async def test_scenario_sets_bad_and_uncertain_status_codes_and_the_status_node() -> None:
    start = datetime.fromtimestamp(datetime.now(UTC).timestamp() // 60 * 60 - 3600, tz=UTC)
    t0 = round(start.timestamp()) * S
    # The clock runs 10x: the server's first tick is a few (start-up) seconds after t0, the events later.
    scenario = Scenario(
        [
            Event(Kind.FLOW_DROPOUT, "kiln1", t0 + 40 * S, 3),
            Event(Kind.CALIBRATION, "kiln1", t0 + 45 * S, 4),
            Event(Kind.FAULT, "kiln1", t0 + 51 * S, 2),
        ]
    )
    clock = SimClock(start=start, speed=10)
    async with SimOpcUaServer(build_models(["kiln1"]), clock, port=free_port(), scenario=scenario) as server:
        async with Client(server.endpoint) as client:
            ns = await client.get_namespace_index(NAMESPACE_URI)
            handler = Collect()
            sub = await client.create_subscription(100, handler)
            keys = ("stack.flow", "stack.co2", "cems.status")
            await sub.subscribe_data_change([client.get_node(ua.NodeId(f"kiln1.{k}", ns)) for k in keys])
            assert server.stats.last_tick_ns < t0 + 35 * S, "machine too slow for this test's timing"
            await wait_for(lambda: server.stats.last_tick_ns >= t0 + 55 * S)
            await asyncio.sleep(0.5)

    def by_time(key: str) -> dict[int, ua.DataValue]:
        return {to_ns(dv.SourceTimestamp) - t0: dv for dv in handler.values[f"kiln1.{key}"]}

    flow, co2 = by_time("stack.flow"), by_time("stack.co2")
    assert flow[40 * S].StatusCode.value == ua.StatusCodes.BadNoCommunication
    assert flow[40 * S].Value.Value is None
    assert flow[43 * S].StatusCode.is_good()
    assert co2[45 * S].StatusCode.value == ua.StatusCodes.UncertainSensorCalibration
    assert co2[45 * S].Value.Value == 0.0  # zero gas
    assert co2[47 * S].Value.Value == 18.0  # span gas
    assert co2[51 * S].StatusCode.value == ua.StatusCodes.BadSensorFailure
    status = [(t // S, dv.Value.Value) for t, dv in sorted(by_time("cems.status").items())]
    assert [(45, 2), (49, 0), (51, 3), (53, 0)] == [st for st in status if st[0] >= 40]
