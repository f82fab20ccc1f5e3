"""kilnwatch's results published over MQTT: per kiln the ``/live`` body on ``<prefix>/<kiln>/live``
(retained), the newest closed hour as its ``/hourly`` row on ``<prefix>/<kiln>/hourly`` (retained unless
``hourly_retained: false``) and the kiln's alarms on ``<prefix>/<kiln>/alarms`` (retained); with
``sparkplug``, the same results as a Sparkplug B edge node (NBIRTH on connect and on a rebirth
request, NDATA on change, NDEATH as will)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from collector.sources.sparkplug.host import REBIRTH_METRIC
from collector.sources.sparkplug.sparkplug_b_pb2 import Payload

from .config import ResultsMqtt
from .sparkplug_out import EdgeNode, metric_values
from .view import KilnResults, ResultsView, Snapshot

log = logging.getLogger("kilnwatch.results.mqtt")
#: Bound of each step of the stop (the death's publish, the disconnect) [s].
STOP_STEP_S = 2.0
#: Least time between two publishing rounds [s].
MIN_GAP_S = 0.25


def live_payload(r: KilnResults) -> bytes:
    return orjson.dumps(r.live)


def _live_key(r: KilnResults) -> bytes:
    """What makes a new live message: everything but the age."""
    return orjson.dumps({k: v for k, v in r.live.items() if k != "age_s"})


class ResultsMqttPublisher:
    """``await run()`` until cancelled; paho runs on its own thread and reconnects by itself."""

    def __init__(self, config: ResultsMqtt, view: ResultsView, instance_id: str) -> None:
        self.config = config
        self.view = view
        self.prefix = config.topic_prefix or f"kilnwatch/{instance_id}"
        self.client_id = config.client_id or f"kilnwatch-results-{instance_id}"
        sp = config.sparkplug
        self.edge = (
            None
            if sp is None
            else EdgeNode(sp.group, sp.edge_node or f"kilnwatch-{instance_id}", time.time_ns() // 10**9)
        )
        self.connected = asyncio.Event()
        self._changed = view.changes()
        self._birth_due = True
        self._sent: dict[str, bytes] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: paho.Client | None = None

    def topic(self, kiln: str, what: str) -> str:
        return f"{self.prefix}/{kiln}/{what}"

    def _make_client(self) -> paho.Client:
        c = self.config
        v5 = c.protocol == "5"
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else True,
        )
        client.suppress_exceptions = True
        client.reconnect_delay_set(int(c.reconnect_min_s) or 1, int(c.reconnect_max_s))
        if c.username is not None:
            client.username_pw_set(c.username, c.password.get_secret_value() if c.password else None)
        if c.tls:
            client.tls_set(ca_certs=c.ca_file, certfile=c.certfile, keyfile=c.keyfile)
        if self.edge is not None:
            now_ms = time.time_ns() // 1_000_000
            client.will_set(self.edge.topic("NDEATH"), self.edge.death(now_ms), qos=1, retain=False)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.connect_async(c.host, c.port, c.keepalive_s)
        return client

    # paho's thread: hand over to the event loop

    def _on_connect(self, client: paho.Client, _u: object, _f: Any, rc: Any, _p: object) -> None:
        if rc.is_failure:
            log.warning(
                "results broker %s:%s refused the connection: %s", self.config.host, self.config.port, rc
            )
            return
        if self.edge is not None:
            client.subscribe(self.edge.topic("NCMD"), qos=0)
        self._call(self._up)

    def _on_disconnect(self, _c: paho.Client, _u: object, _f: Any, rc: Any, _p: object) -> None:
        self._call(self.connected.clear)

    def _on_message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        try:
            payload = Payload.FromString(message.payload)
        except Exception:
            log.warning("results: an NCMD that is not Sparkplug B, ignored")
            return
        if any(m.name == REBIRTH_METRIC and m.boolean_value for m in payload.metrics):
            self._call(self._rebirth)

    def _call(self, fn: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn)

    # the event loop

    def _up(self) -> None:
        log.info(
            "results: connected to %s:%s, publishing on %s/…", self.config.host, self.config.port, self.prefix
        )
        self._sent.clear()  # a new session: publish everything again (a broker may have lost its retained)
        self._rebirth()
        self.connected.set()

    def _rebirth(self) -> None:
        self._birth_due = True
        self._changed.set()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = client = self._make_client()
        client.loop_start()
        try:
            while True:
                await asyncio.sleep(MIN_GAP_S)  # bounded work while a backlog closes minute after minute
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), self.config.update_every_s)
                self._changed.clear()
                if not self.connected.is_set():
                    continue
                try:
                    self.publish(await self.view.snapshot())
                except Exception:
                    log.exception("results: publishing over MQTT failed")
        finally:
            await self._stop(client)

    def publish(self, snap: Snapshot) -> None:
        client, qos = self._client, self.config.qos
        assert client is not None
        for kiln, r in snap.kilns.items():
            self._send(self.topic(kiln, "live"), _live_key(r), live_payload(r), True)
            if r.hour is not None:
                hour = orjson.dumps(r.hour)
                self._send(self.topic(kiln, "hourly"), hour, hour, self.config.hourly_retained)
            alarms = orjson.dumps(
                {k: {"active": a.active, "message": a.message} for k, a in r.alarms.items()}
            )
            self._send(self.topic(kiln, "alarms"), alarms, alarms, True)
        if self.edge is not None:
            now_ms = time.time_ns() // 1_000_000
            metrics = metric_values(snap)
            if self._birth_due:
                self._birth_due = False
                client.publish(self.edge.topic("NBIRTH"), self.edge.birth(metrics, now_ms), qos=0)
            else:
                data = self.edge.data(metrics, now_ms)
                if data is not None:
                    client.publish(self.edge.topic("NDATA"), data, qos=0)
        del qos

    def _send(self, topic: str, key: bytes, payload: bytes, retain: bool) -> None:
        """Publish when what it says changed since the last publish on ``topic``."""
        if self._sent.get(topic) == key:
            return
        assert self._client is not None
        info = self._client.publish(topic, payload, qos=self.config.qos, retain=retain)
        if info.rc == paho.MQTT_ERR_SUCCESS:
            self._sent[topic] = key

    async def _stop(self, client: paho.Client) -> None:
        """Bounded: the death (as the will would say; a clean disconnect suppresses it), the disconnect,
        paho's thread."""

        def stop() -> None:
            if self.edge is not None and client.is_connected():
                death = self.edge.death(time.time_ns() // 1_000_000)
                info = client.publish(self.edge.topic("NDEATH"), death, qos=1)
                with contextlib.suppress(Exception):
                    info.wait_for_publish(timeout=STOP_STEP_S)
            client.disconnect()
            client.loop_stop()

        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(asyncio.to_thread(stop)), 3 * STOP_STEP_S)
        self._client = None
