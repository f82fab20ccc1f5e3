"""Figure 1: readings/s from mosquitto through kilnwatch's MQTT collector into the durable store.

Starts its own mosquitto (kilnwatch's shipped configuration) on a free port. Per run, two
persistent sessions (MQTT 5, QoS 1, receive maximum 1000) subscribe to the demo plant's analyser
topics and go offline; paho publishers (a process per kiln topic) queue ``--messages`` analyser
messages for both at QoS 1. The messages are those of the simulator (``simulators.cems_payload``):
two kilns, one JSON document per kiln and second with 7 channels, each with value, unit and
status, an ISO 8601 timestamp. Then each subscriber drains its queue in turn, the order alternating
between runs:

- value: kilnwatch's ``MqttSource`` (the demo plant's bindings, manual ack after the commit) into
  the ``Pipeline`` (conditioning, one SQLite transaction per group) and a fresh local store:
  readings committed per second;
- baseline: a bare paho subscriber (paho acknowledges on receipt) that only counts messages.

Both count readings as messages x 7 channels. Draining a queue measures the subscriber alone: a
live publisher would cap both at its own rate and share the two cores with them. After the first
message, ``--warmup`` s, then ``--seconds`` s are measured; the queue must outlast them. A warm-up
run, then ``--repeats`` runs; each run also logs the process CPU time per message of both; prints
the medians:

    RESULT mqtt_ingest value=<readings/s> unit=readings/s baseline=<readings/s> ratio=<value/baseline>
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import statistics
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import paho.mqtt.client as paho
from common import Broker, cpu_seconds, free_port, log, mosquitto, quiet_logs, result_line, wait_for
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector.health import SourceHealth
from collector.metrics import Metrics
from collector.pipeline import Pipeline
from collector.sources.mqtt.source import MqttSource
from collector.sources.mqtt.spec import MqttBrokerSpec
from collector.store.local import LocalStore
from kilnwatch.config import parse_plant
from kilnwatch.demo import DEMO_KILNS, demo_plant
from kilnwatch.plant import Runtime, build_runtime
from simulators.cems_payload import build_messages
from simulators.model import ANALYSER_CHANNELS, build_models
from simulators.scenarios import Scenario

CHANNELS = len(ANALYSER_CHANNELS)
TOPICS = "kilnwatch/sim/+/cems"
RECEIVE_MAXIMUM = 1000
NS = 1_000_000_000

Message = tuple[str, bytes]


def analyser_messages(n: int) -> list[Message]:
    """``n`` simulator messages of the demo kilns, one per kiln and second, ending an hour ago."""
    models = build_models(DEMO_KILNS)
    ticks = -(-n // len(models))
    t_ns = (time.time_ns() // NS - 3600 - ticks) * NS + np.arange(ticks, dtype=np.int64) * NS
    per_kiln = []
    for m in models:
        applied = Scenario().apply(m, t_ns, m.sample(t_ns))
        per_kiln.append([(f"kilnwatch/sim/{m.kiln_id}/cems", x.payload) for x in build_messages(applied)])
    return [msg for tick in zip(*per_kiln, strict=True) for msg in tick][:n]


def connect_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    return props


class BareSubscriber:
    """paho at QoS 1 on a persistent session of ``protocol`` ("5" or "3.1.1") subscribed to
    ``topics``, counting messages on its network thread."""

    def __init__(
        self, broker: Broker, client_id: str, protocol: str = "5", topics: Sequence[str] = (TOPICS,)
    ) -> None:
        self.broker, self.count, self.v5 = broker, 0, protocol == "5"
        if self.v5:
            self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        else:
            self.client = paho.Client(
                CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311, clean_session=False
            )
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message

    def _on_message(self, _c: paho.Client, _u: object, _m: paho.MQTTMessage) -> None:
        self.count += 1

    def connect(self, clean: bool = False) -> None:
        self.subscribed.clear()
        if self.v5:
            props = connect_properties()
            if clean:
                props.SessionExpiryInterval = 0
            self.client.connect(self.broker.host, self.broker.port, clean_start=clean, properties=props)
        elif clean:
            raise ValueError("an MQTT 3.1.1 subscriber here resumes its persistent session only")
        else:
            self.client.connect(self.broker.host, self.broker.port)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise TimeoutError("the bare subscriber was not subscribed within 10 s")

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def fill(broker: Broker, messages: list[Message]) -> float:
    """Queue ``messages`` in the broker, one publishing process per topic (as one gateway per kiln;
    one process alone is 3x slower, its two threads contending for the GIL); returns messages/s."""
    by_topic: dict[str, list[bytes]] = {}
    for topic, payload in messages:
        by_topic.setdefault(topic, []).append(payload)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=publish, args=(broker, t, p)) for t, p in by_topic.items()]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"a publisher exited with {proc.exitcode}")
    return len(messages) / (time.perf_counter() - started)


def publish(broker: Broker, topic: str, payloads: list[bytes]) -> None:
    """Publish at QoS 1 until the broker acknowledged every message."""
    done = threading.Semaphore(0)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{topic}")
    client.max_inflight_messages_set(RECEIVE_MAXIMUM)
    client.max_queued_messages_set(0)
    client.on_publish = lambda *_: done.release()
    client.connect(broker.host, broker.port)
    client.loop_start()
    for payload in payloads:
        client.publish(topic, payload, qos=1)
    for _ in payloads:
        if not done.acquire(timeout=60):
            raise TimeoutError("the broker stopped acknowledging the publisher")
    client.disconnect()
    client.loop_stop()


class Rate(NamedTuple):
    readings_per_s: float
    cpu_us_per_message: float
    """CPU time of the whole process (every thread) per message [µs]."""


class QueueRanOut(RuntimeError):
    """The subscriber emptied the queue before the window ended: the run needs more messages."""


def window(count: Callable[[], float], warmup_s: float, seconds: float, total: float) -> tuple[float, float]:
    """(count / s, CPU s per count of this process and its MQTT worker processes) over ``seconds``
    after ``warmup_s`` from the first count; the queue (``total``) must outlast the window."""
    wait_for(lambda: count() > 0, 30, "the first message", interval=0.002)
    time.sleep(warmup_s)
    n0, t0, c0 = count(), time.perf_counter(), cpu_now()
    time.sleep(seconds)
    n1, t1, c1 = count(), time.perf_counter(), cpu_now()
    if n1 >= total:
        raise QueueRanOut(f"the queue of {total:.0f} ran out within the window")
    return (n1 - n0) / (t1 - t0), (c1 - c0) / max(n1 - n0, 1)


def cpu_now() -> float:
    """CPU seconds of this process and of its live MQTT worker processes."""
    workers = [p.pid for p in multiprocessing.active_children() if p.name.startswith("kilnwatch-mqtt")]
    return time.process_time() + sum(cpu_seconds(pid) for pid in workers if pid is not None)


def bare_rate(sub: BareSubscriber, n: int, warmup_s: float, seconds: float) -> Rate:
    sub.connect()
    try:
        per_s, cpu_s = window(lambda: sub.count, warmup_s, seconds, n)
        return Rate(per_s * CHANNELS, cpu_s * 1e6)
    finally:
        sub.disconnect()


@contextlib.asynccontextmanager
async def kilnwatch(runtime: Runtime, spec: MqttBrokerSpec, store_path: Path) -> AsyncIterator[Pipeline]:
    """kilnwatch's MQTT source and pipeline into a fresh local store, running until the exit."""
    metrics = Metrics()
    store = LocalStore(store_path, runtime.table.ids)
    pipeline = Pipeline(store, runtime.conditioner, runtime.table.ids, metrics)
    [(name, bindings)] = runtime.mqtt_bindings.items()
    health = SourceHealth(name, "mqtt")
    source = MqttSource(f"mqtt:{name}", spec, bindings, pipeline, health, metrics, runtime.table.ids, "bench")
    tasks = [asyncio.create_task(pipeline.run()), asyncio.create_task(source.run())]
    try:
        await asyncio.wait_for(source.subscribed.wait(), 10)
        yield pipeline
    finally:
        await source.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pipeline.close()
        store.close()


