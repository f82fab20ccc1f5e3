"""Bounded memory for any MQTT input: packet size limit, oversize payloads, bounded inboxes.

Real mosquitto (whose configuration lets a 50 MiB message through: the publisher below gets its
PUBACK and a subscriber without a limit receives it), the real MQTT source in both worker modes,
the real pipeline and SQLite store.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from collector.metrics import Metrics
from collector.pipeline import Pipeline
from collector.sources.mqtt.source import MqttSource
from collector.store.local import LocalStore
from collector.store.reader import StoreReader
from tests.fixtures.mosquitto import Mosquitto
from tests.integration.mqtt_helpers import (
    NS,
    RACK_NAMES,
    Publisher,
    base_ns,
    rack_bindings,
    rack_payload,
    rig,
    running,
    until,
)

pytest_plugins = ["tests.fixtures.mosquitto", "tests.integration.mqtt_fixtures"]
pytestmark = pytest.mark.integration

MIB = 1024 * 1024

#: Publishes argv[4] padded to argv[5] bytes at QoS 1 (MQTT 5) and waits for a successful PUBACK;
#: a subscriber without a packet size limit must receive it back: the broker passes such a message.
BIG_PUBLISHER = """
import sys, threading, paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
host, port, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
doc, size = sys.argv[4].encode(), int(sys.argv[5])
payload = doc[:-1] + b',"pad":"' + b"x" * (size - len(doc) - 9) + b'"}'
assert len(payload) == size
got, subscribed = threading.Event(), threading.Event()
sub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
sub.on_subscribe = lambda *a: subscribed.set()
sub.on_message = lambda c, u, m: len(m.payload) == size and got.set()
sub.connect(host, port)
sub.subscribe(topic, qos=1)
sub.loop_start()
assert subscribed.wait(10)
pub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
pub.connect(host, port)
pub.loop_start()
info = pub.publish(topic, payload, qos=1)
info.wait_for_publish(60)
assert info.is_published() and not info.rc
assert got.wait(60), "the broker did not deliver the large message to a subscriber without a limit"
pub.disconnect(); pub.loop_stop(); sub.disconnect(); sub.loop_stop()
"""


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)


def _worker_pids(source_name: str) -> list[int]:
    return [
        p.pid for p in multiprocessing.active_children() if p.name == f"kilnwatch-{source_name}" and p.pid
    ]


def _publish_big(broker: Mosquitto, topic: str, doc: bytes, size: int) -> None:
    args = [
        sys.executable,
        "-c",
        BIG_PUBLISHER,
        broker.host,
        str(broker.port),
        topic,
        doc.decode(),
        str(size),
    ]
    done = subprocess.run(args, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]


@pytest.fixture(params=["process", "thread"])
def worker(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_50_mib_payload_is_refused_without_memory_growth(
    broker: Mosquitto, prefix: str, tmp_path: Path, worker: str
) -> None:
    topic, start = f"{prefix}/k1/cems", base_ns()
    async with rig(tmp_path, RACK_NAMES) as r:
        source = r.source(broker, rack_bindings(topic), f"{prefix}-c", worker=worker)
        assert source.spec.max_packet_size == 256 * 1024  # the default
        async with running(source):
            pids = [os.getpid(), *_worker_pids(source.name)]
            assert len(pids) == (2 if worker == "process" else 1)
            before = {pid: _status(pid, "VmRSS") for pid in pids}
            for pid in pids:
                _reset_peak(pid)
            await asyncio.to_thread(_publish_big, broker, topic, rack_payload(start, 99.0), 50 * MIB)
            pub = Publisher(broker)
            for i in range(1, 6):
                pub.publish(topic, rack_payload(start + i * NS, float(i)))
            await pub.flush()
            pub.close()
            await until(lambda: r.reader().count_readings() == 15, "the good messages after the large one")
            growth = {pid: _status(pid, "VmHWM") - before[pid] for pid in pids}
    print(f"peak RSS growth [MiB] ({worker}):", {pid: round(g / MIB, 1) for pid, g in growth.items()})
    assert all(g < 64 * MIB for g in growth.values()), growth
    _, batch = r.reader().readings(list(RACK_NAMES))
    assert start not in batch.ts.tolist()  # the large message was never decoded
    assert sorted(set(batch.ts.tolist())) == [start + i * NS for i in range(1, 6)]


async def test_a_payload_above_the_limit_that_arrives_anyway_is_dead_lettered_undecoded(
    broker: Mosquitto, prefix: str, tmp_path: Path, worker: str
) -> None:
    """MQTT 3.1.1 has no Maximum Packet Size: the broker sends the message, kilnwatch refuses it."""
    topic, start = f"{prefix}/k1/cems", base_ns()
    big = orjson.dumps({**orjson.loads(rack_payload(start, 1.0)), "pad": "y" * 300_000})
    async with rig(tmp_path, RACK_NAMES) as r:
        source = r.source(
            broker,
            rack_bindings(topic),
            f"{prefix}-c",
            worker=worker,
            protocol="3.1.1",
            max_packet_size=65536,
        )
        async with running(source):
            pub = Publisher(broker)
            pub.publish(topic, big)
            pub.publish(topic, rack_payload(start + NS, 2.0))
            await pub.flush()
            pub.close()
            await until(lambda: r.reader().count_readings() == 3, "the good message after the large one")
            await until(lambda: len(r.reader().dead_letters()) == 1, "the dead letter")
            # The acks go out once the commit has returned to the pipeline, a moment after the
            # reader sees it: wait for them, or the stop below may come first and the broker redeliver.
            await asyncio.wait_for(r.pipeline.drain(), 10)
        # acknowledged: the same client id gets nothing again
        async with running(r.source(broker, rack_bindings(topic), f"{prefix}-c", protocol="3.1.1")):
            await asyncio.sleep(0.5)
    (letter,) = r.reader().dead_letters()
    assert letter.reason.startswith("too_large: ") and topic in letter.reason
    assert letter.payload == big[:4096]
    assert (letter.size, letter.sha256) == (len(big), hashlib.sha256(big).hexdigest())
    assert all(r.rejected(name, "too_large") == 1 for name in RACK_NAMES)
    _, batch = r.reader().readings(list(RACK_NAMES))
    assert sorted(set(batch.ts.tolist())) == [start + NS]


async def test_a_stalled_pipeline_bounds_the_inboxes_and_loses_nothing(
    broker: Mosquitto, prefix: str, tmp_path: Path, worker: str
) -> None:
    """Back-pressure: while the store does not commit, at most about two inboxes' worth of messages
    wait in kilnwatch and the rest waits in the broker; the source still stops promptly, and
    everything is stored once the store commits again."""
    topic, start, n = f"{prefix}/k1/cems", base_ns(), 1500
    pad = "z" * 1000
    metrics = Metrics()
    store = LocalStore(tmp_path / "kw.sqlite3", RACK_NAMES)
    async with rig(tmp_path / "rig", RACK_NAMES) as r:
        pipeline = Pipeline(store, r.pipeline.conditioner, RACK_NAMES, metrics, maxsize=1, max_group=1)

        def source() -> MqttSource:
            return r.source(
                broker,
                rack_bindings(topic),
                f"{prefix}-c",
                pipeline=pipeline,
                worker=worker,
                inbox_max_bytes=65536,
            )

        first = source()
        async with running(first):
            pub = Publisher(broker)
            for i in range(n):
                doc = {**orjson.loads(rack_payload(start + i * NS, float(i))), "pad": pad}
                pub.publish(topic, orjson.dumps(doc))
            await pub.flush()
            pub.close()
            await asyncio.sleep(1.0)  # the pipeline is not running: messages pile up where allowed
            assert first.inbox_bytes <= 2 * 65536
            assert r.received() < 3 * n
            stopping = time.monotonic()
        assert time.monotonic() - stopping < 5.0  # a waiting worker or paho thread does not hold it up
        task = asyncio.create_task(pipeline.run())
        reader = StoreReader(store.path)
        try:
            async with running(source()):
                await until(lambda: reader.count_readings() == 3 * n, f"{3 * n} readings", within_s=60)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    pipeline.close()
    store.close()
