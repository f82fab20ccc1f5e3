"""The MQTT source: a persistent paho session; a message is acknowledged once it is durable.

The paho session (:mod:`collector.sources.mqtt.session`) runs in a worker process by default
(:mod:`collector.sources.mqtt.worker`, ``worker: process``) or on paho's thread in kilnwatch's process
(``worker: thread``). Either way, messages reach the event loop in bursts; messages collected
for ``batch_window_ms`` are decoded as one batch and put into the pipeline with one ack
callback, called once the batch's readings and dead letters are committed. The source's inbox
is bounded (``inbox_max_bytes``): when it is full, paho's thread waits (thread mode) or the
worker's pipe is not read (process mode), and the broker holds what follows. A message above
``max_packet_size`` is not decoded: it is dead-lettered (its first 4 KiB, length and SHA-256),
counted as ``too_large`` and acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Final, TypeGuard

import paho.mqtt.client as paho

from collector.health import HealthRegistry, SourceHealth
from collector.metrics import Metrics
from collector.store.local import DeadLetter

from ..registry import SourceContext, SourcePlan
from ..sink import Sink
from ..supervisor import Availability, check_readable
from .decode import UNKNOWN_STATUS, Decoded, FieldDecoder, decode_batch
from .inbox import Inbox
from .linked import Link, LinkedSource
from .session import AckToken, Incoming, Oversize, PahoSession
from .spec import MqttBinding, MqttBrokerSpec
from .worker import WorkerLink

log = logging.getLogger(__name__)

_ROUTE_CACHE_MAX = 10_000
#: Rejection kind of a message above ``max_packet_size``.
TOO_LARGE: Final = "too_large"


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


class MqttSource(LinkedSource):
    """One broker connection feeding the pipeline; ``run()`` until cancelled or ``stop()``.

    ``bindings``: (index into ``signal_names``, binding). ``health``: this source's SourceHealth or
    the registry to take it from. ``subscribed`` is set while the subscriptions are granted. A TLS
    file that cannot be read raises :class:`~..supervisor.ConfigurationError` here; a session that
    cannot start ends ``run()`` with an error, and the supervisor runs it again.
    """

    def __init__(
        self,
        name: str,
        spec: MqttBrokerSpec,
        bindings: Sequence[tuple[int, MqttBinding]],
        sink: Sink,
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
        if spec.tls:
            check_readable(
                f"MQTT source {name}",
                {"ca_file": spec.ca_file, "certfile": spec.certfile, "keyfile": spec.keyfile},
            )
        self.sink = sink
        self.health = health if isinstance(health, SourceHealth) else health.source(name, "mqtt")
        self.metrics = metrics
        self.subscribed = asyncio.Event()
        self._init_link(spec.inbox_max_bytes)
        self._failure: Exception | None = None
        self._logged_kinds: set[str] = set()
        self.status = Availability(
            f"MQTT source {name} at {spec.host}:{spec.port}",
            log,
            self.health,
            metrics.source_connected.labels(name).set,
        )
        self._future_ns = int(spec.max_future_skew_s * 1e9)

    @property
    def inbox_bytes(self) -> int:
        """Received messages waiting in kilnwatch's process to be decoded [bytes]."""
        return self._inbox.bytes

    kind = "MQTT"

    def _starting(self) -> None:
        self._failure = None

    def _make_link(self) -> Link:
        if self.spec.worker == "thread":
            return _ThreadLink(
                self.spec,
                self.client_id,
                self.router.patterns,
                self._inbox,
                asyncio.get_running_loop(),
                on_wake=self._wakeup.set,
                on_down=self._down,
                on_granted=self._granted,
            )
        return WorkerLink(
            self.name,
            self.spec,
            self.client_id,
            self.router.patterns,
            on_messages=self._arrived,
            on_down=self._down,
            on_granted=self._granted,
            on_failed=self._failed,
        )

    # the event loop: state, batches, acks

    def _granted(self, refused: list[str], downgraded: list[str]) -> None:
        if downgraded:
            self._log_once("qos", "MQTT source %s: QoS %d not granted for %s", self.spec.qos, downgraded)
        if refused:
            self.health.mark_error(f"subscription refused: {'; '.join(refused)}")
            self._down(f"subscription refused: {'; '.join(refused)}")
            return
        self.metrics.reconnects.labels(self.name).inc()
        self.subscribed.set()
        if not self.status.up():
            log.info("MQTT source %s connected and subscribed", self.name)

    def _down(self, reason: str) -> None:
        if self._stopping:
            return
        self.subscribed.clear()
        self.status.down(reason)

    def _set_down(self, reason: str) -> None:
        self.subscribed.clear()
        self.metrics.source_connected.labels(self.name).set(0)
        if self.health.connected:
            self.health.mark_disconnected(reason)
        else:
            self.health.last_error = reason  # still down: keep the time the outage began

    def _arrived(self, items: list[Incoming]) -> bool:
        """Messages from the worker; False: the inbox is full, send no more for now."""
        self._inbox.put_nowait(items)
        self._wakeup.set()
        return not self._inbox.full()

    def _failed(self, reason: str) -> None:
        self._failure = RuntimeError(f"MQTT source {self.name} cannot start: {reason}")
        self._wakeup.set()

    async def _consume(self) -> None:
        window = self.spec.batch_window_ms / 1000
        most = self.spec.max_batch_messages
        while True:
            await self._wakeup.wait()
            if self._failure is not None:
                raise self._failure
            await self._quiescence.hold()
            with self._quiescence.batch():  # from here on a quiesce waits for this hand-over
                if window and len(self._inbox) < most:
                    await asyncio.sleep(window)
                items = self._inbox.take(most)
                if not len(self._inbox):
                    self._wakeup.clear()
                if self._link is not None and not self._inbox.full():
                    self._link.resume()
                if items:
                    await self._process(items)

    async def _process(self, items: list[Incoming]) -> None:
        fits = [m for m in items if _fits(m)]
        if len(fits) < len(items):
            self._too_large([m for m in items if not _fits(m)])
        messages = [(self.router.route(m[0]), m[1], m[5]) for m in fits]
        decoded = decode_batch(messages, time.time_ns(), self._future_ns)
        self._report(decoded, fits)
        acks = [(m[2], m[3], m[4]) for m in items if m[3]]
        batch = decoded.batch
        if len(batch) or acks:
            await self.sink.put(batch, partial(self._ack, acks) if acks else None, source=self.name)
        if len(batch):
            self.metrics.readings.labels(self.name).inc(len(batch))
            self.health.mark_values(int(batch.ts.max()))

    def _ack(self, acks: list[AckToken]) -> None:
        """Runs on the loop after the pipeline committed the batch."""
        if self._link is not None:
            self._link.ack(acks)

    def _too_large(self, items: list[Incoming]) -> None:
        for topic, payload, *_, received_ns in items:
            assert isinstance(payload, Oversize)
            signals = tuple(d.name for d in self.router.route(topic))
            for signal in signals or ("-",):
                self.metrics.rejected.labels(self.name, signal, TOO_LARGE).inc()
            reason = f"{TOO_LARGE}: {payload.size} bytes, above max_packet_size {self.spec.max_packet_size}"
            letter = DeadLetter(
                self.name,
                f"{reason} (topic {topic})",
                payload.head,
                signals[0] if len(signals) == 1 else None,
                received_ns,
                payload.size,
                payload.sha256,
            )
            self.sink.dead_letter(letter)
            message = (
                "MQTT source %s: %s on topic %s, kept as a dead letter; further ones are counted, not logged"
            )
            self._log_once(TOO_LARGE, message, reason, topic)

    def _report(self, decoded: Decoded, items: list[tuple[str, bytes, int, int, int, int]]) -> None:
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