async def kilnwatch_rate(
    runtime: Runtime, spec: MqttBrokerSpec, store_path: Path, n: int, warmup_s: float, seconds: float
) -> Rate:
    """Readings per second committed to a fresh local store by the MQTT source and the pipeline."""
    async with kilnwatch(runtime, spec, store_path) as pipeline:
        count = lambda: float(pipeline.stored_readings)  # noqa: E731
        per_s, cpu_s = await asyncio.to_thread(window, count, warmup_s, seconds, n * CHANNELS)
        return Rate(per_s, cpu_s * CHANNELS * 1e6)


def one_run(
    broker: Broker,
    runtime: Runtime,
    spec: MqttBrokerSpec,
    workdir: Path,
    run: int,
    messages: list[Message],
    args: argparse.Namespace,
) -> tuple[Rate, Rate, float]:
    """(kilnwatch, bare paho, fill messages/s) of one run with fresh sessions."""
    spec = spec.model_copy(update={"client_id": f"bench-kilnwatch-{run}"})
    bare_id = f"bench-bare-{run}"
    bare = BareSubscriber(broker, bare_id)
    bare.connect()
    bare.disconnect()
    asyncio.run(create_session(runtime, spec, workdir / f"session{run}.sqlite3"))  # the broker keeps it
    filled = fill(broker, messages)
    n = len(messages)

    def ours() -> Rate:
        store = workdir / f"run{run}.sqlite3"
        return asyncio.run(kilnwatch_rate(runtime, spec, store, n, args.warmup, args.seconds))

    if run % 2:
        value, base = ours(), bare_rate(bare, n, args.warmup, args.seconds)
    else:
        base, value = bare_rate(bare, n, args.warmup, args.seconds), ours()
    for client_id in (str(spec.client_id), bare_id):
        drop_session(broker, client_id)
    return value, base, filled


