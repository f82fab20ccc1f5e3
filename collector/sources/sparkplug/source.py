"""The Sparkplug B source: kilnwatch as a host application on one broker.

The connection is the MQTT source's paho session (TLS, credentials, protocol, acks after the
batch is durable), run on paho's thread, with the host's STATE: on connect kilnwatch publishes
``spBv1.0/STATE/<host_id>`` ``{"online": true, "timestamp": …}`` (QoS 1, retained) and leaves the
same topic with ``online: false`` and the same timestamp as its will (Sparkplug 3.0). Messages are
handled in arrival order on the event loop (:mod:`.host` keeps the births and sequence numbers);
the rebirth requests go out as NCMD on the same session.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import Any, Final

import paho.mqtt.client as paho
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from analytics.batch import ReadingBatch
from collector.health import SourceHealth
from collector.metrics import Metrics
from collector.store.dead_letters import DeadLetter

from ..mqtt.linked import Link, LinkedSource
from ..mqtt.session import AckToken, Incoming, Oversize, PahoSession
from ..mqtt.source import _ThreadLink
from ..registry import SourceContext, SourcePlan
from ..sink import Sink
from ..supervisor import Availability, ConfigurationError, check_readable, describe_error
from .host import UNKNOWN_QUALITY, Host, NodeKey, Rejection, ncmd_topic, rebirth_request, state_topic
from .spec import SparkplugBinding, SparkplugHostSpec

log = logging.getLogger(__name__)
TOO_LARGE: Final = "too_large"
#: A message whose handling raised (a defect, not an input rule): dead-lettered, the source goes on.
HANDLER_ERROR: Final = "handler_error"
_REBIRTHS: dict[int, Counter] = {}


def rebirth_counter(registry: CollectorRegistry) -> Counter:
    """``kilnwatch_sparkplug_rebirth_requests_total{source, node}`` on ``registry`` (one per registry)."""
    found = _REBIRTHS.get(id(registry))
    if found is None:
        found = _REBIRTHS[id(registry)] = Counter(
            "kilnwatch_sparkplug_rebirth_requests",
            "Rebirth requests (NCMD Node Control/Rebirth) sent to Sparkplug edge nodes",
            ["source", "node"],
            registry=registry,
        )
    return found


def state_payload(online: bool, timestamp_ms: int) -> bytes:
    return json.dumps({"online": online, "timestamp": timestamp_ms}).encode()


class HostSession(PahoSession):
    """The MQTT source's session, with the host's STATE birth (on every connect) and death (will)."""

    def __init__(self, spec: Any, client_id: str, patterns: Sequence[str], events: Any) -> None:
        super().__init__(spec, client_id, patterns, events)
        self.state_topic = state_topic(spec.host_id)
        self._state_ms = 0

    def _make_client(self) -> paho.Client:
        client = super()._make_client()  # connects in loop_start's thread: the will is set in time
        self._state_ms = time.time_ns() // 1_000_000
        client.will_set(self.state_topic, state_payload(False, self._state_ms), qos=1, retain=True)
        return client

    def _on_connect(self, client: paho.Client, _u: object, flags: Any, rc: Any, _p: object) -> None:
        super()._on_connect(client, _u, flags, rc, _p)
        if not rc.is_failure:
            client.publish(self.state_topic, state_payload(True, self._state_ms), qos=1, retain=True)

    def publish(self, topic: str, payload: bytes) -> None:
        client = self._client
        if client is not None:
            client.publish(topic, payload, qos=0)

    def close(self) -> None:
        """Say offline (as the will would) before a clean disconnect, which suppresses the will."""
        client = self._client
        if client is not None and client.is_connected():
            info = client.publish(self.state_topic, state_payload(False, self._state_ms), qos=1, retain=True)
            info.wait_for_publish(timeout=2.0)
        super().close()


class SparkplugSource(LinkedSource):
    """One broker connection as a Sparkplug host; ``run()`` until cancelled or ``stop()``."""

    def __init__(self, plan: SourcePlan, context: SourceContext) -> None:
        self.name = plan.source_name
        try:
            spec = SparkplugHostSpec.model_validate(plan.spec)
            bindings = [(i, SparkplugBinding.model_validate(b)) for i, b in plan.bindings]
        except ValidationError as err:
            raise ConfigurationError(f"Sparkplug source {self.name}: {err}") from err
        if not bindings:
            raise ConfigurationError(f"Sparkplug source {self.name} has no signal bindings")
        if spec.tls:
            check_readable(
                f"Sparkplug source {self.name}",
                {"ca_file": spec.ca_file, "certfile": spec.certfile, "keyfile": spec.keyfile},
            )
        self.spec = spec
        installation = f"{context.instance_id}-{context.installation_id}"
        self.client_id = spec.client_id or f"kilnwatch-{installation}-{plan.name}"
        self.host = Host(bindings, context.signal_names, int(spec.max_future_skew_s * 1e9))
        self.patterns = tuple(f"spBv1.0/{g}/#" for g in self.host.groups)
        self.sink: Sink = context.sink
        self.metrics: Metrics = context.metrics
        self.health: SourceHealth = context.health.source(self.name, plan.kind)
        self.rebirths = rebirth_counter(self.metrics.registry)
        self.status = Availability(
            f"Sparkplug source {self.name} at {spec.host}:{spec.port}",
            log,
            self.health,
            self.metrics.source_connected.labels(self.name).set,
        )
        self.subscribed = asyncio.Event()
        self._init_link(spec.inbox_max_bytes)
        self._asked: dict[NodeKey, float] = {}
        self._logged: set[str] = set()

    kind = "Sparkplug"

    def _make_link(self) -> Link:
        return _ThreadLink(
            self.spec,
            self.client_id,
            self.patterns,
            self._inbox,
            asyncio.get_running_loop(),
            on_wake=self._wakeup.set,
            on_down=self._down,
            on_granted=self._granted,
            session_type=HostSession,
        )

    def _set_down(self, reason: str) -> None:
        self.subscribed.clear()
        self.metrics.source_connected.labels(self.name).set(0)
        if self.health.connected:
            self.health.mark_disconnected(reason)

    def _granted(self, refused: list[str], downgraded: list[str]) -> None:
        if refused:
            self.health.mark_error(f"subscription refused: {'; '.join(refused)}")
            self._down(f"subscription refused: {'; '.join(refused)}")
            return
        self.metrics.reconnects.labels(self.name).inc()
        self.subscribed.set()
        if not self.status.up():
            log.info(
                "Sparkplug source %s connected and subscribed to %s", self.name, ", ".join(self.patterns)
            )

    def _down(self, reason: str) -> None:
        if not self._stopping:
            self.subscribed.clear()
            self.status.down(reason)

    async def _consume(self) -> None:
        while True:
            await self._wakeup.wait()
            await self._quiescence.hold()
            items = self._inbox.take(self.spec.max_batch_messages)
            if not len(self._inbox):
                self._wakeup.clear()
            if items:
                with self._quiescence.batch():
                    await self._process(items)

    async def _process(self, items: list[Incoming]) -> None:
        batches: list[ReadingBatch] = []
        rebirths: list[NodeKey] = []
        for tag, (topic, payload, *_, received_ns) in enumerate(items):
            if isinstance(payload, Oversize):
                reason = (
                    f"{TOO_LARGE}: {payload.size} bytes, above max_packet_size {self.spec.max_packet_size}"
                )
                self._reject(TOO_LARGE, reason, topic, payload.head, received_ns, (), payload.size)
                continue
            try:
                out = self.host.handle(topic, payload, received_ns, tag)
            except Exception as err:  # a message no rule foresaw must not stop the source
                log.exception("Sparkplug source %s: cannot handle a message on %s", self.name, topic)
                self._rejected(items[tag], [Rejection(HANDLER_ERROR, describe_error(err))])
                continue
            batches.append(out.batch)
            self._rejected(items[tag], out.rejections)
            if out.event is not None:
                log.warning("Sparkplug source %s: %s", self.name, out.event)
                self.health.mark_error(out.event)
            if out.rebirth is not None:
                rebirths.append(out.rebirth)
        flushed = self.host.flush(time.time_ns())
        batches.append(flushed.batch)
        for tag, rejection in flushed.rejections:
            self._rejected(items[tag], [rejection])
        for key in [*rebirths, *(k for _, k in flushed.rebirths)]:
            self._ask_rebirth(key)
        batch = ReadingBatch.concat(batches)
        acks: list[AckToken] = [(m[2], m[3], m[4]) for m in items if m[3]]
        if len(batch) or acks:
            await self.sink.put(batch, partial(self._ack, acks) if acks else None, source=self.name)
        if len(batch):
            self.metrics.readings.labels(self.name).inc(len(batch))
            self.health.mark_values(int(batch.ts.max()))

    def _rejected(self, item: Incoming, rejections: list[Rejection]) -> None:
        topic, payload, received_ns = item[0], item[1], item[5]
        assert isinstance(payload, bytes)
        for r in rejections:
            if r.kind == UNKNOWN_QUALITY:
                for signal in r.signals:
                    self.metrics.flagged.labels(signal, r.kind).inc()
            else:
                self._reject(r.kind, f"{r.kind}: {r.detail}", topic, payload, received_ns, r.signals)

    def _ack(self, acks: list[AckToken]) -> None:
        if self._link is not None:
            self._link.ack(acks)

    def _reject(
        self,
        kind: str,
        reason: str,
        topic: str,
        payload: bytes,
        received_ns: int,
        signals: tuple[str, ...],
        size: int | None = None,
    ) -> None:
        for signal in signals or ("-",):
            self.metrics.rejected.labels(self.name, signal, kind).inc()
        signal_name = signals[0] if len(signals) == 1 else None
        letter = DeadLetter(self.name, f"{reason} (topic {topic})", payload, signal_name, received_ns, size)
        self.sink.dead_letter(letter)
        if kind not in self._logged:
            self._logged.add(kind)
            log.warning(
                "Sparkplug source %s: %s on topic %s, kept as a dead letter; further ones are counted only",
                self.name,
                reason,
                topic,
            )

    def _ask_rebirth(self, key: NodeKey) -> None:
        now = time.monotonic()
        if now - self._asked.get(key, -1e9) < self.spec.rebirth_interval_s or self._link is None:
            return
        self._asked[key] = now
        assert isinstance(self._link, _ThreadLink)
        session = self._link.session
        assert isinstance(session, HostSession)
        session.publish(ncmd_topic(key), rebirth_request(time.time_ns() // 1_000_000))
        self.rebirths.labels(self.name, "/".join(key)).inc()
        log.info("Sparkplug source %s: asked %s for a rebirth", self.name, "/".join(key))


def build(plan: SourcePlan, context: SourceContext) -> SparkplugSource:
    """The registry's builder: one Sparkplug host connection of the plant file."""
    return SparkplugSource(plan, context)
