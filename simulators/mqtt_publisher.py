"""MQTT publisher of the simulated CEMS analysers (paho-mqtt 2.x, QoS 1), on the shared `SimClock`.

One message per kiln per `rate_s` of simulated time on `<topic_prefix>/<kiln>/cems` (payload: see
`simulators.cems_payload`). paho's network loop runs in its own thread (`loop_start`, which also reconnects
and resends unacknowledged QoS 1 messages); the schedule runs in asyncio. Messages held by a gateway
reconnect burst are published, late, when simulated time reaches the end of the burst.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

from simulators.cems_payload import Message, build_messages
from simulators.clock import SimClock
from simulators.model import KilnModel
from simulators.scenarios import Scenario

_NS = 1_000_000_000
STOP_STEP_S = 2.0
"""Bound of each step of `SimMqttPublisher.stop` [s]."""
_log = logging.getLogger(__name__)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("%s stopped publishing", task.get_name(), exc_info=task.exception())


@dataclass
class PublisherStats:
    messages: int = 0
    """Messages handed to paho."""
    acked: int = 0
    """Messages the broker acknowledged (PUBACK)."""
    held: int = 0
    """Messages waiting for the end of a reconnect burst."""
    last_tick_ns: int = 0
    connects: int = 0


class SimMqttPublisher:
    """Publishes every kiln's analyser rack. Use `async with` or `start()` / `stop()`."""

    def __init__(
        self,
        kilns: Sequence[KilnModel],
        clock: SimClock,
        host: str = "127.0.0.1",
        port: int = 1883,
        client_id: str = "kilnwatch-sim-cems",
        rate_s: float = 1.0,
        scenario: Scenario | None = None,
        topic_prefix: str = "kilnwatch/sim",
        qos: int = 1,
        wall_interval_s: float = 0.1,
        max_ticks_per_step: int = 600,
        decimals: int | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.kilns = list(kilns)
        self.clock = clock
        self.host, self.port = host, port
        self.client_id = client_id
        self.rate_ns = round(rate_s * _NS)
        self.scenario = scenario or Scenario()
        self.topic_prefix = topic_prefix.rstrip("/")
        self.qos = qos
        self.wall_interval_s = wall_interval_s
        self.max_ticks_per_step = max_ticks_per_step
        self.decimals = decimals
        self.stats = PublisherStats()
        self._auth = (username, password)
        self._client: mqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = threading.Event()
        self._held: list[tuple[int, int, str, bytes]] = []  # (release_ns, t_ns, topic, payload) heap
        self._next_k = 0
        self._acked = threading.Condition()

    def topic(self, kiln: str) -> str:
        return f"{self.topic_prefix}/{kiln}/cems"

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def __aenter__(self) -> SimMqttPublisher:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect in the background (paho retries until the broker answers) and start the schedule."""
        if self._client is not None:
            return
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id)
        if self._auth[0] is not None:
            client.username_pw_set(*self._auth)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        self._prepare(client)
        client.connect_async(self.host, self.port, keepalive=30)
        client.loop_start()
        self._client = client
        self._next_k = -(-self.clock.now_ns() // self.rate_ns)
        self._task = asyncio.create_task(self._run(), name=f"mqtt-sim-{self.client_id}")
        self._task.add_done_callback(_log_crash)

    def _prepare(self, client: mqtt.Client) -> None:
        """Set what must be set before connecting (a subclass's will message)."""

    async def wait_connected(self, timeout_s: float = 10.0) -> bool:
        return await asyncio.to_thread(self._connected.wait, timeout_s)

    async def stop(self, drain_timeout_s: float = 5.0, step_s: float = STOP_STEP_S) -> None:
        """Stop the schedule, wait up to `drain_timeout_s` for the broker to ack what was sent, disconnect.

        Bounded: the schedule and paho's network thread are each waited for at most ``step_s``."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=step_s)
        client, self._client = self._client, None
        if client is None:
            return
        await asyncio.to_thread(self._drain, drain_timeout_s)
        client.disconnect()
        # loop_stop() joins paho's thread without a timeout: join it from a thread of our own instead.
        stopper = threading.Thread(target=client.loop_stop, name=f"stop-{self.client_id}", daemon=True)
        stopper.start()
        await asyncio.to_thread(stopper.join, step_s)
        if stopper.is_alive():
            _log.warning("CEMS publisher: paho's network thread did not end within %.1f s", step_s)
        self._connected.clear()

    def _drain(self, timeout_s: float) -> None:
        with self._acked:
            self._acked.wait_for(
                lambda: not self.connected or self.stats.acked >= self.stats.messages, timeout_s
            )

    # paho callbacks run on paho's network thread: they only update counters and flags.
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any
    ) -> None:
        if not reason_code.is_failure:
            self.stats.connects += 1
            self._connected.set()
            _log.info("CEMS publisher connected to %s:%s", self.host, self.port)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any
    ) -> None:
        if self._connected.is_set() and self._client is not None:
            _log.warning("CEMS publisher disconnected from %s:%s (%s)", self.host, self.port, reason_code)
        self._connected.clear()
        with self._acked:
            self._acked.notify_all()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, props: Any) -> None:
        with self._acked:
            self.stats.acked += 1
            self._acked.notify_all()

    async def _run(self) -> None:
        while True:
            now = self.clock.now_ns()
            target_k = now // self.rate_ns
            behind = False
            if target_k >= self._next_k:
                k_end = min(target_k + 1, self._next_k + self.max_ticks_per_step)
                self._schedule(self._next_k, k_end)
                self._next_k = k_end
                behind = k_end <= target_k
            self._release(now)
            await asyncio.sleep(0 if behind else self.wall_interval_s)

    def _schedule(self, k0: int, k1: int) -> None:
        t_ns = np.arange(k0, k1, dtype=np.int64) * self.rate_ns
        batch: list[tuple[int, int, str, bytes]] = []
        for model in self.kilns:
            applied = self.scenario.apply(model, t_ns, model.sample(t_ns))
            topic = self.topic(model.kiln_id)
            messages: list[Message] = build_messages(applied, self.decimals)
            batch += [(m.release_ns, m.t_ns, topic, m.payload) for m in messages]
        for item in sorted(batch, key=lambda b: (b[1], b[2])):
            if item[0] > item[1]:
                heapq.heappush(self._held, item)
            else:
                self._release(item[1])  # what a reconnect released before this reading goes first
                self._publish(item[2], item[3])
        self.stats.held = len(self._held)
        self.stats.last_tick_ns = int(t_ns[-1])

    def _release(self, now_ns: int) -> None:
        while self._held and self._held[0][0] <= now_ns:
            _, _, topic, payload = heapq.heappop(self._held)
            self._publish(topic, payload)
        self.stats.held = len(self._held)

    def _publish(self, topic: str, payload: bytes) -> None:
        if self._client is None:
            return
        self._client.publish(topic, payload, qos=self.qos)
        with self._acked:
            self.stats.messages += 1
