"""First write wins, through the running service: an analyser message republished over a real
mosquitto with another CO2 value at a stored timestamp changes no hour and is recorded as a
conflict (store and /metrics); republished unchanged, it counts as duplicates."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from analytics.aggregates import HourAggregate
from analytics.batch import ReadingBatch
from collector.store.reader import StoreReader
from kilnwatch.config import PlantFile, parse_plant
from kilnwatch.demo import demo_plant
from kilnwatch.service import Service
from kilnwatch.settings import Settings
from simulators.cems_payload import build_messages
from simulators.model import ANALYSER_CHANNELS, SIGNAL_KEYS, KilnModel
from simulators.scenarios import Scenario
from tests.fixtures.loop_thread import LoopThread
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.ports import free_port
from tests.fixtures.service import wait_for
from tests.integration.mqtt_helpers import Publisher

pytest_plugins = ["tests.fixtures.mosquitto", "tests.integration.mqtt_fixtures"]
pytestmark = pytest.mark.integration

NS = 10**9
HOUR = 3600 * NS
CO2 = "kiln1.stack.co2"
SOURCE = "mqtt:cems"


def plant(broker: Mosquitto, topic: str) -> PlantFile:
    data = demo_plant(opcua_port=free_port(), mqtt_port=broker.port, kilns=("kiln1",))
    for signal in data["plants"][0]["kilns"][0]["signals"]:
        if "mqtt" in signal["source"]:
            signal["source"]["mqtt"]["topic"] = topic
    data["sources"]["mqtt"]["cems"].update(reconnect_min_s=0.1, reconnect_max_s=1.0)
    return parse_plant(data, "first-write test plant")


@pytest.fixture
def service(broker: Mosquitto, prefix: str, tmp_path: Path) -> Iterator[tuple[Service, str, str, LoopThread]]:
    """The service with its analysers over MQTT (its OPC UA source finds no server, which changes
    nothing here: the test puts the OPC UA signals into the pipeline itself)."""
    topic = f"{prefix}/kiln1/cems"
    loop = LoopThread("kilnwatch-first-write")
    settings = Settings(data_dir=tmp_path, port=free_port(), instance_id=f"fw{uuid.uuid4().hex[:8]}")

    async def make() -> Service:
        return Service(plant(broker, topic), settings)

    svc = loop.run(make())
    asyncio.run_coroutine_threadsafe(svc.run(), loop.loop)
    loop.run(svc.started(), timeout=30)
    try:
        wait_for(
            lambda: svc.metrics.registry.get_sample_value("kilnwatch_source_connected", {"source": SOURCE})
        )
        yield svc, f"http://127.0.0.1:{svc.bound_port}", topic, loop
    finally:
        loop.loop.call_soon_threadsafe(svc.stop)
        loop.close()


def test_a_republished_reading_with_another_value_changes_no_hour(
    broker: Mosquitto, service: tuple[Service, str, str, LoopThread]
) -> None:
    svc, base, topic, loop = service
    hour = (time.time_ns() // HOUR - 3) * HOUR
    t = np.arange(hour, hour + HOUR + 120 * NS, NS, dtype=np.int64)
    model = KilnModel("kiln1", seed=5)
    applied = Scenario().apply(model, t, model.sample(t))
    analysers = set(ANALYSER_CHANNELS.values())
    table = svc.runtime.table
    others = ReadingBatch.concat(
        ReadingBatch.from_columns(
            np.full(len(t), table.index(f"kiln1.{k}")), t, applied.values[k], np.zeros(len(t))
        )
        for k in SIGNAL_KEYS
        if k not in analysers
    )
    for part in np.array_split(np.argsort(others.ts, kind="stable"), 8):
        loop.run(svc.pipeline.put(others.take(part), source="opcua:test"))
    messages = {m.t_ns: m.payload for m in build_messages(applied)}
    pub = Publisher(broker)
    for payload in messages.values():
        pub.publish(topic, payload)
    loop.run(pub.flush())
    reader = StoreReader(svc.settings.store_path)
    total = len(others) + len(messages) * len(ANALYSER_CHANNELS)
    wait_for(lambda: reader.count_readings() == total)
    before = settled(reader, hour)  # the MQTT part arrived after the rest: late data revised it
    assert before.co2_t is not None and np.isfinite(before.co2_t)

    at = hour + 1800 * NS
    original = messages[at]
    altered = orjson.loads(original)
    altered["channels"]["co2"]["value"] += 3.0
    pub.publish(topic, orjson.dumps(altered))  # the CO2 channel conflicts, the other six repeat
    pub.publish(topic, original)  # all seven repeat
    loop.run(pub.flush())
    with httpx.Client(timeout=10) as http:
        wait_for(lambda: metric(http, base, "kilnwatch_conflicting_readings_total", CO2) == 1)
        wait_for(lambda: metric(http, base, "kilnwatch_duplicate_readings_total") == 13)
        time.sleep(3.0)  # the engine recomputes late data within a tick (1 s): give it three
        after = closed_hour(reader, hour)
        assert after is not None and (after.co2_t, after.revision) == (before.co2_t, before.revision)
        (stored,) = reader.audit(CO2, at, at + 1)
        (conflict,) = reader.conflicts(CO2)
        assert (conflict.ts_ns, conflict.stored_value, conflict.source) == (at, stored.value, SOURCE)
        assert stored.value is not None and conflict.value == pytest.approx(stored.value + 3.0)
        assert reader.count_conflicts(["kiln1.stack.co2"], hour, hour + HOUR) == 1
        assert any(d.reason.startswith("conflict: ") and d.signal == CO2 for d in reader.dead_letters(SOURCE))

        # control: a reading at a new time in the same closed hour is late data and revises it
        # (on the 1-s grid a value half a second after another one changes no number)
        late = orjson.loads(original)
        late["ts"] = late["ts"].replace(".000Z", ".500Z")
        pub.publish(topic, orjson.dumps(late))
        loop.run(pub.flush())
        pub.close()
        wait_for(lambda: (h := closed_hour(reader, hour)) and h.revision > before.revision)
        assert metric(http, base, "kilnwatch_conflicting_readings_total", CO2) == 1


def closed_hour(reader: StoreReader, hour: int) -> HourAggregate | None:
    rows = reader.hours("kiln1", hour, hour + 1)
    return rows[0] if rows else None


def settled(reader: StoreReader, hour: int, quiet_s: float = 2.0) -> HourAggregate:
    """The hour once its revision has not changed for ``quiet_s``."""
    seen = wait_for(lambda: closed_hour(reader, hour))
    since = time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.1)
        now = closed_hour(reader, hour)
        assert now is not None
        if now.revision != seen.revision:
            seen, since = now, time.monotonic()
    return seen


def metric(http: httpx.Client, base: str, name: str, signal: str | None = None) -> float:
    """Sum of ``name`` over the MQTT source's samples (of one signal), from /metrics."""
    total = 0.0
    for line in http.get(base + "/metrics").text.splitlines():
        ours = line.startswith(name + "{") and f'source="{SOURCE}"' in line
        if ours and (signal is None or f'signal="{signal}"' in line):
            total += float(line.rsplit(" ", 1)[1])
    return total
