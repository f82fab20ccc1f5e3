"""The simulator's CEMS publisher against a real mosquitto on 127.0.0.1."""

import asyncio
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from simulators.clock import SimClock
from simulators.model import ANALYSER_CHANNELS, build_models
from simulators.mqtt_publisher import SimMqttPublisher
from simulators.scenarios import Event, Kind, Scenario
from tests.fixtures.paho import stop_client

pytestmark = pytest.mark.integration
S = 1_000_000_000
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A mosquitto process with its own config and persistence directory."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        conf = workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {workdir}/",
            "max_queued_messages 100000",
            "max_queued_bytes 0",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        self.conf = conf
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.dir / "mosquitto.log", "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start: " + (self.dir / "mosquitto.log").read_text())

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed")
    b = Broker(tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.stop()


class Subscriber:
    """A plain paho subscriber (persistent session) collecting (topic, payload) pairs."""

    def __init__(self, port: int, client_id: str) -> None:
        self.messages: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self.clock: SimClock | None = None
        self.arrivals: list[int] = []  # simulated time of arrival, once a clock is set
        self.subscribed = queue.SimpleQueue[bool]()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe("kilnwatch/sim/+/cems", qos=1)
        c.on_subscribe = lambda cl, u, mid, rc, p: self.subscribed.put(True)

        def on_message(cl: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
            if self.clock is not None:
                self.arrivals.append(self.clock.now_ns())
            self.messages.put((m.topic, bytes(m.payload)))

        c.on_message = on_message
        c.reconnect_delay_set(1, 2)
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.client = c
        self.subscribed.get(timeout=10)

    def drain(self) -> list[tuple[str, bytes]]:
        out = []
        while not self.messages.empty():
            out.append(self.messages.get())
        return out

    def close(self) -> None:
        stop_client(self.client)


async def wait_for(predicate, timeout_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def ts_ns(text: str) -> int:
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000) * 1_000_000


async def test_publishes_one_exact_message_per_kiln_per_tick(broker: Broker) -> None:
    models = build_models(["kiln1", "kiln2"], seed=9)
    sub = Subscriber(broker.port, "test-sub-exact")
    clock = SimClock(backfill_s=3600, speed=60)
    try:
        async with SimMqttPublisher(models, clock, port=broker.port, client_id="sim-exact") as pub:
            assert await pub.wait_connected()
            await wait_for(lambda: pub.stats.messages >= 240)
        assert pub.stats.acked == pub.stats.messages  # stop() drains the QoS 1 acknowledgements
        await wait_for(lambda: sub.messages.qsize() >= pub.stats.messages)
        got = sub.drain()
    finally:
        sub.close()
    assert len(got) == pub.stats.messages
    for model in models:
        docs = [json.loads(p) for t, p in got if t == f"kilnwatch/sim/{model.kiln_id}/cems"]
        t = np.array([ts_ns(d["ts"]) for d in docs])
        assert (np.diff(t) == S).all(), "one message per simulated second, in order, none missing"
        assert all(d["ts"].endswith(".000Z") and len(d["ts"]) == 24 for d in docs)
        expected = model.sample(t)
        for name, key in ANALYSER_CHANNELS.items():
            np.testing.assert_array_equal([d["channels"][name]["value"] for d in docs], expected[key])
        assert {d["status"] for d in docs} == {"OK"}
        assert docs[0]["channels"]["co2"]["unit"] == "vol%" and docs[0]["channels"]["so2"]["unit"] == "mg/Nm3"


async def test_scenarios_reach_the_broker(broker: Broker) -> None:
    start = datetime.fromtimestamp(datetime.now(UTC).timestamp() // 60 * 60 - 7200, tz=UTC)
    t0 = round(start.timestamp()) * S
    scenario = Scenario(
        [
            Event(Kind.CALIBRATION, "kiln1", t0 + 10 * S, 10),
            Event(Kind.MALFORMED, "kiln1", t0 + 30 * S, 1, form="invalid_json"),
            Event(Kind.MALFORMED, "kiln1", t0 + 31 * S, 1, form="string_value", channels=("stack.o2",)),
            Event(Kind.DROPOUT, "kiln1", t0 + 40 * S, 5),
            Event(Kind.BURST, "kiln1", t0 + 60 * S, 20),
        ]
    )
    sub = Subscriber(broker.port, "test-sub-scenario")
    sub.clock = clock = SimClock(start=start, speed=20)
    try:
        async with SimMqttPublisher(
            build_models(["kiln1"]), clock, port=broker.port, client_id="sim-scenario", scenario=scenario
        ) as pub:
            await wait_for(lambda: pub.stats.last_tick_ns >= t0 + 90 * S)
        await wait_for(lambda: sub.messages.qsize() >= pub.stats.messages)
        payloads = [p for _, p in sub.drain()]
    finally:
        sub.close()
    docs, arrived, broken = [], [], []
    for p, at in zip(payloads, sub.arrivals, strict=True):
        try:
            docs.append(json.loads(p))
            arrived.append((at - t0) / S)
        except json.JSONDecodeError:
            broken.append(p)
    assert len(broken) == 1
    rel = [(ts_ns(d["ts"]) - t0) // S for d in docs]
    by_rel = dict(zip(rel, docs, strict=True))
    late = dict(zip(rel, arrived, strict=True))
    assert by_rel[12]["status"] == "CAL" and by_rel[12]["channels"]["co2"]["value"] == 0.0
    assert by_rel[19]["channels"]["co2"]["value"] == 18.0 and by_rel[20]["status"] == "OK"
    assert by_rel[31]["channels"]["o2"]["value"] == "n/a"
    assert not any(40 <= r < 45 for r in rel) and 30 not in rel
    # The gateway holds 60-79 s and sends them all when it reconnects at 80 s: complete, in order, late.
    assert [r for r in rel if 60 <= r < 80] == list(range(60, 80))
    assert all(late[r] >= 80 for r in range(60, 80))
    assert all(late[r] < 80 for r in range(45, 60))  # not held: they arrive before the burst is released


async def test_messages_published_while_the_broker_is_down_arrive_after_it_returns(broker: Broker) -> None:
    sub = Subscriber(broker.port, "test-sub-outage")
    clock = SimClock(backfill_s=3600, speed=20)
    try:
        models = build_models(["kiln1"])
        async with SimMqttPublisher(models, clock, port=broker.port, client_id="sim-out") as pub:
            assert await pub.wait_connected()
            await wait_for(lambda: pub.stats.messages >= 20)
            broker.stop()
            await wait_for(lambda: not pub.connected)
            sent_before = pub.stats.messages
            await asyncio.sleep(1.5)  # about 30 simulated seconds of readings queued in paho
            broker.start()
            await wait_for(lambda: pub.stats.connects >= 2 and pub.stats.acked == pub.stats.messages)
            assert pub.stats.messages > sent_before + 20
        # Count distinct readings: messages in flight when the broker stopped come again (QoS 1),
        # and counting those duplicates once ended the wait before the last readings had arrived.
        readings: set[int] = set()

        def distinct() -> int:
            readings.update(ts_ns(json.loads(p)["ts"]) for _, p in sub.drain())
            return len(readings)

        await wait_for(lambda: distinct() >= pub.stats.messages)
        t = np.array(sorted(readings))
    finally:
        sub.close()
    assert (np.diff(t) == S).all(), "no reading lost across the broker restart"
    assert len(t) == pub.stats.messages  # QoS 1 may deliver duplicates; distinct readings are all there


REPO = Path(__file__).resolve().parents[2]


async def test_cli_runs_both_servers_and_stops_cleanly(broker: Broker) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulators",
        "--kilns",
        "k1,k2",
        "--opcua-port",
        str(port),
        "--mqtt-port",
        str(broker.port),
        "--speed",
        "120",
        "--backfill-hours",
        "1",
        "--progress",
        "0.3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    sub = Subscriber(broker.port, "test-sub-cli")
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("MQTT messages" in ln and "acked" in ln and " 0 acked" not in ln for ln in lines):
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert line, b"".join(ln.encode() for ln in lines)
            lines.append(line.decode())
        assert any(f"opc.tcp://127.0.0.1:{port}" in ln for ln in lines)
        assert any("min behind, 120x" in ln for ln in lines)
        await wait_for(lambda: sub.messages.qsize() >= 2)
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
        sub.close()
    topics = {t for t, _ in sub.drain()}
    assert topics == {"kilnwatch/sim/k1/cems", "kilnwatch/sim/k2/cems"}
