"""The time window and the value ranges against real servers: MQTT through mosquitto, OPC UA from an
asyncua server, each into a real pipeline and SQLite store, and the whole service."""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from analytics.batch import NS_PER_S
from collector.conditioning import Conditioner
from collector.health import SourceHealth
from collector.metrics import Metrics
from collector.pipeline import Pipeline
from collector.plausibility import FUTURE, TOO_OLD, TimeWindow
from collector.sources.mqtt.spec import MqttBinding
from collector.sources.opcua.source import OpcUaSource
from collector.sources.opcua.spec import OpcUaServerSpec
from collector.store.local import LocalStore
from collector.store.reader import StoreReader
from kilnwatch.config import parse_plant
from kilnwatch.demo import demo_plant
from kilnwatch.service import Service
from kilnwatch.settings import Settings
from simulators.model import SIGNAL_KEYS, KilnModel
from tests.fixtures.loop_thread import LoopThread
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.ports import free_port
from tests.fixtures.service import RunningService
from tests.integration.mqtt_helpers import Publisher, Rig, running, until
from tests.integration.test_opcua_collector import start_server

pytest_plugins = ["tests.fixtures.mosquitto", "tests.integration.mqtt_fixtures", "tests.fixtures.service"]
pytestmark = pytest.mark.integration

NS = NS_PER_S
DAY = 86_400 * NS
NAMES = ("k1.co2", "k1.o2", "k1.h2o")


def windowed_pipeline(path: Path, names: tuple[str, ...], metrics: Metrics) -> Pipeline:
    n = len(names)
    conditioner = Conditioner([1.0] * n, [0.0] * n, [-math.inf] * n, [math.inf] * n)
    return Pipeline(LocalStore(path, names), conditioner, names, metrics, window=TimeWindow())


def rejected(metrics: Metrics, source: str, signal: str, reason: str) -> float:
    labels = {"source": source, "signal": signal, "reason": reason}
    return metrics.registry.get_sample_value("kilnwatch_rejected_total", labels) or 0.0


# -- MQTT: one message, each channel with a timestamp of its own --------------------------------------


async def test_mqtt_readings_outside_the_window_are_dead_letters_and_the_rest_is_stored(
    broker: Mosquitto, prefix: str, tmp_path: Path
) -> None:
    topic = f"{prefix}/k1/rack"
    bindings = [
        (
            n,
            MqttBinding(
                broker="cems", topic=topic, value_path=f"{c}.v", timestamp_path=f"{c}.ts", status_path=None
            ),
        )
        for n, c in ((n, n.removeprefix("k1.")) for n in NAMES)
    ]
    now = time.time_ns() // NS * NS
    month_old = datetime.fromtimestamp(now / NS - 30 * 86_400, UTC).isoformat()
    # (co2 ts, o2 ts, h2o ts): every message mixes readings inside and outside the window
    messages = [
        (0, now - 60 * NS, now - 59 * NS),
        (now - 58 * NS, 1, month_old),
        (now - 57 * NS, now - 56 * NS, 0),
    ]
    metrics = Metrics()
    path = tmp_path / "kw.sqlite3"
    pipeline = windowed_pipeline(path, NAMES, metrics)
    task = asyncio.create_task(pipeline.run())
    try:
        rig = Rig(path, NAMES, metrics, pipeline)
        async with running(rig.source(broker, bindings, f"{prefix}-c")):
            pub = Publisher(broker)
            for i, stamps in enumerate(messages):
                doc = {
                    c.removeprefix("k1."): {"v": 10.0 + i, "ts": ts}
                    for c, ts in zip(NAMES, stamps, strict=True)
                }
                pub.publish(topic, orjson.dumps(doc))
            await pub.flush()
            pub.close()
            await until(lambda: len(StoreReader(path).dead_letters()) == 4, "4 dead letters")
            await until(lambda: StoreReader(path).count_readings() == 5, "the 5 good readings")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        pipeline.close()
        pipeline.store.close()

    reader = StoreReader(path)
    names, batch = reader.readings(list(NAMES))
    stored = sorted(
        (names[s], t, v)
        for s, t, v in zip(batch.signal, batch.ts.tolist(), batch.value.tolist(), strict=True)
    )
    assert stored == sorted(
        [
            ("k1.o2", now - 60 * NS, 10.0),
            ("k1.h2o", now - 59 * NS, 10.0),
            ("k1.co2", now - 58 * NS, 11.0),
            ("k1.co2", now - 57 * NS, 12.0),
            ("k1.o2", now - 56 * NS, 12.0),
        ]
    )
    letters = sorted(reader.dead_letters(), key=lambda d: (d.signal or "", orjson.loads(d.payload)["ts_ns"]))
    got = [(d.source, d.signal, d.reason.split(":")[0], orjson.loads(d.payload)["ts_ns"]) for d in letters]
    assert got == [
        ("cems", "k1.co2", TOO_OLD, 0),
        ("cems", "k1.h2o", TOO_OLD, 0),
        ("cems", "k1.h2o", TOO_OLD, now - 30 * DAY),
        ("cems", "k1.o2", TOO_OLD, NS),
    ]
    assert "1970-01-01T00:00:00.000Z" in letters[0].reason and "max_reading_age_days 7" in letters[0].reason
    assert rejected(metrics, "cems", "k1.co2", TOO_OLD) == 1
    assert rejected(metrics, "cems", "k1.h2o", TOO_OLD) == 2
    assert rejected(metrics, "cems", "k1.o2", TOO_OLD) == 1


