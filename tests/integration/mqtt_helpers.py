"""Helpers of the MQTT collector tests: a real pipeline and SQLite store behind the source, a plain
paho publisher, and analyser-rack payloads (fixtures: :mod:`tests.integration.mqtt_fixtures`)."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from collector.conditioning import Conditioner
from collector.health import SourceHealth
from collector.metrics import Metrics
from collector.pipeline import Pipeline
from collector.sources.mqtt.source import MqttSource
from collector.sources.mqtt.spec import MqttBinding, MqttBrokerSpec
from collector.sources.supervisor import Supervisor
from collector.store.local import LocalStore
from collector.store.reader import StoreReader
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.paho import stop_client

CHANNELS = ("co2", "o2", "h2o")
STATUS = {"OK": "ok", "MAINT": "maintenance", "CAL": "calibration", "FLT": "fault"}
NS = 1_000_000_000


@dataclass
class Rig:
    path: Path
    names: tuple[str, ...]
    metrics: Metrics
    pipeline: Pipeline

    def reader(self) -> StoreReader:
        return StoreReader(self.path)

    def source(
        self,
        broker: Mosquitto,
        bindings: Sequence[tuple[str, MqttBinding]],
        client_id: str,
        pipeline: Pipeline | None = None,
        **spec: Any,
    ) -> MqttSource:
        index = {n: i for i, n in enumerate(self.names)}
        return MqttSource(
            name="cems",
            spec=MqttBrokerSpec(
                host=broker.host,
                port=broker.port,
                client_id=client_id,
                reconnect_min_s=0.05,
                reconnect_max_s=0.5,
                **spec,
            ),
            bindings=[(index[s], b) for s, b in bindings],
            sink=pipeline or self.pipeline,
            health=SourceHealth("cems", "mqtt"),
            metrics=self.metrics,
            signal_names=self.names,
            instance_id="test",
        )

    def received(self) -> float:
        return self.metrics.registry.get_sample_value("kilnwatch_readings_total", {"source": "cems"}) or 0.0

    def rejected(self, signal: str, reason: str) -> float:
        labels = {"source": "cems", "signal": signal, "reason": reason}
        return self.metrics.registry.get_sample_value("kilnwatch_rejected_total", labels) or 0.0


def make_pipeline(path: Path, names: tuple[str, ...], metrics: Metrics) -> Pipeline:
    n = len(names)
    conditioner = Conditioner([1.0] * n, [0.0] * n, [-math.inf] * n, [math.inf] * n)
    return Pipeline(LocalStore(path, names), conditioner, names, metrics)


@asynccontextmanager
async def rig(tmp_path: Path, names: Sequence[str]) -> AsyncIterator[Rig]:
    metrics = Metrics()
    path = tmp_path / "kilnwatch.sqlite"
    pipeline = make_pipeline(path, tuple(names), metrics)
    task = asyncio.create_task(pipeline.run())
    try:
        yield Rig(path, tuple(names), metrics, pipeline)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        pipeline.close()
        pipeline.store.close()


@asynccontextmanager
async def running(source: MqttSource) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(Supervisor(source).run())
    try:
        await asyncio.wait_for(source.subscribed.wait(), 10)
        yield task
    finally:
        await source.stop()
        assert task.done()


class Publisher:
    """A plain paho publisher at QoS 1 on its own network thread."""

    def __init__(self, broker: Mosquitto) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.infos: list[paho.MQTTMessageInfo] = []

    def publish(self, topic: str, payload: bytes) -> None:
        self.infos.append(self.client.publish(topic, payload, qos=1))

    async def flush(self, within_s: float = 20.0) -> None:
        def wait() -> None:
            for info in self.infos:
                info.wait_for_publish(within_s)
                assert info.is_published()

        await asyncio.to_thread(wait)

    def close(self) -> None:
        stop_client(self.client)


async def until(predicate: Callable[[], bool], what: str, within_s: float = 15.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.02)


def rack_bindings(topic: str, kiln: str = "k1") -> list[tuple[str, MqttBinding]]:
    return [
        (
            f"{kiln}.{c}",
            MqttBinding(
                broker="cems",
                topic=topic,
                value_path=f"channels.{c}.value",
                status_path=f"channels.{c}.status",
                timestamp_path="ts",
            ),
        )
        for c in CHANNELS
    ]


def rack_payload(ts_ns: int, value: float, status: str = "OK") -> bytes:
    ts = datetime.fromtimestamp(ts_ns // NS, UTC).replace(microsecond=ts_ns % NS // 1000)
    channels = {c: {"value": value + i, "unit": "vol%", "status": status} for i, c in enumerate(CHANNELS)}
    return orjson.dumps({"ts": ts.isoformat().replace("+00:00", "Z"), "status": status, "channels": channels})


def base_ns() -> int:
    """A recent whole second, so that every timestamp is in the past and distinct per test."""
    return (time.time_ns() // NS - 3600) * NS


RACK_NAMES = tuple(f"k1.{c}" for c in CHANNELS)
