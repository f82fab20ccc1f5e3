"""The paho side of an MQTT source: connection, subscriptions, connection generations, acks.

No asyncio and no numpy here: a :class:`PahoSession` runs either in kilnwatch's process (its
callbacks on paho's network thread) or alone in a worker process (:mod:`collector.sources.mqtt.worker`).
Whatever it learns goes to a :class:`SessionEvents`; the callbacks only hand over.

A message larger than ``max_packet_size`` is not handed over: MQTT 5 asks the broker never to
send one (Maximum Packet Size in CONNECT); if one arrives anyway (MQTT 3.1.1 has no such
property), only its first 4 KiB, length and SHA-256 go on, as an :class:`Oversize`, to be
dead-lettered and acknowledged without being decoded.

A message id is valid only on the connection it came on: every (re)connect and disconnect starts
a new generation, and an ack of an older generation is skipped (the broker redelivers, storage
is idempotent). paho reconnects with capped exponential backoff; subscribing in ``on_connect``
restores the subscriptions after every reconnect.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector.store.dead_letters import HEAD_BYTES

from .spec import MqttBrokerSpec


@dataclass(frozen=True, slots=True)
class Oversize:
    """A payload above ``max_packet_size``: its first bytes, its length and its SHA-256 (hex)."""

    head: bytes
    size: int
    sha256: str


#: topic, payload, message id, QoS, connection generation, arrival [ns]
Incoming = tuple[str, bytes | Oversize, int, int, int, int]
#: message id, QoS, connection generation
AckToken = tuple[int, int, int]

#: How long a stop waits for the broker to confirm the acknowledgements sent before it [s].
DISCONNECT_FLUSH_S = 2.0
#: Unsubscribed from (never subscribed to) as a round trip before a disconnect.
FLUSH_TOPIC = "kilnwatch/flush"

paho_log = logging.getLogger("collector.mqtt.paho")
# paho 2.2 logs this as an error when its thread runs once more after a clean disconnect.
paho_log.addFilter(lambda record: not str(record.msg).startswith("Client is not connected"))


class SessionEvents(Protocol):
    """Receives what the session learns; called on paho's thread."""

    def message(self, item: Incoming) -> None: ...

    def down(self, reason: str) -> None: ...

    def granted(self, refused: list[str], downgraded: list[str]) -> None: ...


class PahoSession:
    """One paho client with a persistent session, subscribed to ``patterns``.

    ``first_generation``: where the generation count starts, so that the acks of messages taken
    by an earlier session object (an earlier worker process) never match this one's.
    """

    def __init__(
        self,
        spec: MqttBrokerSpec,
        client_id: str,
        patterns: Sequence[str],
        events: SessionEvents,
        first_generation: int = 0,
    ) -> None:
        self.spec = spec
        self.client_id = client_id
        self.patterns = tuple(patterns)
        self.events = events
        self.where = f"{spec.host}:{spec.port}"
        self._generation = first_generation  # written on paho's thread only, under _ack_lock
        self._ack_lock = threading.Lock()
        self._client: paho.Client | None = None
        self._flushed = threading.Event()  # set by paho's thread when an UNSUBACK came

    def start(self) -> None:
        """Connect in the background (raises on a TLS file that cannot be read)."""
        self._client = self._make_client()
        self._client.loop_start()

    def close(self) -> None:
        """Disconnect (the broker keeps the session and queues for it); blocks until paho's thread ends.

        The acknowledgements sent last must reach the broker first: a broker that is still sending
        us messages leaves unread data in our socket, and closing it then resets the connection,
        which can discard what the broker had not yet read (those messages would come again). An
        UNSUBSCRIBE of a topic never subscribed is a round trip the broker answers in order, after
        the acknowledgements before it; the session's subscriptions are untouched.
        """
        client = self._client
        if client is not None:
            if client.is_connected():
                self._flushed.clear()
                rc, _mid = client.unsubscribe(FLUSH_TOPIC)
                if rc == paho.MQTT_ERR_SUCCESS:
                    self._flushed.wait(DISCONNECT_FLUSH_S)
            client.disconnect()
            client.loop_stop()
        self._client = None

    def ack(self, acks: Sequence[AckToken]) -> None:
        """Acknowledge messages of the current connection; the others come again."""
        with self._ack_lock:
            client = self._client
            if client is None:
                return
            current = self._generation
            for mid, qos, generation in acks:
                if generation == current:
                    client.ack(mid, qos)

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
        client.enable_logger(paho_log)
        client.reconnect_delay_set(s.reconnect_min_s, s.reconnect_max_s)  # type: ignore[arg-type]
        if s.username is not None:
            client.username_pw_set(s.username, s.password.get_secret_value() if s.password else None)
        if s.tls:
            client.tls_set(ca_certs=s.ca_file, certfile=s.certfile, keyfile=s.keyfile)
        client.on_connect = self._on_connect
        client.on_connect_fail = lambda *_: self.events.down(f"cannot connect to {self.where}")
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_unsubscribe = lambda *_: self._flushed.set()
        client.on_message = self._on_message
        if v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = s.session_expiry_s
            props.ReceiveMaximum = s.receive_maximum
            props.MaximumPacketSize = s.max_packet_size
            client.connect_async(s.host, s.port, s.keepalive_s, clean_start=False, properties=props)
        else:
            client.connect_async(s.host, s.port, s.keepalive_s)
        return client

    # paho's thread: hand over, nothing else

    def _on_connect(self, client: paho.Client, _u: object, flags: Any, rc: Any, _p: object) -> None:
        if rc.is_failure:
            self.events.down(f"broker refused the connection: {rc}")
            return
        with self._ack_lock:
            self._generation += 1
        client.subscribe([(p, int(self.spec.qos)) for p in self.patterns])

    def _on_subscribe(self, _c: paho.Client, _u: object, _mid: int, codes: list[Any], _p: object) -> None:
        granted = list(zip(self.patterns, codes, strict=False))
        refused = [f"{p}: {rc}" for p, rc in granted if rc.is_failure]
        downgraded = [p for p, rc in granted if not rc.is_failure and rc.value < self.spec.qos]
        self.events.granted(refused, downgraded)

    def _on_disconnect(self, _c: paho.Client, _u: object, _f: object, rc: Any, _p: object) -> None:
        with self._ack_lock:
            self._generation += 1
        self.events.down(f"disconnected: {rc}")

    def _on_message(self, _c: paho.Client, _u: object, m: paho.MQTTMessage) -> None:
        # Topics are valid UTF-8: brokers refuse any other (MQTT 3.1.1 section 1.5.3, MQTT 5 1.5.4).
        payload = cast(bytes, m.payload)  # paho's received payloads are bytes
        if len(payload) > self.spec.max_packet_size:
            cut = Oversize(payload[:HEAD_BYTES], len(payload), hashlib.sha256(payload).hexdigest())
            self.events.message((m.topic, cut, m.mid, m.qos, self._generation, time.time_ns()))
            return
        self.events.message((m.topic, payload, m.mid, m.qos, self._generation, time.time_ns()))
