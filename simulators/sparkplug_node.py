"""A Sparkplug B edge node for the simulated CEMS analysers: one device per kiln.

Group ``kilnwatch``, edge node ``sim-cems`` by default; device ``<kiln>``; metrics named after the
analyser channels (``co2``, ``o2``, …), Double, with aliases, an ``engUnit`` property and, when a
value is not good, a ``Quality`` property (OPC DA code: 28 maintenance, 80 calibration, 16 fault).
Values, timestamps and dropped channels are those of the JSON analyser gateway
(:mod:`simulators.cems_payload`) for the same ticks; its malformed-payload effects have no
Sparkplug form and are not applied.

Births on every connect (NBIRTH with ``bdSeq`` and ``Node Control/Rebirth``, then a DBIRTH per
kiln) and again on an NCMD ``Node Control/Rebirth``; the NDEATH is the will (its ``bdSeq`` that of
the session) and is also sent before a clean stop. ``seq`` counts every message after the NBIRTH,
0–255. :meth:`SimSparkplugNode.lose_message` skips a ``seq`` as a message lost on the way would.
"""

from __future__ import annotations

import asyncio
import heapq
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

from simulators.clock import SimClock
from simulators.model import ANALYSER_CHANNELS, SIGNAL_UNITS, KilnModel
from simulators.mqtt_publisher import SimMqttPublisher
from simulators.scenarios import Scenario, State
from simulators.sparkplug_b_pb2 import Payload

NAMESPACE = "spBv1.0"
DOUBLE, INT64, BOOLEAN = 10, 4, 11
REBIRTH = "Node Control/Rebirth"
#: OPC DA quality code of each analyser state (absent: good).
STATE_QUALITY: dict[int, int] = {State.MAINTENANCE: 28, State.CALIBRATION: 80, State.FAULT: 16}
_SEQ_TAG = b"\x18"  # field 3 (seq), varint: appended to a payload, it sets its seq


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


