"""The MQTT source: a paho client with a persistent session; a message is acknowledged once durable.

paho's thread runs the callbacks, which only hand events over with ``loop.call_soon_threadsafe``.
On the loop, messages collected for ``batch_window_ms`` are decoded as one batch and put into the
pipeline with one ack callback, called once the batch's readings and dead letters are committed.
A message id is valid only on its own connection: acks of an earlier connection (generation) are
skipped, the broker redelivers, storage is idempotent. paho reconnects with capped exponential
backoff; subscribing in ``on_connect`` restores the subscriptions after every reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .health import HealthRegistry, SourceHealth
from .metrics import Metrics
from .mqtt_decode import UNKNOWN_STATUS, Decoded, FieldDecoder, decode_batch
from .mqtt_spec import MqttBinding, MqttBrokerSpec
from .pipeline import Pipeline
from .store import DeadLetter

log = logging.getLogger(__name__)

#: topic, payload, message id, QoS, connection generation, arrival [ns]
Incoming = tuple[str, bytes, int, int, int, int]
_ROUTE_CACHE_MAX = 10_000
_paho_log = log.getChild("paho")
# paho 2.2 logs this as an error when its thread runs once more after a clean disconnect.
_paho_log.addFilter(lambda record: not str(record.msg).startswith("Client is not connected"))


class TopicRouter:
    """Topic -> the decoders of every binding whose pattern matches it (``+``/``#`` wildcards)."""

    def __init__(self, bound: Sequence[tuple[str, FieldDecoder]]) -> None:
        by_pattern: dict[str, list[FieldDecoder]] = {}
        for pattern, decoder in bound:
            by_pattern.setdefault(pattern, []).append(decoder)
        #: Distinct topic filters in configuration order: what the source subscribes to.
        self.patterns: tuple[str, ...] = tuple(by_pattern)
        self._exact = {p: tuple(d) for p, d in by_pattern.items() if "+" not in p and "#" not in p}
        self._wild = [(p, tuple(d)) for p, d in by_pattern.items() if p not in self._exact]
        self._cache: dict[str, tuple[FieldDecoder, ...]] = {}

    def route(self, topic: str) -> tuple[FieldDecoder, ...]:
        hit = self._cache.get(topic) if self._wild else self._exact.get(topic, ())
        if hit is not None:
            return hit
        found = list(self._exact.get(topic, ()))
        for pattern, decoders in self._wild:
            if paho.topic_matches_sub(pattern, topic):
                found.extend(d for d in decoders if d not in found)
        if len(self._cache) >= _ROUTE_CACHE_MAX:
            self._cache.clear()
        self._cache[topic] = hit = tuple(found)
        return hit


class MqttSource:
    """One broker connection feeding the pipeline; ``run()`` until cancelled or ``stop()``.

    ``bindings``: (index into ``signal_names``, binding). ``health``: this source's SourceHealth or
    the registry to take it from. ``subscribed`` is set while the subscriptions are granted.
    """

    def __init__(
        self,
        name: str,
        spec: MqttBrokerSpec,
        bindings: Sequence[tuple[int, MqttBinding]],
        sink: Pipeline,
        health: SourceHealth | HealthRegistry,
        metrics: Metrics,
        signal_names: Sequence[str],
        instance_id: str,
    ) -> None:
        self.name = name
        self.spec = spec
        self.client_id = spec.client_id or f"kilnwatch-{instance_id}-{name}"
        self.signal_names = tuple(signal_names)
        self.router = TopicRouter(
            [(b.topic, FieldDecoder.from_binding(i, self.signal_names[i], b, spec)) for i, b in bindings]
        )
        if not self.router.patterns:
            raise ValueError(f"MQTT source {name} has no signal bindings")
        self.sink = sink
        self.health = health if isinstance(health, SourceHealth) else health.source(name, "mqtt")
        self.metrics = metrics
        self.subscribed = asyncio.Event()
        self._inbox: list[Incoming] = []
        self._wakeup = asyncio.Event()
        self._generation = 0  # written on paho's thread only, under _ack_lock
        self._ack_lock = threading.Lock()
        self._client: paho.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._stopping = False
        self._outage_logged = False
        self._logged_kinds: set[str] = set()
        self._where = f"{spec.host}:{spec.port}"
        self._future_ns = int(spec.max_future_skew_s * 1e9)

    async def run(self) -> None:
        if self._task is not None:
            raise RuntimeError(f"MQTT source {self.name} is already running")
        self._loop, self._task, self._stopping = asyncio.get_running_loop(), asyncio.current_task(), False
        client = None
        try:
            client = self._client = self._make_client()  # raises on a TLS file that cannot be read
            client.loop_start()
            await self._consume()
        except asyncio.CancelledError:
            if not self._stopping or self._task is None:
                raise
            self._task.uncancel()
        finally:
            self._stopping = True
            if client is not None:
                await self._close(client)
            self._task = None

    async def stop(self) -> None:
        """Disconnect (the broker keeps the session and queues for it) and end ``run()``."""
        self._stopping = True
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait([task])

    def _make_client(self) -> paho.Client:
        s = self.spec
        v5 = s.protocol == "5"
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else s.clean_session,
            manual_ack=True,
        )
        client.suppress_exceptions = True
        client.enable_logger(_paho_log)
        client.reconnect_delay_set(s.reconnect_min_s, s.reconnect_max_s)  # type: ignore[arg-type]
        if s.username is not None:
            client.username_pw_set(s.username, s.password.get_secret_value() if s.password else None)
        if s.tls:
            client.tls_set(ca_certs=s.ca_file, certfile=s.certfile, keyfile=s.keyfile)
        client.on_connect = self._on_connect
        client.on_connect_fail = lambda *_: self._post(self._down, f"cannot connect to {self._where}")
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        if v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = s.session_expiry_s
            props.ReceiveMaximum = s.receive_maximum
            client.connect_async(s.host, s.port, s.keepalive_s, clean_start=False, properties=props)
        else:
            client.connect_async(s.host, s.port, s.keepalive_s)
        return client

    async def _close(self, client: paho.Client) -> None:
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        if self._client is client:
            self._client = None
        self._set_down("stopped")

    # paho's thread: hand over, nothing else

    def _post(self, fn: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: what was not acked comes again
            self._loop.call_soon_threadsafe(fn, *args)  # type: ignore[union-attr]

    def _on_connect(self, client: paho.Client, _u: object, flags: Any, rc: Any, _p: object) -> None:
        if rc.is_failure:
            self._post(self._down, f"broker refused the connection: {rc}")
            return
        with self._ack_lock:
            self._generation += 1
        client.subscribe([(p, int(self.spec.qos)) for p in self.router.patterns])

    def _on_subscribe(self, _c: paho.Client, _u: object, _mid: int, codes: list[Any], _p: object) -> None:
        granted = list(zip(self.router.patterns, codes, strict=False))
        refused = [f"{p}: {rc}" for p, rc in granted if rc.is_failure]
        downgraded = [p for p, rc in granted if not rc.is_failure and rc.value < self.spec.qos]
        self._post(self._granted, refused, downgraded)

    def _on_disconnect(self, _c: paho.Client, _u: object, _f: object, rc: Any, _p: object) -> None:
        with self._ack_lock:
            self._generation += 1
        self._post(self._down, f"disconnected: {rc}")

    def _on_message(self, _c: paho.Client, _u: object, m: paho.MQTTMessage) -> None:
        # Topics are valid UTF-8: brokers refuse any other (MQTT 3.1.1 section 1.5.3, MQTT 5 1.5.4).
        self._post(self._receive, (m.topic, m.payload, m.mid, m.qos, self._generation, time.time_ns()))

    # the event loop: state, batches, acks

    def _granted(self, refused: list[str], downgraded: list[str]) -> None:
        if downgraded:
            self._log_once("qos", "MQTT source %s: QoS %d not granted for %s", self.spec.qos, downgraded)
        if refused:
            self.health.mark_error(f"subscription refused: {'; '.join(refused)}")
            self._down(f"subscription refused: {'; '.join(refused)}")
            return
        self.health.mark_connected()
        self.metrics.reconnects.labels(self.name).inc()
        self.metrics.source_connected.labels(self.name).set(1)
        self.subscribed.set()
        if self._outage_logged:
            log.info("MQTT source %s is back: connected to %s and subscribed", self.name, self._where)
            self._outage_logged = False

    def _down(self, reason: str) -> None:
        if self._stopping:
            return
        if not self._outage_logged:
            log.warning("MQTT source %s at %s: %s; retrying with backoff", self.name, self._where, reason)
            self._outage_logged = True
        self._set_down(reason)

    def _set_down(self, reason: str) -> None:
        self.subscribed.clear()
        self.metrics.source_connected.labels(self.name).set(0)
        if self.health.connected:
            self.health.mark_disconnected(reason)
        else:
            self.health.last_error = reason  # still down: keep the time the outage began

    def _receive(self, item: Incoming) -> None:
        self._inbox.append(item)
        self._wakeup.set()

    async def _consume(self) -> None:
        window = self.spec.batch_window_ms / 1000
        most = self.spec.max_batch_messages
        while True:
            await self._wakeup.wait()
            if window and len(self._inbox) < most:
                await asyncio.sleep(window)
            items, self._inbox = self._inbox[:most], self._inbox[most:]
            if not self._inbox:
                self._wakeup.clear()
            await self._process(items)

    async def _process(self, items: list[Incoming]) -> None:
        messages = [(self.router.route(m[0]), m[1], m[5]) for m in items]
        decoded = decode_batch(messages, time.time_ns(), self._future_ns)
        self._report(decoded, items)
        acks = [(m[2], m[3], m[4]) for m in items if m[3]]
        batch = decoded.batch
        if len(batch) or acks:
            await self.sink.put(batch, partial(self._ack, acks) if acks else None)
        if len(batch):
            self.metrics.readings.labels(self.name).inc(len(batch))
            self.health.mark_values(int(batch.ts.max()))

    def _ack(self, acks: list[tuple[int, int, int]]) -> None:
        """Runs on the loop after the pipeline committed the batch; skips acks of a lost connection."""
        client = self._client
        with self._ack_lock:
            if client is None:
                return
            current = self._generation
            for mid, qos, generation in acks:
                if generation == current:
                    client.ack(mid, qos)

    def _report(self, decoded: Decoded, items: list[Incoming]) -> None:
        for r in decoded.rejections:
            topic, payload, received_ns = items[r.index][0], items[r.index][1], items[r.index][5]
            for signal in r.signals or ("-",):
                self.metrics.rejected.labels(self.name, signal, r.kind).inc()
            signal_name = r.signals[0] if len(r.signals) == 1 else None
            letter = DeadLetter(self.name, f"{r.reason} (topic {topic})", payload, signal_name, received_ns)
            self.sink.dead_letter(letter)
        for r in decoded.unknown_status:
            self.metrics.flagged.labels(r.signals[0], r.kind).inc()
        for r in decoded.rejections + decoded.unknown_status:
            fate = "kept as uncertain" if r.kind == UNKNOWN_STATUS else "kept as a dead letter"
            message = "MQTT source %s: %s on topic %s (%s), %s; further ones are counted, not logged"
            self._log_once(r.kind, message, r.kind, items[r.index][0], r.detail, fate)

    def _log_once(self, kind: str, message: str, *args: object) -> None:
        if kind not in self._logged_kinds:
            self._logged_kinds.add(kind)
            log.warning(message, self.name, *args)