def covered_run(
    broker: Broker,
    runtime: Runtime,
    spec: MqttBrokerSpec,
    workdir: Path,
    run: int,
    messages: list[Message],
    args: argparse.Namespace,
) -> tuple[Rate, Rate, float, list[Message]]:
    """:func:`one_run`, with twice the messages each time the queue ran out within the window (a
    faster machine); also returns the messages it took, for the next runs."""
    while True:
        try:
            return (*one_run(broker, runtime, spec, workdir, run, messages, args), messages)
        except QueueRanOut as err:
            for client_id in (f"bench-kilnwatch-{run}", f"bench-bare-{run}"):
                drop_session(broker, client_id)
            for stale in workdir.glob(f"run{run}.sqlite3*"):  # first write wins: a fresh store
                stale.unlink()
            messages = analyser_messages(2 * len(messages))
            log(f"mqtt_ingest run {run}: {err}; again with {len(messages):,} messages")


async def create_session(runtime: Runtime, spec: MqttBrokerSpec, store_path: Path) -> None:
    async with kilnwatch(runtime, spec, store_path):
        pass


def drop_session(broker: Broker, client_id: str) -> None:
    """End a session and drop what the broker still queues for it (clean start, expiry 0)."""
    sub = BareSubscriber(broker, client_id)
    sub.client.on_connect = lambda *_: sub.subscribed.set()
    sub.connect(clean=True)
    sub.disconnect()


def measure(workdir: Path, args: argparse.Namespace) -> None:
    messages = analyser_messages(args.messages)
    log(f"mqtt_ingest: {len(messages)} messages of {np.mean([len(p) for _, p in messages]):.0f} bytes")
    with mosquitto(workdir) as broker:
        plant = parse_plant(demo_plant(opcua_port=free_port(), mqtt_port=broker.port), "bench plant")
        runtime, spec = build_runtime(plant), plant.sources.mqtt["cems"]
        warmup = argparse.Namespace(**{**vars(args), "warmup": 0.2, "seconds": 0.5})
        covered_run(broker, runtime, spec, workdir, 0, messages[: len(messages) // 4], warmup)
        value: list[float] = []
        base: list[float] = []
        for run in range(1, args.repeats + 1):
            ours, bare, filled, messages = covered_run(broker, runtime, spec, workdir, run, messages, args)
            value.append(ours.readings_per_s)
            base.append(bare.readings_per_s)
            log(
                f"mqtt_ingest run {run}: kilnwatch {value[-1]:,.0f}, bare paho {base[-1]:,.0f} readings/s "
                f"(ratio {value[-1] / base[-1]:.3f}); CPU per message {ours.cpu_us_per_message:.0f} and "
                f"{bare.cpu_us_per_message:.0f} µs; queued at {filled:,.0f} messages/s"
            )
    v, b = statistics.median(value), statistics.median(base)
    result_line("mqtt_ingest", v, "readings/s", b, v / b)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--messages", type=int, default=100_000, help="queued per run (2 kilns, 7 channels each)"
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds after the first message")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per subscriber and run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="kw-bench-mqtt-") as tmp:
        measure(Path(tmp), args)


if __name__ == "__main__":
    main()