# -- OPC UA: a source timestamp 10 days ahead ------------------------------------------------------


async def test_opcua_value_stamped_ten_days_ahead_is_a_dead_letter_and_the_rest_is_stored(
    tmp_path: Path,
) -> None:
    port = free_port()
    srv = await start_server(port)
    names = (*(f"s{i}" for i in range(10)), "kiln1.flow", "kiln1.count", "kiln1.running", "kiln1.label")
    metrics = Metrics()
    path = tmp_path / "kw.sqlite3"
    pipeline = windowed_pipeline(path, names, metrics)
    spec = OpcUaServerSpec(
        url=f"opc.tcp://127.0.0.1:{port}/kilnwatch-test/", publishing_interval_ms=100.0, connect_timeout_s=2.0
    )
    health = SourceHealth("plc1", "opcua")
    node = "nsu=urn:kilnwatch:test:kiln;s=kiln1.flow"
    source = OpcUaSource("plc1", spec, [(10, node)], pipeline, health, metrics, "test", signal_names=names)
    tasks = [asyncio.create_task(pipeline.run()), asyncio.create_task(source.run())]
    now = datetime.now(UTC).replace(microsecond=0)
    ahead = now + timedelta(days=10)
    try:
        await until(lambda: health.connected, "connect", within_s=15)
        await srv.write("flow", 1.0, now - timedelta(seconds=2))
        await srv.write("flow", 2.0, ahead)
        await srv.write("flow", 3.0, now - timedelta(seconds=1))
        await until(lambda: len(StoreReader(path).dead_letters()) == 1, "the dead letter")
        want = {round((now - timedelta(seconds=s)).timestamp()) * NS for s in (2, 1)}
        await until(
            lambda: want <= set(StoreReader(path).readings(["kiln1.flow"])[1].ts.tolist()), "good values"
        )
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await srv.server.stop()
        pipeline.close()
        pipeline.store.close()

    reader = StoreReader(path)
    _, batch = reader.readings(["kiln1.flow"])
    assert 2.0 not in batch.value.tolist() and {1.0, 3.0} <= set(batch.value.tolist())
    assert int(batch.ts.max()) < time.time_ns()
    (letter,) = reader.dead_letters()
    assert (letter.source, letter.signal) == ("plc1", "kiln1.flow")
    assert letter.reason.startswith(f"{FUTURE}: source time {ahead.isoformat(timespec='milliseconds')[:23]}")
    assert "max_future_skew_s 300" in letter.reason
    assert orjson.loads(letter.payload) == {
        "ts_ns": round(ahead.timestamp()) * NS,
        "value": 2.0,
        "quality": 0,
    }
    assert rejected(metrics, "plc1", "kiln1.flow", FUTURE) == 1


