"""The OPC UA source against a real in-process asyncua server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from asyncua import Node, Server, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from cryptography.x509.oid import ExtendedKeyUsageOID

from analytics import quality as q
from analytics.batch import ReadingBatch
from collector.health import SourceHealth
from collector.metrics import Metrics
from collector.sources.opcua.source import OpcUaSource
from collector.sources.opcua.spec import OpcUaServerSpec
from collector.sources.supervisor import Supervisor
from simulators.opcua_stop import stop_server

pytestmark = pytest.mark.integration

NS = "urn:kilnwatch:test:kiln"
VARIABLES = {
    "flow": (0.0, ua.VariantType.Double),
    "count": (0, ua.VariantType.Int32),
    "running": (False, ua.VariantType.Boolean),
    "label": ("", ua.VariantType.String),
}
SIGNAL = {"flow": 10, "count": 11, "running": 12, "label": 13}
NODES = [(SIGNAL[name], f"nsu={NS};s=kiln1.{name}") for name in VARIABLES]
DECOY = -1.0
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 10**9
S = ua.StatusCodes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class KilnServer:
    server: Server
    variables: dict[str, Node]
    ns: int
    decoys: list[Node] = field(default_factory=list)

    async def write(self, name: str, value: Any, ts: datetime | None, status: int = S.Good) -> None:
        vtype = (
            VARIABLES[name][1] if value is not None and isinstance(value, type(VARIABLES[name][0])) else None
        )
        variant = ua.Variant(value, vtype) if vtype is not None else ua.Variant(value)
        fields: dict[str, Any] = {"StatusCode": ua.StatusCode(ua.UInt32(status)), "SourceTimestamp": ts}
        dv = ua.DataValue(variant, **fields)
        await self.variables[name].write_value(dv)


async def start_server(
    port: int, leading: tuple[str, ...] = (), user_manager: Any = None, certs: tuple[Path, Path] | None = None
) -> KilnServer:
    """A kiln namespace after ``leading`` other namespaces, each holding decoys with our node ids."""
    server = Server(user_manager=user_manager)
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/kilnwatch-test/")
    if certs is not None:
        await server.load_certificate(certs[0])
        await server.load_private_key(certs[1])
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
    decoys = []
    for uri in leading:
        idx = await server.register_namespace(uri)
        for name in VARIABLES:
            decoys.append(
                await server.nodes.objects.add_variable(
                    ua.NodeId.from_string(f"ns={idx};s=kiln1.{name}"), name, DECOY
                )
            )
    ns = await server.register_namespace(NS)
    kiln = await server.nodes.objects.add_object(ns, "kiln1")
    variables = {
        name: await kiln.add_variable(
            ua.NodeId.from_string(f"ns={ns};s=kiln1.{name}"), name, ua.Variant(init, vtype)
        )
        for name, (init, vtype) in VARIABLES.items()
    }
    await server.start()
    return KilnServer(server, variables, ns, decoys)


class MemorySink:
    def __init__(self) -> None:
        self.batches: list[ReadingBatch] = []

    async def put(
        self, batch: ReadingBatch, ack: Callable[[], None] | None = None, *, source: str = "-"
    ) -> None:
        self.batches.append(batch)

    def all(self) -> ReadingBatch:
        return ReadingBatch.concat(self.batches)

    def by_key(self) -> dict[tuple[int, int], tuple[float, int]]:
        b = self.all()
        return {
            (s, t): (v, qq)
            for s, t, v, qq in zip(
                b.signal.tolist(), b.ts.tolist(), b.value.tolist(), b.quality.tolist(), strict=True
            )
        }


async def until(predicate: Callable[[], bool], within: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Running:
    source: OpcUaSource
    sink: MemorySink
    health: SourceHealth
    metrics: Metrics
    task: asyncio.Task[None]


StartSource = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_source() -> AsyncIterator[StartSource]:
    running: list[Running] = []

    async def start(
        port: int,
        nodes: list[tuple[int, str]] = NODES,
        sink: MemorySink | None = None,
        options: dict[str, Any] | None = None,
        **spec: Any,
    ) -> Running:
        settings = {"publishing_interval_ms": 100.0, "queue_size": 10, "connect_timeout_s": 2.0, **spec}
        url = f"opc.tcp://127.0.0.1:{port}/kilnwatch-test/"
        sink, health, metrics = sink or MemorySink(), SourceHealth("plc1", "opcua"), Metrics()
        spec_ = OpcUaServerSpec(url=url, **settings)
        source = OpcUaSource("plc1", spec_, nodes, sink, health, metrics, "test", **(options or {}))
        r = Running(source, sink, health, metrics, asyncio.create_task(Supervisor(source).run()))
        running.append(r)
        return r

    yield start
    for r in running:
        r.task.cancel()
        done, _ = await asyncio.wait({r.task}, timeout=15)  # a stop is bounded: a hang fails here
        assert done, "the OPC UA source did not stop within 15 s of its cancellation"
        assert r.task.cancelled()


@pytest.fixture
async def servers() -> AsyncIterator[list[KilnServer]]:
    started: list[KilnServer] = []
    yield started
    for s in started:
        await stop_server(s.server)


def sample(run: Running, name: str, **labels: str) -> float:
    return float(run.metrics.registry.get_sample_value(name, labels) or 0.0)


def collector_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("collector.sources.opcua") and r.levelno == level]


async def test_values_arrive_with_source_time_and_quality_by_namespace_uri(
    servers: list[KilnServer], start_source: StartSource
) -> None:
    port = free_port()
    srv = await start_server(port, leading=("urn:other:a", "urn:other:b"))
    servers.append(srv)
    assert srv.ns == 4  # two other namespaces registered first; index 2 holds decoys with our ids
    run = await start_source(port)
    await until(lambda: run.health.connected, what="connect")

    sec = timedelta(seconds=1)
    await srv.write("flow", 101.5, T0)
    await srv.write("flow", 102.5, T0 + sec)
    await srv.write("flow", None, T0 + 2 * sec, S.BadSensorFailure)
    await srv.write("count", 42, T0)
    await srv.write("running", True, T0, S.UncertainLastUsableValue)
    await srv.write("label", "burning", T0)
    expected = {
        (10, T0_NS): (101.5, q.GOOD),
        (10, T0_NS + 10**9): (102.5, q.GOOD),
        (10, T0_NS + 2 * 10**9): (None, q.BAD | q.FAULT),
        (11, T0_NS): (42.0, q.GOOD),
        (12, T0_NS): (1.0, q.UNCERTAIN),
        (13, T0_NS): (None, q.BAD),
    }
    await until(lambda: expected.keys() <= run.sink.by_key().keys(), what="all written values")

    got = run.sink.by_key()
    for key, (value, quality) in expected.items():
        got_value, got_quality = got[key]
        assert got_quality == quality, key
        assert np.isnan(got_value) if value is None else got_value == value, key
    assert DECOY not in run.sink.all().value.tolist()
    label_node = f"nsu={NS};s=kiln1.label"
    assert (
        sample(run, "kilnwatch_rejected_total", source="plc1", signal=label_node, reason="non_numeric") == 2
    )  # "" and "burning"
    total = len(run.sink.all())
    assert sample(run, "kilnwatch_readings_total", source="plc1") == total
    state = run.source.state()
    assert state["connected"] is True
    assert state["nodes"][f"nsu={NS};s=kiln1.flow"]["values"] == 4  # initial value + 3 writes
    assert state["nodes"][f"nsu={NS};s=kiln1.flow"]["last_ts_ns"] == max(t for s, t in got if s == 10)


async def test_several_values_per_publishing_interval(
    servers: list[KilnServer], start_source: StartSource
) -> None:
    """asyncua's server queues every write per monitored item up to queue_size and drops the
    oldest beyond it: with queue_size 10 all six writes of one interval arrive, with 1 only the newest."""
    port = free_port()
    srv = await start_server(port)
    servers.append(srv)
    nodes = NODES[:1]
    queued = await start_source(port, nodes, publishing_interval_ms=1000.0, queue_size=10)
    single = await start_source(port, nodes, publishing_interval_ms=1000.0, queue_size=1)
    await until(lambda: queued.health.connected and single.health.connected, what="connect")
    await until(lambda: len(queued.sink.all()) > 0 and len(single.sink.all()) > 0, what="initial values")

    stamps = [T0 + timedelta(milliseconds=100 * i) for i in range(6)]
    for i, ts in enumerate(stamps):
        await srv.write("flow", 200.0 + i, ts)
    written = [int(ts.timestamp() * 1e9) for ts in stamps]

    def of(run: Running) -> list[int]:
        return [t for t in run.sink.all().ts.tolist() if t < T0_NS + 10**10]

    await until(lambda: of(queued) == written, within=5, what="all six values")
    await until(lambda: written[-1] in of(single), within=5, what="newest value")
    assert queued.sink.all().value[-6:].tolist() == [200.0 + i for i in range(6)]
    assert len(of(single)) < len(written)


async def test_recovers_from_a_server_restart(
    servers: list[KilnServer], start_source: StartSource, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="collector")
    port = free_port()
    srv = await start_server(port)
    run = await start_source(port)
    await until(lambda: run.health.connected, what="connect")
    await srv.write("flow", 1.0, T0)
    await until(lambda: (10, T0_NS) in run.sink.by_key(), what="first value")
    newest_before = int(run.sink.all().ts.max())

    await stop_server(srv.server)
    await until(lambda: not run.health.connected, within=5, what="health to go down")
    assert sample(run, "kilnwatch_source_connected", source="plc1") == 0
    await until(lambda: any(b.quality[0] & q.COMM_LOSS for b in run.sink.batches), within=5, what="markers")
    markers = ReadingBatch.concat(b for b in run.sink.batches if b.quality[0] & q.COMM_LOSS)
    assert sorted(markers.signal.tolist()) == sorted(SIGNAL.values())
    assert set(markers.ts.tolist()) == {newest_before + 1}
    assert np.isnan(markers.value).all()
    assert set(markers.quality.tolist()) == {q.BAD | q.COMM_LOSS}

    await asyncio.sleep(3.0)
    srv = await start_server(port)
    servers.append(srv)
    back = time.monotonic()
    await until(lambda: run.health.connected, within=30, what="reconnect")
    print(f"OPC UA server restart: reconnected {time.monotonic() - back:.1f} s after the server came back")
    await srv.write("flow", 2.0, T0 + timedelta(minutes=5))
    await until(lambda: (10, T0_NS + 300 * 10**9) in run.sink.by_key(), what="value after restart")

    assert not run.task.done()
    # asyncua's own auto-reconnect did it (the supervisor would only step in after 20 s)
    assert (run.health.last_error or "").startswith("connection lost")
    assert run.health.connects == 2
    assert sample(run, "kilnwatch_source_reconnects_total", source="plc1") == 2
    errors = collector_records(caplog, logging.ERROR)
    assert len(errors) == 1 and "connection lost" in errors[0].getMessage()
    assert sum("recovered" in r.getMessage() for r in collector_records(caplog, logging.INFO)) == 1


async def test_namespace_moved_on_restart_is_resolved_again(
    servers: list[KilnServer], start_source: StartSource
) -> None:
    port = free_port()
    srv = await start_server(port)
    assert srv.ns == 2
    run = await start_source(port)
    await until(lambda: run.health.connected, what="connect")

    await stop_server(srv.server)
    await until(lambda: not run.health.connected, within=5, what="health to go down")
    # the restarted server registers another namespace first: index 2 now holds decoys
    srv = await start_server(port, leading=("urn:other:a",))
    servers.append(srv)
    assert srv.ns == 3
    await until(lambda: run.health.connected, within=30, what="reconnect")
    await srv.write("flow", 7.0, T0)
    for decoy in srv.decoys:
        await decoy.write_value(DECOY - 1)
    await until(lambda: (10, T0_NS) in run.sink.by_key(), what="value from the moved namespace")
    await asyncio.sleep(0.3)
    values = run.sink.all().value.tolist()
    assert DECOY not in values and DECOY - 1 not in values
    assert "namespace indexes changed" in (run.health.last_error or "")


async def test_stalled_reconnect_is_rebuilt_by_the_supervisor(
    servers: list[KilnServer], start_source: StartSource
) -> None:
    port = free_port()
    srv = await start_server(port)
    run = await start_source(port, reconnect_stall_s=1.0)
    await until(lambda: run.health.connected, what="connect")
    await stop_server(srv.server)
    await until(
        lambda: "reconnect has not succeeded" in (run.health.last_error or ""), within=5, what="rebuild"
    )
    srv = await start_server(port)
    servers.append(srv)
    back = time.monotonic()
    await until(lambda: run.health.connected, within=30, what="reconnect")
    print(f"OPC UA server restart: reconnected {time.monotonic() - back:.1f} s after the server came back")
    await srv.write("count", 5, T0)
    await until(lambda: (11, T0_NS) in run.sink.by_key(), what="value after rebuild")


class GatedSink(MemorySink):
    def __init__(self) -> None:
        super().__init__()
        self.open = asyncio.Event()
        self.open.set()

    async def put(
        self, batch: ReadingBatch, ack: Callable[[], None] | None = None, *, source: str = "-"
    ) -> None:
        await self.open.wait()
        self.batches.append(batch)


async def test_a_sink_that_stops_taking_readings(
    servers: list[KilnServer], start_source: StartSource
) -> None:
    """OPC UA cannot be paused: the source keeps draining its subscription, holds readings up to
    a bound and counts (per signal) and logs what it has to drop beyond it; nothing goes silently."""
    port = free_port()
    srv = await start_server(port)
    servers.append(srv)
    sink = GatedSink()
    options = {"flush_items": 3, "max_held_readings": 5}
    run = await start_source(port, NODES[:1], sink=sink, options=options, queue_size=100)
    await until(lambda: run.health.connected and len(sink.all()) > 0, what="connect")

    sink.open.clear()
    written = [T0_NS + i * 10**6 for i in range(30)]
    for i in range(30):
        await srv.write("flow", 1.0 + i, T0 + timedelta(milliseconds=i))  # the server skips unchanged values

    def dropped() -> float:
        node = f"nsu={NS};s=kiln1.flow"
        return sample(run, "kilnwatch_rejected_total", source="plc1", signal=node, reason="sink_full")

    await until(lambda: dropped() > 0, within=5, what="readings to be dropped")
    await asyncio.sleep(0.3)
    assert run.health.connected  # a full sink is no reason to drop the connection
    sink.open.set()

    def received() -> list[int]:
        return [t for t in sink.all().ts.tolist() if t in written]

    await until(
        lambda: len(received()) + dropped() == len(written), within=5, what="every value accounted for"
    )
    assert received() == written[: len(received())]  # the oldest are kept, in order


async def test_server_that_never_comes_up(
    start_source: StartSource, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="collector")
    port = free_port()
    run = await start_source(port)
    await until(lambda: run.health.errors >= 3, within=10, what="three failed attempts")
    assert not run.health.connected
    assert not run.task.done()
    assert "ConnectionRefusedError" in (run.health.last_error or "")
    errors = collector_records(caplog, logging.ERROR)
    assert len(errors) == 1
    assert f"127.0.0.1:{port}" in errors[0].getMessage() and "Connect call failed" in errors[0].getMessage()
    assert run.source.state()["connected"] is False


class OnePasswordUsers:
    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        return User(role=UserRole.User) if (username, password) == ("operator", "test-only-pw") else None


async def test_signed_and_encrypted_with_user_and_password(
    tmp_path: Path, servers: list[KilnServer], start_source: StartSource
) -> None:
    host = socket.gethostname()
    server_cert, server_key = tmp_path / "server.der", tmp_path / "server.pem"
    client_cert, client_key = tmp_path / "client.der", tmp_path / "client.pem"
    await cert_gen.setup_self_signed_certificate(
        server_key, server_cert, "urn:freeopcua:python:server", host, [ExtendedKeyUsageOID.SERVER_AUTH], {}
    )
    await cert_gen.setup_self_signed_certificate(
        client_key, client_cert, "urn:kilnwatch:test-client", host, [ExtendedKeyUsageOID.CLIENT_AUTH], {}
    )
    port = free_port()
    srv = await start_server(port, user_manager=OnePasswordUsers(), certs=(server_cert, server_key))
    servers.append(srv)
    secure = {
        "security_policy": "Basic256Sha256",
        "security_mode": "SignAndEncrypt",
        "certificate": str(client_cert),
        "private_key": str(client_key),
        "server_certificate": str(server_cert),
        "username": "operator",
    }
    good = await start_source(port, NODES[:1], password="test-only-pw", **secure)
    wrong = await start_source(port, NODES[:1], password="wrong", **secure)
    await until(lambda: good.health.connected, within=15, what="secure connect")
    await srv.write("flow", 3.5, T0)
    await until(lambda: (10, T0_NS) in good.sink.by_key(), what="value over the secure channel")
    await until(lambda: wrong.health.errors >= 1, within=15, what="rejected login")
    assert not wrong.health.connected


async def test_values_missed_before_the_start_are_read_from_the_servers_history(
    servers: list[KilnServer], start_source: StartSource, caplog: pytest.LogCaptureFixture
) -> None:
    """A restarted kilnwatch resumes each node after its newest stored value: what the server
    historised meanwhile arrives with its source times; a node without history is left alone."""
    caplog.set_level(logging.INFO, logger="collector.sources.opcua")
    port = free_port()
    srv = await start_server(port)
    servers.append(srv)
    await srv.server.historize_node_data_change(srv.variables["flow"], period=None, count=1000)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)  # within history_backfill_h
    base_ns = int(base.timestamp()) * 10**9
    for i in range(20):
        await srv.write("flow", 100.0 + i, base + timedelta(seconds=i))
        await srv.write("count", i, base + timedelta(seconds=i))
        await asyncio.sleep(0.02)  # the server's history records one change per 10-ms cycle
    stored_until = {SIGNAL["flow"]: base_ns + 4 * 10**9, SIGNAL["count"]: base_ns + 4 * 10**9}
    run = await start_source(port, options={"resume_from_ns": stored_until})

    def of(signal: int) -> dict[int, float]:
        return {t: v for (s, t), (v, _) in run.sink.by_key().items() if s == signal}

    missed = {base_ns + i * 10**9: 100.0 + i for i in range(5, 20)}
    await until(lambda: missed.items() <= of(SIGNAL["flow"]).items(), what="the missed flow values")
    assert min(of(SIGNAL["flow"])) == base_ns + 5 * 10**9  # nothing from before the newest stored value
    assert set(of(SIGNAL["count"])) == {base_ns + 19 * 10**9}  # no history: the current value only
    messages = [r.getMessage() for r in collector_records(caplog, logging.INFO)]
    assert any("missed values read from the server's history" in m for m in messages)


async def test_history_is_not_read_when_switched_off(
    servers: list[KilnServer], start_source: StartSource
) -> None:
    port = free_port()
    srv = await start_server(port)
    servers.append(srv)
    await srv.server.historize_node_data_change(srv.variables["flow"], period=None, count=1000)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    base_ns = int(base.timestamp()) * 10**9
    for i in range(5):
        await srv.write("flow", 100.0 + i, base + timedelta(seconds=i))
        await asyncio.sleep(0.02)
    run = await start_source(
        port, options={"resume_from_ns": {SIGNAL["flow"]: base_ns}}, history_backfill_h=0
    )
    await until(lambda: len(run.sink.all()) >= len(VARIABLES), what="the current values")
    await asyncio.sleep(0.5)
    flow = {t for (s, t) in run.sink.by_key() if s == SIGNAL["flow"]}
    assert flow == {base_ns + 4 * 10**9}