def _fits(item: Incoming) -> TypeGuard[tuple[str, bytes, int, int, int, int]]:
    return isinstance(item[1], bytes)


class _ThreadLink:
    """The paho session on paho's thread in kilnwatch's process: its events, handed to the loop.

    Messages go into ``inbox`` directly (paho's thread waits while it is full); the loop is woken
    (``on_wake``) once per burst, not once per message.
    """

    def __init__(
        self,
        spec: MqttBrokerSpec,
        client_id: str,
        patterns: Sequence[str],
        inbox: Inbox,
        loop: asyncio.AbstractEventLoop,
        *,
        on_wake: Callable[[], None],
        on_down: Callable[[str], None],
        on_granted: Callable[[list[str], list[str]], None],
        session_type: type[PahoSession] = PahoSession,
    ) -> None:
        self.inbox = inbox
        self.loop = loop
        self._on_wake, self._on_down, self._on_granted = on_wake, on_down, on_granted
        self.session = session_type(spec, client_id, tuple(patterns), self)
        self._signalled = False  # a wake-up of the loop is pending

    def start(self) -> None:
        self.session.start()

    def ack(self, acks: Sequence[AckToken]) -> None:
        self.session.ack(acks)

    def resume(self) -> None:
        pass  # paho's thread resumes by itself when the inbox has room

    async def close(self) -> None:
        self.inbox.close()  # paho's thread may wait for room: free it, so that it can stop
        await asyncio.to_thread(self.session.close)

    # paho's thread

    def message(self, item: Incoming) -> None:
        if not self.inbox.put(item):
            return  # closing: never acknowledged, it comes again
        if not self._signalled:
            self._signalled = True
            self._post(self._wake)

    def down(self, reason: str) -> None:
        self._post(self._on_down, reason)

    def granted(self, refused: list[str], downgraded: list[str]) -> None:
        self._post(self._on_granted, refused, downgraded)

    def _post(self, fn: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: what was not acked comes again
            self.loop.call_soon_threadsafe(fn, *args)

    # the loop

    def _wake(self) -> None:
        self._signalled = False  # cleared before the inbox is read: a later message signals again
        self._on_wake()


def build(plan: SourcePlan, context: SourceContext) -> MqttSource:
    """The registry's builder: one MQTT broker connection of the plant file."""
    return MqttSource(
        name=plan.source_name,
        spec=plan.spec,
        bindings=plan.bindings,
        sink=context.sink,
        health=context.health.source(plan.source_name, plan.kind),
        metrics=context.metrics,
        signal_names=context.signal_names,
        instance_id=f"{context.instance_id}-{context.installation_id}",
    )