class SimSparkplugNode(SimMqttPublisher):
    """The analyser racks of ``kilns`` as one Sparkplug edge node; ``async with`` or start / stop."""

    def __init__(
        self,
        kilns: Sequence[KilnModel],
        clock: SimClock,
        host: str = "127.0.0.1",
        port: int = 1883,
        group: str = "kilnwatch",
        edge_node: str = "sim-cems",
        rate_s: float = 1.0,
        scenario: Scenario | None = None,
        decimals: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("client_id", f"kilnwatch-sim-{edge_node}")
        super().__init__(
            kilns, clock, host, port, rate_s=rate_s, scenario=scenario, decimals=decimals, **kwargs
        )
        self.group, self.edge_node = group, edge_node
        self.channels = list(ANALYSER_CHANNELS)
        self.bdseq = 0
        self.births = 0
        self._seq = -1  # the NBIRTH takes 0
        self._seq_lock = threading.Lock()

    def topic(self, kiln: str) -> str:
        return self._topic("DDATA", kiln)

    def _topic(self, kind: str, device: str | None = None) -> str:
        tail = f"/{device}" if device else ""
        return f"{NAMESPACE}/{self.group}/{kind}/{self.edge_node}{tail}"

    def lose_message(self) -> None:
        """The next ``seq`` is skipped: kilnwatch sees a gap, as after a message lost on the way."""
        with self._seq_lock:
            self._seq = (self._seq + 1) % 256

    # births and deaths

    def _death(self) -> bytes:
        payload = Payload(timestamp=time.time_ns() // 1_000_000)
        payload.metrics.add(name="bdSeq", datatype=INT64, long_value=self.bdseq)
        return payload.SerializeToString()

    def _prepare(self, client: mqtt.Client) -> None:
        client.will_set(self._topic("NDEATH"), self._death(), qos=1, retain=False)
        client.on_message = self._on_message

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any
    ) -> None:
        if reason_code.is_failure:
            return
        client.subscribe(self._topic("NCMD"), qos=1)
        self._birth(client)
        super()._on_connect(client, userdata, flags, reason_code, props)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any
    ) -> None:
        super()._on_disconnect(client, userdata, flags, reason_code, props)
        self.bdseq = (self.bdseq + 1) % 256  # the next session's will
        client.will_set(self._topic("NDEATH"), self._death(), qos=1, retain=False)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            command = Payload.FromString(bytes(message.payload))
        except Exception:
            return
        if any(m.name == REBIRTH and m.boolean_value for m in command.metrics):
            self._birth(client)

    def _birth(self, client: mqtt.Client) -> None:
        now_ms = time.time_ns() // 1_000_000
        node = Payload(timestamp=now_ms)
        node.metrics.add(name="bdSeq", datatype=INT64, long_value=self.bdseq, timestamp=now_ms)
        node.metrics.add(name=REBIRTH, datatype=BOOLEAN, boolean_value=False, timestamp=now_ms)
        with self._seq_lock:
            self._seq = 0
            node.seq = 0
            client.publish(self._topic("NBIRTH"), node.SerializeToString(), qos=0)
            for model in self.kilns:
                device = Payload(timestamp=now_ms)
                for alias, name in enumerate(self.channels, start=1):
                    m = device.metrics.add(
                        name=name, alias=alias, datatype=DOUBLE, timestamp=now_ms, is_null=True
                    )
                    m.properties.keys.append("engUnit")
                    m.properties.values.add(type=12, string_value=SIGNAL_UNITS[ANALYSER_CHANNELS[name]])
                self._seq = device.seq = (self._seq + 1) % 256
                client.publish(self._topic("DBIRTH", model.kiln_id), device.SerializeToString(), qos=0)
        self.births += 1

    async def stop(self, drain_timeout_s: float = 5.0, step_s: float = 2.0) -> None:
        """Send the NDEATH (a clean disconnect does not send the will), then stop."""
        client = self._client
        if client is not None and self.connected:
            client.publish(self._topic("NDEATH"), self._death(), qos=1)
        await super().stop(drain_timeout_s, step_s)

    # data

    async def _run(self) -> None:
        # births first: no data before the NBIRTH (a threading.Event, set on paho's thread)
        while not self._connected.is_set():  # noqa: ASYNC110 - a thread's event, polled
            await asyncio.sleep(self.wall_interval_s)
        await super()._run()

    def _schedule(self, k0: int, k1: int) -> None:
        t_ns = np.arange(k0, k1, dtype=np.int64) * self.rate_ns
        batch: list[tuple[int, int, str, bytes]] = []
        for model in self.kilns:
            applied = self.scenario.apply(model, t_ns, model.sample(t_ns))
            batch += self._ddata(model.kiln_id, applied)
        for item in sorted(batch, key=lambda b: (b[1], b[2])):
            if item[0] > item[1]:
                heapq.heappush(self._held, item)
            else:
                self._release(item[1])
                self._publish(item[2], item[3])
        self.stats.held = len(self._held)
        self.stats.last_tick_ns = int(t_ns[-1])

    def _ddata(self, kiln: str, applied: Any) -> list[tuple[int, int, str, bytes]]:
        t_ns = applied.t_ns
        t_ms = (t_ns // 1_000_000).tolist()
        cols = []
        for alias, name in enumerate(self.channels, start=1):
            key = ANALYSER_CHANNELS[name]
            values = applied.values[key]
            if self.decimals is not None:
                values = np.round(values, self.decimals)
            cols.append((alias, values.tolist(), applied.state[key].tolist(), applied.send[key].tolist()))
        topic, release = self.topic(kiln), applied.release_ns.tolist()
        out = []
        for i in range(len(t_ns)):
            payload = Payload(timestamp=t_ms[i])
            for alias, values, states, send in cols:
                if not send[i]:
                    continue
                m = payload.metrics.add(
                    alias=alias, timestamp=t_ms[i], datatype=DOUBLE, double_value=values[i]
                )
                code = STATE_QUALITY.get(states[i])
                if code is not None:
                    m.properties.keys.append("Quality")
                    m.properties.values.add(type=3, int_value=code)
            if payload.metrics:
                out.append((int(release[i]), int(t_ns[i]), topic, payload.SerializeToString()))
        return out

    def _publish(self, topic: str, payload: bytes) -> None:
        if self._client is None:
            return
        with self._seq_lock:
            self._seq = (self._seq + 1) % 256
            self._client.publish(topic, payload + _SEQ_TAG + _varint(self._seq), qos=self.qos)
        with self._acked:
            self.stats.messages += 1