# -- the service: /live stays fast while implausible readings arrive ---------------------------------


def cems_payload(ts: Any, channels: tuple[str, ...]) -> bytes:
    return orjson.dumps(
        {"ts": ts, "status": "OK", "channels": {c: {"value": 1.0, "status": "OK"} for c in channels}}
    )


def test_live_stays_fast_while_implausible_readings_arrive(start_service: Any, mosquitto: Mosquitto) -> None:
    svc: RunningService = start_service(speed=60.0, backfill_h=0.1, tick_s=1.0, mqtt_port=mosquitto.port)
    live = "/api/v1/kilns/kiln1/live"
    svc.wait_for(lambda: svc.get(live).json()["signals"]["kiln1.stack.co2"]["value"] is not None, timeout=60)
    topic = next(
        s.source.mqtt.topic for s in svc.service.plant.plants[0].kilns[0].signals if s.source.mqtt is not None
    )
    channels = ("co2", "o2", "h2o", "co", "nox", "so2", "dust")
    month_old = datetime.fromtimestamp(time.time() - 30 * 86_400, UTC).isoformat()
    bad = [cems_payload(0, channels), cems_payload(1, channels), cems_payload(month_old, channels)]
    stop = threading.Event()
    sent = [0]

    def publish() -> None:  # ~150 messages/s, 7 readings each, all outside the window
        pub = Publisher(mosquitto)
        while not stop.is_set():
            for payload in bad:
                pub.publish(topic, payload)
            sent[0] += len(bad)
            time.sleep(0.02)
        pub.close()

    publisher = threading.Thread(target=publish, name="bad-publisher", daemon=True)
    publisher.start()
    latencies = []
    try:
        with httpx.Client(base_url=svc.base_url, timeout=5) as http:
            for _ in range(20):  # warm-up
                http.get(live)
            for _ in range(400):
                t0 = time.perf_counter()
                r = http.get(live)
                latencies.append(time.perf_counter() - t0)
                assert r.status_code == 200
                time.sleep(0.005)
    finally:
        stop.set()
        publisher.join(10)
    p99 = float(np.percentile(latencies, 99))
    print(
        f"/live under implausible readings: p50 {np.median(latencies) * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms"
    )
    assert sent[0] > 300
    assert p99 < 0.1, f"/live p99 {p99 * 1e3:.1f} ms"

    def counted(reason: str) -> float:
        text = svc.get("/metrics").text
        prefix = f'kilnwatch_rejected_total{{reason="{reason}",signal="kiln1.stack.co2",source="mqtt:cems"}} '
        return next(
            (float(line.removeprefix(prefix)) for line in text.splitlines() if line.startswith(prefix)), 0
        )

    svc.wait_for(lambda: counted(TOO_OLD) >= sent[0] * 0.9, timeout=30)  # every co2 reading of them
    reader = StoreReader(svc.service.settings.store_path)
    _, stored = reader.readings(["kiln1.stack.co2"])
    assert int(stored.ts.min()) > time.time_ns() - DAY  # none of them stored
    assert len(stored) > 0  # the simulator's good readings are
    letters = reader.dead_letters("mqtt:cems")
    assert letters and all(d.reason.startswith(TOO_OLD) for d in letters)


# -- a flow of 1e308 over MQTT never yields a valid hour without a number ----------------------------


