"""kilnwatch's results over MQTT (real mosquitto, a real service on the simulators): the retained live
topic equals /live, the hourly payload equals /hourly, and the Sparkplug B node's birth (also on a
rebirth request) carries the same hour."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.sources.sparkplug.host import rebirth_request
from collector.sources.sparkplug.sparkplug_b_pb2 import Payload
from tests.e2e.hourly import ns, replay_last_hour
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.paho import stop_client

pytestmark = pytest.mark.integration

KILNS = ("kiln1", "kiln2")


class Listener:
    """A subscriber keeping the newest message of every topic (retained ones included)."""

    def __init__(self, broker: Mosquitto, patterns: list[str]) -> None:
        self.messages: dict[str, bytes] = {}
        self.births: list[Payload] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"kwres-listener-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_connect = lambda c, *_: c.subscribe([(p, 1) for p in patterns])
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages[msg.topic] = msg.payload
            if "/NBIRTH/" in msg.topic:
                self.births.append(Payload.FromString(msg.payload))

    def json(self, topic: str) -> Any:
        with self._lock:
            raw = self.messages.get(topic)
        return None if raw is None else orjson.loads(raw)

    def close(self) -> None:
        stop_client(self.client)


def _birth_metrics(p: Payload) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in p.metrics:
        kind = m.WhichOneof("value")
        out[m.name] = None if m.is_null or kind is None else getattr(m, kind)
    return out


def test_results_over_mqtt_equal_live_and_hourly(start_service: Any, mosquitto: Mosquitto) -> None:
    mosquitto.start()
    token = uuid.uuid4().hex[:10]
    prefix, group, node = f"kwtest/{token}/results", f"kwres{token}", "results"
    results = {
        "mqtt": {
            "host": mosquitto.host,
            "port": mosquitto.port,
            "topic_prefix": prefix,
            "update_every_s": 1,
            "sparkplug": {"group": group, "edge_node": node},
        }
    }
    backfill_h, hour = replay_last_hour(time.time_ns())
    svc = start_service(speed=120.0, backfill_h=backfill_h, results=results)
    listener = Listener(mosquitto, [f"{prefix}/#", f"spBv1.0/{group}/#"])
    try:

        def newest_hour(kiln: str) -> dict[str, Any] | None:
            rows = svc.get(f"/api/v1/kilns/{kiln}/hourly").json()
            return rows[-1] if rows else None

        def live_equal() -> bool:
            for kiln in KILNS:
                api = svc.get(f"/api/v1/kilns/{kiln}/live").json()
                got = listener.json(f"{prefix}/{kiln}/live")
                if got is None or {k: v for k, v in got.items() if k != "age_s"} != {
                    k: v for k, v in api.items() if k != "age_s"
                }:
                    return False
            return True

        seen: dict[str, Any] = {}

        def hourly_equal() -> bool:
            seen.update({k: (newest_hour(k), listener.json(f"{prefix}/{k}/hourly")) for k in KILNS})
            return all(
                row is not None and ns(row["hour"]) >= hour and got == row for row, got in seen.values()
            )

        try:
            svc.wait_for(hourly_equal, timeout=400, interval=1.0)
        except TimeoutError:
            pytest.fail(f"/hourly and the hourly topic differ: {seen}; topics {sorted(listener.messages)}")
        svc.wait_for(live_equal, timeout=240, interval=1.0)

        # a subscriber that comes later gets the retained state
        late = Listener(mosquitto, [f"{prefix}/+/live"])
        try:
            svc.wait_for(lambda: all(late.json(f"{prefix}/{k}/live") for k in KILNS), timeout=30)
            assert late.json(f"{prefix}/kiln1/live")["kiln"] == "kiln1"
        finally:
            late.close()

        # Sparkplug B: a rebirth request is answered with an NBIRTH carrying the newest hour
        svc.wait_for(lambda: listener.births, timeout=30)
        births_before = len(listener.births)
        listener.client.publish(f"spBv1.0/{group}/NCMD/{node}", rebirth_request(0), qos=1)

        def reborn_with_hour() -> bool:
            if len(listener.births) <= births_before:
                return False
            metrics = _birth_metrics(listener.births[-1])
            row = newest_hour("kiln1")
            return row is not None and metrics.get("kiln1/hour/co2_t") == pytest.approx(
                row["co2_t"], rel=1e-12
            )

        svc.wait_for(reborn_with_hour, timeout=60, interval=0.5)
        birth = listener.births[-1]
        metrics = _birth_metrics(birth)
        assert metrics["bdSeq"] is not None and birth.seq == 0
        for kiln in KILNS:
            for name in ("live/co2_t_per_h", "live/valid", "hour/co2_t", "hour/revision", "alarms/fault"):
                assert f"{kiln}/{name}" in metrics
        units = {
            m.name: dict(zip(m.properties.keys, [v.string_value for v in m.properties.values], strict=True))
            for m in birth.metrics
        }
        assert units["kiln1/live/co2_t_per_h"]["engUnit"] == "t/h"
    finally:
        listener.close()
