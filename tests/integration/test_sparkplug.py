"""Sparkplug B: the simulator's edge node -> a real mosquitto -> kilnwatch's host source -> the store."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from analytics import quality as q
from analytics.batch import ReadingBatch
from collector.health import HealthRegistry
from collector.sources.mqtt.spec import MqttBinding
from collector.sources.registry import SourceContext, SourcePlan
from collector.sources.sparkplug.source import SparkplugSource
from collector.sources.supervisor import Supervisor
from simulators.clock import SimClock
from simulators.model import ANALYSER_CHANNELS, build_models
from simulators.mqtt_publisher import SimMqttPublisher
from simulators.sparkplug_b_pb2 import Payload
from simulators.sparkplug_node import SimSparkplugNode
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.paho import stop_client
from tests.fixtures.ports import free_port
from tests.integration.mqtt_helpers import Rig, rig, until
from tests.unit.engine_helpers import SIGNALS, engine, series

pytestmark = pytest.mark.integration
S = 1_000_000_000
HOUR = 3600 * S
pytest_plugins = ["tests.fixtures.mosquitto", "tests.integration.mqtt_fixtures"]
CHANNELS = tuple(ANALYSER_CHANNELS)
KILNS = ("k1", "k2")
SP = [f"sp.{k}.{c}" for k in KILNS for c in CHANNELS]
JS = [f"js.{k}.{c}" for k in KILNS for c in CHANNELS]


def sparkplug_source(r: Rig, broker: Mosquitto, group: str, edge: str = "sim-cems") -> SparkplugSource:
    index = {n: i for i, n in enumerate(r.names)}
    bindings = [
        (index[f"sp.{k}.{c}"], {"source": "h", "group": group, "edge_node": edge, "device": k, "metric": c})
        for k in KILNS
        for c in CHANNELS
    ]
    spec = {
        "host": broker.host,
        "port": broker.port,
        "host_id": f"kw-{group}",
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.5,
        "rebirth_interval_s": 0.5,
    }
    context = SourceContext(r.pipeline, HealthRegistry(), r.metrics, r.names, "test", {}, "install1")
    return SparkplugSource(SourcePlan("sparkplug", "h", spec, bindings), context)


@contextlib.asynccontextmanager
async def running(source: SparkplugSource) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(Supervisor(source).run())
    try:
        await asyncio.wait_for(source.subscribed.wait(), 10)
        yield task
    finally:
        await source.stop()
        assert task.done()


def rows(r: Rig, names: list[str], start_ns: int, end_ns: int) -> list[tuple[str, int, float, int]]:
    got, batch = r.reader().readings(names, start_ns, end_ns)
    return sorted(
        (got[s].split(".", 1)[1], t, v, qq)
        for s, t, v, qq in zip(
            batch.signal.tolist(),
            batch.ts.tolist(),
            batch.value.tolist(),
            batch.quality.tolist(),
            strict=True,
        )
    )


def rebirths(r: Rig) -> float:
    total = 0.0
    for metric in r.metrics.registry.collect():
        if metric.name == "kilnwatch_sparkplug_rebirth_requests":
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


async def test_sparkplug_and_json_paths_give_the_same_readings_and_hour(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """One simulated hour of kiln k1 through both paths at 1800x (5-s ticks): the same stored
    readings, and the engine's hourly CO2 of the same hour from each within 1e-9."""
    group = f"g{uuid.uuid4().hex[:8]}"
    hour = (time.time_ns() // HOUR - 3) * HOUR
    models = build_models(["k1"], seed=7)
    async with rig(tmp_path, SP + JS) as r, running(sparkplug_source(r, broker, group)) as task:
        bindings = [
            (
                f"js.k1.{c}",
                MqttBinding(
                    broker="cems",
                    topic=f"{group}/k1/cems",
                    value_path=f"channels.{c}.value",
                    status_path=f"channels.{c}.status",
                ),
            )
            for c in CHANNELS
        ]
        js_source = r.source(broker, bindings, f"{group}-js", worker="thread")
        js_task = asyncio.create_task(Supervisor(js_source).run())
        await asyncio.wait_for(js_source.subscribed.wait(), 10)
        clock = SimClock(start=datetime.fromtimestamp(hour / S - 600, UTC), speed=1800)
        kw: dict[str, Any] = {"rate_s": 5.0}
        node = SimSparkplugNode(
            models, clock, broker.host, broker.port, group=group, client_id=f"{group}-s", **kw
        )
        gateway = SimMqttPublisher(
            models, clock, broker.host, broker.port, topic_prefix=group, client_id=f"{group}-j", **kw
        )
        enough = (600 + 3600 + 180) // 5

        def both_past_the_hour() -> bool:
            reader = r.reader()
            return min(reader.count_readings(f"{p}.k1.co2") for p in ("sp", "js")) >= enough

        try:
            async with node, gateway:
                await until(both_past_the_hour, "an hour on both paths", within_s=60)
        finally:
            await js_source.stop()
            await asyncio.wait_for(js_task, 10)
        assert not task.done()
        sp_names, js_names = [f"sp.k1.{c}" for c in CHANNELS], [f"js.k1.{c}" for c in CHANNELS]
        _, sp = r.reader().readings(sp_names)
        _, js = r.reader().readings(js_names)
        lo = max(int(sp.ts.min()), int(js.ts.min()))
        hi = min(
            int(b.ts[b.signal == s].max()) for b in (sp, js) for s in range(len(CHANNELS))
        )  # all before it
        assert lo <= hour and hi >= hour + HOUR
        sparkplug, json_path = rows(r, sp_names, lo, hi), rows(r, js_names, lo, hi)
        assert len(sparkplug) >= 720 * len(CHANNELS)
        assert sparkplug == json_path
        assert r.reader().dead_letters() == []
        co2 = {p: r.reader().readings([f"{p}.k1.co2"], lo, hi)[1] for p in ("sp", "js")}
        hours = {p: engine_hour(batch, lo, hi, hour) for p, batch in co2.items()}
        assert hours["sp"].valid and hours["js"].valid
        assert hours["sp"].co2_t == pytest.approx(hours["js"].co2_t, abs=1e-9)


def engine_hour(co2: ReadingBatch, lo: int, hi: int, hour: int) -> Any:
    """The engine's hour starting at ``hour`` from these CO2 readings, flow and clinker held constant."""
    eng, table = engine()
    n = (hi - lo) // S
    eng.ingest(series(table, "flow", lo, np.full(n, 397_500.0)))
    eng.ingest(series(table, "clinker", lo, np.full(n, 208.0)))
    eng.ingest(
        ReadingBatch(
            np.full(len(co2), table.index(SIGNALS["co2"].id), np.int32), co2.ts, co2.value, co2.quality
        )
    )
    return next(h for h in eng.advance_all().hours if h.start_ns == hour)


async def test_ndeath_marks_the_node_signals_comm_loss(broker: Mosquitto, tmp_path: Path) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    clock = SimClock(start=datetime.now(UTC) - timedelta(hours=1), speed=60)
    async with rig(tmp_path, SP) as r, running(source := sparkplug_source(r, broker, group)):
        node = SimSparkplugNode(build_models(KILNS), clock, broker.host, broker.port, group=group)
        async with node:
            await until(lambda: r.reader().count_readings() >= 5 * len(SP), "readings")
            assert source.host.online(group, "sim-cems", "k1")
        # the clean stop sent the NDEATH, with the bdSeq of the NBIRTH
        await until(lambda: not source.host.online(group, "sim-cems"), "the NDEATH")
        await until(lambda: "NDEATH" in (source.health.last_error or ""), "the NDEATH in health")

        def marked_readings() -> int:
            return int((r.reader().readings(SP)[1].quality == (q.BAD | q.COMM_LOSS)).sum())

        await until(lambda: marked_readings() == len(SP), "the comm-loss markers in the store")
        _, batch = r.reader().readings(SP)
        marked = batch.quality == (q.BAD | q.COMM_LOSS)
        assert sorted(set(batch.signal[marked].tolist())) == list(range(len(SP)))
        newest = {s: int(batch.ts[batch.signal == s].max()) for s in range(len(SP))}
        assert all(int(t) == max(newest.values()) for t in batch.ts[marked])  # after the newest reading


async def test_a_lost_message_asks_for_a_rebirth_and_nothing_is_misassigned(
    broker: Mosquitto, tmp_path: Path
) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    clock = SimClock(start=datetime.now(UTC) - timedelta(hours=1), speed=60)
    models = build_models(KILNS, seed=3)
    async with rig(tmp_path, SP) as r, running(sparkplug_source(r, broker, group)):
        node = SimSparkplugNode(models, clock, broker.host, broker.port, group=group)
        async with node:
            await until(lambda: r.reader().count_readings() >= 5 * len(SP), "readings")
            node.lose_message()
            await until(lambda: node.births >= 2, "a rebirth of the edge node")
            seen = r.reader().count_readings()
            await until(
                lambda: r.reader().count_readings() >= seen + 5 * len(SP), "readings after the rebirth"
            )
        assert rebirths(r) >= 1
        reasons = [d.reason for d in r.reader().dead_letters()]
        assert reasons and reasons[0].startswith("seq_gap")
        names, batch = r.reader().readings(SP)
        keep = batch.quality != (q.BAD | q.COMM_LOSS)
        for k, model in zip(KILNS, models, strict=True):
            for c in CHANNELS:
                mine = keep & (batch.signal == names.index(f"sp.{k}.{c}"))
                ts = batch.ts[mine]
                expected = model.sample(ts)[ANALYSER_CHANNELS[c]]
                np.testing.assert_array_equal(batch.value[mine], expected)


class EdgeNode:
    """A hand-driven edge node: raw NBIRTH / DBIRTH / DDATA, and what it is sent (NCMD)."""

    def __init__(self, broker: Mosquitto, group: str) -> None:
        self.group, self.commands = group, queue.Queue[bytes]()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-{group}")
        self.client.on_message = lambda _c, _u, m: self.commands.put(bytes(m.payload))
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(f"spBv1.0/{group}/NCMD/e1", qos=1)
        self.client.loop_start()

    def send(self, kind: str, seq: int, metrics: list[dict[str, object]], device: str | None = None) -> None:
        payload = Payload(timestamp=int(datetime.now(UTC).timestamp() * 1000), seq=seq)
        for m in metrics:
            payload.metrics.add(**m)
        tail = f"/{device}" if device else ""
        self.client.publish(f"spBv1.0/{self.group}/{kind}/e1{tail}", payload.SerializeToString(), qos=1)


async def test_ddata_before_its_dbirth_is_not_stored_under_a_guessed_name(
    broker: Mosquitto, tmp_path: Path
) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    async with rig(tmp_path, SP) as r, running(sparkplug_source(r, broker, group, edge="e1")):
        source_edge = EdgeNode(broker, group)
        try:
            await asyncio.sleep(0.2)  # the subscription to NCMD
            source_edge.send("NBIRTH", 0, [{"name": "bdSeq", "datatype": 4, "long_value": 0}])
            # alias 1 would be co2 on k1, but k1 has not been born: nothing may be stored for it
            source_edge.send(
                "DDATA", 1, [{"alias": 1, "timestamp": now_ms, "datatype": 10, "double_value": 9.0}], "k1"
            )
            ask = await asyncio.to_thread(source_edge.commands.get, True, 10)
            assert any(
                m.name == "Node Control/Rebirth" and m.boolean_value for m in Payload.FromString(ask).metrics
            )
            birth = [
                {"name": c, "alias": i, "datatype": 10, "is_null": True} for i, c in enumerate(CHANNELS, 1)
            ]
            source_edge.send("NBIRTH", 0, [{"name": "bdSeq", "datatype": 4, "long_value": 0}])
            source_edge.send("DBIRTH", 1, birth[::-1], "k1")  # declared in another order: aliases decide
            source_edge.send(
                "DDATA", 2, [{"alias": 2, "timestamp": now_ms, "datatype": 10, "double_value": 4.5}], "k1"
            )
            await until(lambda: r.reader().count_readings() == 1, "the reading after the DBIRTH")
        finally:
            stop_client(source_edge.client)
        names, batch = r.reader().readings(SP)
        assert [names[s] for s in batch.signal.tolist()] == [f"sp.k1.{CHANNELS[1]}"]
        assert batch.value.tolist() == [4.5] and batch.ts.tolist() == [now_ms * 1_000_000]
        reasons = [d.reason for d in r.reader().dead_letters()]
        assert len(reasons) == 1 and reasons[0].startswith("no_birth")


async def test_the_host_state_is_online_while_connected_and_offline_after(
    broker: Mosquitto, tmp_path: Path
) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    states: queue.Queue[tuple[dict[str, object], bool]] = queue.Queue()
    watcher = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{group}")
    watcher.on_message = lambda _c, _u, m: states.put((json.loads(m.payload), m.retain))
    watcher.connect(broker.host, broker.port)
    watcher.loop_start()
    try:
        async with rig(tmp_path, SP) as r:
            source = sparkplug_source(r, broker, group)
            async with running(source):
                watcher.subscribe(f"spBv1.0/STATE/kw-{group}", qos=1)
                online, retained = await asyncio.to_thread(states.get, True, 10)
                assert online["online"] is True and retained
            offline, _ = await asyncio.to_thread(states.get, True, 10)
            assert offline == {"online": False, "timestamp": online["timestamp"]}
    finally:
        stop_client(watcher)


async def test_the_edge_nodes_will_is_its_ndeath_and_it_is_born_again(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """The node's connection breaks without a DISCONNECT: the broker sends its will (NDEATH with
    the session's bdSeq), kilnwatch marks comm loss; the node reconnects with its next bdSeq."""
    group = f"g{uuid.uuid4().hex[:8]}"
    clock = SimClock(start=datetime.now(UTC) - timedelta(hours=1), speed=60)
    async with rig(tmp_path, SP) as r, running(source := sparkplug_source(r, broker, group)):

        def marked() -> int:
            return int(np.count_nonzero(r.reader().readings(SP)[1].quality == (q.BAD | q.COMM_LOSS)))

        node = SimSparkplugNode(build_models(KILNS), clock, broker.host, broker.port, group=group)
        async with node:  # its clean stop sends an NDEATH too: everything is checked before
            await until(lambda: r.reader().count_readings() >= 2 * len(SP), "readings")
            assert node._client is not None
            sock = node._client.socket()
            assert isinstance(sock, socket.socket)
            sock.shutdown(socket.SHUT_RDWR)  # a broken connection, as when the gateway loses power
            await until(lambda: "NDEATH" in (source.health.last_error or ""), "the will's NDEATH")
            await until(lambda: marked() == len(SP), "one comm-loss marker per signal")

            def born_again() -> bool:  # between the death and the new birth the node is unknown
                known = source.host.nodes.get((group, "sim-cems"))
                return node.births >= 2 and known is not None and known.bdseq == 1

            await until(born_again, "a new birth")


async def test_the_edge_node_stops_in_bounded_time_without_a_broker() -> None:
    clock = SimClock(start=datetime.now(UTC) - timedelta(hours=1), speed=60)
    node = SimSparkplugNode(build_models(["k1"]), clock, "127.0.0.1", free_port())
    await node.start()
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await asyncio.wait_for(node.stop(), 10)
    assert time.monotonic() - started < 6 and node.stats.messages == 0  # nothing before a birth