@pytest.fixture
def mqtt_only_service(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[Service, str, str]]:
    """kiln1 with every signal on one MQTT topic; its flow has no range of its own (the default applies)."""
    token = uuid.uuid4().hex[:10]
    topic = f"kwtest/{token}/kiln1/all"
    plant = demo_plant(opcua_port=free_port(), mqtt_port=mosquitto.port, kilns=("kiln1",))
    for s in plant["plants"][0]["kilns"][0]["signals"]:
        key = s["id"].removeprefix("kiln1.").replace(".", "_")
        s["source"] = {
            "mqtt": {"broker": "cems", "topic": topic, "value_path": f"v.{key}", "status_path": None}
        }
        if s["id"] == "kiln1.stack.flow":
            del s["range"]
    plant["sources"] = {
        "mqtt": {"cems": {"host": mosquitto.host, "port": mosquitto.port, "client_id": f"kw-{token}"}}
    }
    loop = LoopThread("kilnwatch-plausibility")
    settings = Settings(data_dir=tmp_path / "svc", port=free_port(), instance_id="plaus")

    async def make() -> Service:
        return Service(parse_plant(plant, "test plant"), settings)

    svc = loop.run(make())
    asyncio.run_coroutine_threadsafe(svc.run(), loop.loop)
    loop.run(svc.started(), timeout=30)
    base = f"http://127.0.0.1:{svc.bound_port}"
    deadline = time.monotonic() + 30
    while httpx.get(f"{base}/readyz").status_code != 200:  # subscribed: nothing published is lost
        assert time.monotonic() < deadline, "the MQTT source did not subscribe"
        time.sleep(0.1)
    try:
        yield svc, base, topic
    finally:
        loop.loop.call_soon_threadsafe(svc.stop)
        loop.close()


def test_a_flow_of_1e308_never_makes_a_valid_hour_without_a_number(
    mqtt_only_service: tuple[Service, str, str], mosquitto: Mosquitto
) -> None:
    _, base, topic = mqtt_only_service
    hour = 3600 * NS
    h0 = (time.time_ns() // hour - 3) * hour
    t = np.arange(h0, h0 + 2 * hour + 5 * 60 * NS, 5 * NS, dtype=np.int64)
    values = KilnModel("kiln1", seed=3).sample(t)
    flow = values["stack.flow"].copy()
    minute = (t - h0) // (60 * NS)
    flow[(minute >= 10) & (minute < 15)] = 1e308  # hour 0: 5 minutes absurd, still >= 80 % valid
    flow[(minute >= 60) & (minute < 90)] = 1e308  # hour 1: 30 minutes absurd, invalid
    values["stack.flow"] = flow
    pub = Publisher(mosquitto)
    for i, ts in enumerate(t.tolist()):
        doc = {"ts": ts, "v": {k.replace(".", "_"): float(values[k][i]) for k in SIGNAL_KEYS}}
        pub.publish(topic, orjson.dumps(doc))
    asyncio.run(pub.flush())
    pub.close()

    span = {"start": iso(h0), "end": iso(h0 + 2 * hour)}

    def hours() -> list[dict[str, Any]] | None:
        r = httpx.get(f"{base}/api/v1/kilns/kiln1/hourly", params={**span, "ledger": "true"})
        rows = r.json() if r.status_code == 200 else []
        return rows if len(rows) == 2 else None

    deadline = time.monotonic() + 60
    while (rows := hours()) is None:
        assert time.monotonic() < deadline, "the two hours did not close"
        time.sleep(0.2)
    first, second = rows
    for row in rows:
        if row["valid"]:
            assert isinstance(row["co2_t"], float) and math.isfinite(row["co2_t"]), row
            assert isinstance(row["intensity_kg_per_t"], float) and math.isfinite(
                row["intensity_kg_per_t"]
            ), row
    assert first["valid"] and 100 < first["co2_t"] < 300  # the 55 good minutes, t CO2 of one hour
    assert not second["valid"]
    assert first["ledger"]["kiln1.stack.flow"]["out_of_range"] == 5 * 60  # grid points of 5 minutes
    assert second["ledger"]["kiln1.stack.flow"]["out_of_range"] == 30 * 60
    metrics = httpx.get(f"{base}/metrics").text
    flagged = 'kilnwatch_flagged_total{reason="out_of_range",signal="kiln1.stack.flow"} '
    assert any(
        line.startswith(flagged) and float(line.removeprefix(flagged)) >= 35 * 12
        for line in metrics.splitlines()
    )
    minutes = httpx.get(f"{base}/api/v1/kilns/kiln1/minutes", params=span).json()
    assert minutes and all(math.isfinite(m["co2_t_per_h"]) for m in minutes if m["valid"])
    assert sum(not m["valid"] for m in minutes) >= 35


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / NS, UTC).isoformat()
