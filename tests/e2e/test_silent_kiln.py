"""A kiln fed only over MQTT whose every source stops mid-hour: its hour closes by the wall clock,
invalid, and is revised when the broker redelivers the gap (real mosquitto, real service)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from collector.sources.registry import SourceKinds
from kilnwatch.config import parse_plant
from kilnwatch.service import Service
from kilnwatch.settings import Settings
from tests.e2e.hourly import HOUR_NS, NS, hours_rows, iso, last_full_hour_end
from tests.fixtures.loop_thread import LoopThread
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.ports import free_port
from tests.fixtures.service import SwitchedSource, switchable_sources
from tests.integration.mqtt_helpers import Publisher

pytestmark = pytest.mark.integration

#: idle_after_s leaves the test time to look and to cut the connection before the kiln counts as silent.
LATENESS_S, IDLE_S, GRACE_S = 2.0, 10.0, 5.0
KILN = "kilnm"
SIGNALS = (
    ("flow", "Nm3/h", "flow"),
    ("co2", "vol %", "co2"),
    ("clinker", "t/h", "clinker_rate"),
    ("pressure", "kPa", "absolute_pressure"),
)


def mqtt_only_plant(port: int, topic: str, client_id: str) -> dict[str, Any]:
    def signal(key: str, unit: str, quantity: str) -> dict[str, Any]:
        binding = {"broker": "gw", "topic": topic, "value_path": key, "timestamp_path": "ts"}
        extra = {"basis": "dry", "conditions": "standard"} if key == "flow" else {}
        extra = {"basis": "dry"} if key == "co2" else extra
        return {
            "id": f"{KILN}.{key}",
            "quantity": quantity,
            "unit": unit,
            **extra,
            "source": {"mqtt": binding},
        }

    return {
        "plants": [{"id": "p", "kilns": [{"id": KILN, "signals": [signal(*s) for s in SIGNALS]}]}],
        "sources": {"mqtt": {"gw": {"host": "127.0.0.1", "port": port, "client_id": client_id}}},
        "engine": {"lateness_s": LATENESS_S, "idle_after_s": IDLE_S, "silent_grace_s": GRACE_S},
    }


def payloads(start_ns: int, stop_ns: int) -> list[bytes]:
    """One message a second: flow, CO2 and clinker rate that vary (a frozen value would be stuck)."""
    t = np.arange(start_ns, stop_ns, NS, dtype=np.int64)
    wave = np.sin(np.arange(len(t)) / 7.0)
    return [
        orjson.dumps(
            {
                "ts": iso(int(ts)),
                "flow": 397_500 + 500 * w,
                "co2": 22 + 0.2 * w,
                "clinker": 208 + w,
                "pressure": 101.3 + 0.1 * w,
            }
        )
        for ts, w in zip(t.tolist(), wave.tolist(), strict=True)
    ]


def publish(pub: Publisher, topic: str, messages: list[bytes]) -> None:
    for m in messages:
        pub.publish(topic, m)
    for info in pub.infos:
        info.wait_for_publish(20)
        assert info.is_published()


@dataclass
class Running:
    svc: Service
    loop: LoopThread
    switch: SwitchedSource
    base_url: str
    topic: str


@pytest.fixture
def service(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Running]:
    mosquitto.start()
    token = uuid.uuid4().hex[:10]
    topic = f"kwtest/{token}/gw"
    plant = parse_plant(mqtt_only_plant(mosquitto.port, topic, f"kilnwatch-silent-{token}"), "test plant")
    settings = Settings(data_dir=tmp_path / "svc", port=free_port(), instance_id="silent")
    loop = LoopThread("kilnwatch")

    kinds = SourceKinds()
    switches = switchable_sources(kinds)

    async def make() -> Service:
        return Service(plant, settings, kinds=kinds)

    svc = loop.run(make())
    loop.spawn(svc.run())
    try:
        loop.run(svc.started(), timeout=30)
        switch = switches["mqtt:gw"]
        loop.run(_wait_subscribed(switch), timeout=30)
        yield Running(svc, loop, switch, f"http://127.0.0.1:{svc.bound_port}", topic)
    finally:
        loop.loop.call_soon_threadsafe(svc.stop)
        time.sleep(0.5)
        loop.close()


async def _wait_subscribed(switch: SwitchedSource) -> None:
    await switch.source.subscribed.wait()


def hour_row(base_url: str, hour: int) -> dict[str, Any] | None:
    return hours_rows(lambda p, **kw: httpx.get(base_url + p, timeout=10, **kw), KILN, [hour], True).get(hour)


def wait_for(predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"condition not met within {timeout} s")


def test_silent_kiln_closes_its_hour_by_the_clock_and_the_redelivered_gap_revises_it(
    service: Running, mosquitto: Mosquitto
) -> None:
    """Event times lie in the last full clock hour, so the test need not wait for an hour to end:
    its end + lateness + grace is already past on the wall clock, and the hour must close as soon
    as the kiln counts as silent (idle_after_s after its last reading), not when data returns."""
    svc, base_url, topic = service.svc, service.base_url, service.topic
    hour = last_full_hour_end(time.time_ns()) - HOUR_NS
    cut = hour + 1500 * NS  # 25 minutes in: the rest of the hour will be missing
    pub = Publisher(mosquitto)
    try:
        publish(pub, topic, payloads(hour, cut))
        wait_for(lambda: (m := svc.engine.newest_minute(KILN)) and m.start_ns >= cut - 2 * 60 * NS, 30)
        assert hour_row(base_url, hour) is None  # event time has not reached the hour's end

        # kilnwatch's connection to the broker cut; the broker queues for its persistent session.
        service.loop.run(service.switch.stop())
        stopped = time.monotonic()
        publish(pub, topic, payloads(cut, hour + HOUR_NS))
        row = wait_for(lambda: hour_row(base_url, hour), IDLE_S + LATENESS_S + GRACE_S + 10)
        waited = time.monotonic() - stopped
        co2 = row["ledger"][f"{KILN}.co2"]
        print(
            f"hour {row['hour']} closed by the clock {waited:.1f} s after the cut: valid {row['valid']}, "
            f"completeness {row['completeness']:.3f}, revision {row['revision']}, co2 ledger {co2}"
        )
        assert not row["valid"] and row["revision"] == 0
        assert row["completeness"] == pytest.approx(1500 / 3600, abs=2 / 60)
        assert co2["comm_loss"] >= 2000  # the source was known to be disconnected: comm_loss, not missing
        assert waited <= IDLE_S + LATENESS_S + GRACE_S + 5

        # Same client id: the broker redelivers the gap, which arrives late.
        service.loop.loop.call_soon_threadsafe(service.switch.start)
        revised = wait_for(lambda: (r := hour_row(base_url, hour)) and r["revision"] >= 1 and r, 60)
        print(f"revised: valid {revised['valid']}, completeness {revised['completeness']:.4f}")
        assert revised["valid"] and revised["revision"] == 1
        assert revised["completeness"] == pytest.approx(1.0)
    finally:
        pub.close()
