"""Sample an MQTT broker (paho) and propose JSON-path bindings for the numbers in its payloads.

Recognised shapes, as the MQTT collector decodes them: a bare number (``format: number``); a JSON
document whose numbers sit under a channel (``{"co2": {"value": 12.1, "status": "OK", "unit":
"vol%"}}``: value, status and unit beside each other) or directly under their name (``{"co2":
12.1}``); a timestamp (``ts``, ``timestamp``, ``time``) beside the value or in an enclosing object.
"""

from __future__ import annotations

import json
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from collector.sources.mqtt.spec import MqttBrokerSpec

from . import units
from .candidates import Candidate, kiln_id, looks_like_kiln, signal_id
from .errors import DiscoverError, Unreachable

_VALUE_KEYS = ("value", "val", "v")
_STATUS_KEYS = ("status", "quality", "state", "q")
_UNIT_KEYS = ("unit", "units", "eu", "uom")
_TS_KEYS = ("ts", "timestamp", "time", "datetime", "@timestamp")
_STOP_S = 5.0
#: Status words the MQTT collector knows without a status_map (DEFAULT_STATUS_MAP of
#: collector.sources.mqtt.spec).
_KNOWN_STATUS = frozenset({"ok", "maint", "cal", "flt"})


@dataclass
class Sample:
    """What arrived on one topic."""

    payloads: list[bytes] = field(default_factory=list)


def broker_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise DiscoverError(f"{url!r} is not an MQTT URL like mqtt://127.0.0.1:1883")
    return parts.hostname, parts.port or 1883


def sample(
    url: str,
    topic: str,
    seconds: float,
    max_messages: int,
    timeout_s: float,
    progress: Callable[[str], None] | None = None,
    spec: MqttBrokerSpec | None = None,
) -> dict[str, Sample]:
    """Subscribe to ``topic`` for ``seconds`` or until ``max_messages`` arrived; payloads per topic.
    ``spec``: TLS and user as in the plant file's broker entry."""
    say = progress or (lambda msg: print(f"discover {url}: {msg}", file=sys.stderr))
    host, port = broker_address(url)
    inbox: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
    connected: queue.SimpleQueue[str | None] = queue.SimpleQueue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"kilnwatch-discover-{os.getpid()}")

    def on_connect(cl: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            connected.put(str(rc))
            return
        cl.subscribe(topic, qos=0)
        connected.put(None)

    client.on_connect = on_connect
    if spec is not None and spec.tls:
        try:
            client.tls_set(ca_certs=spec.ca_file, certfile=spec.certfile, keyfile=spec.keyfile)
        except (OSError, ValueError) as err:
            raise DiscoverError(f"TLS settings of {url}: {err}") from err
    if spec is not None and spec.username is not None:
        password = spec.password.get_secret_value() if spec.password is not None else None
        client.username_pw_set(spec.username, password)
    client.on_message = lambda _c, _u, m: inbox.put((m.topic, bytes(m.payload)))
    try:
        client.connect(host, port, keepalive=max(5, round(timeout_s)))
    except (OSError, ValueError) as err:
        raise Unreachable(f"cannot connect to {url}: {err}") from err
    client.loop_start()
    out: dict[str, Sample] = {}
    try:
        try:
            refused = connected.get(timeout=timeout_s)
        except queue.Empty:
            raise Unreachable(f"cannot connect to {url}: no answer within {timeout_s:g} s") from None
        if refused is not None:
            raise Unreachable(f"{url} refused the connection: {refused}")
        say(f"subscribed to {topic}; sampling for {seconds:g} s or {max_messages} messages")
        deadline = time.monotonic() + seconds
        n = 0
        next_note = time.monotonic() + 5
        while n < max_messages:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                name, payload = inbox.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            out.setdefault(name, Sample()).payloads.append(payload)
            n += 1
            if time.monotonic() >= next_note:
                say(f"{n} messages on {len(out)} topics")
                next_note += 5
        say(f"{n} messages on {len(out)} topics")
    finally:
        _stop(client)
    return out


def _stop(client: mqtt.Client) -> None:
    """Disconnect; paho's loop_stop joins its thread without a timeout, so it runs in one that may be left."""
    client.disconnect()
    stopper = threading.Thread(target=client.loop_stop, name="discover-paho-stop", daemon=True)
    stopper.start()
    stopper.join(_STOP_S)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_timestamp(v: Any) -> bool:
    if isinstance(v, str):
        return bool(re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", v))
    return _is_number(v) and v > 1e9  # epoch seconds (or ms, us, ns) after 2001


@dataclass
class _Leaf:
    path: list[str]
    channel: str
    status_path: str | None
    unit: str
    timestamp_path: str | None


def _leaves(doc: Any, path: list[str], ts: str | None) -> list[_Leaf]:
    """Numbers in ``doc`` with the status, unit and timestamp found beside them."""
    if not isinstance(doc, dict):
        return []
    prefix = ".".join(path)
    here_ts = next((k for k in _TS_KEYS if k in doc and _is_timestamp(doc[k])), None)
    if here_ts is not None:
        ts = f"{prefix}.{here_ts}" if prefix else here_ts
    value_key = next((k for k in _VALUE_KEYS if k in doc and _is_number(doc[k])), None)
    if value_key is not None and path:
        status = next((k for k in _STATUS_KEYS if k in doc and not isinstance(doc[k], dict | list)), None)
        unit = next((str(doc[k]) for k in _UNIT_KEYS if isinstance(doc.get(k), str)), "")
        return [
            _Leaf(
                [*path, value_key],
                path[-1],
                f"{prefix}.{status}" if status else None,
                unit,
                ts,
            )
        ]
    out: list[_Leaf] = []
    for key, v in doc.items():
        if key in _TS_KEYS or key in _STATUS_KEYS:
            continue
        if _is_number(v):
            out.append(_Leaf([*path, key], key, None, "", ts))
        elif isinstance(v, dict):
            out.extend(_leaves(v, [*path, key], ts))
    return out


def _kiln_of(topic: str, default: str) -> str:
    """The first topic level that names a kiln, else ``default``."""
    return next((level for level in topic.split("/") if looks_like_kiln(level)), default)


def candidates(
    samples: dict[str, Sample], broker: str, default_kiln: str
) -> tuple[list[Candidate], set[str]]:
    """Bindings for each number in each topic's payloads (the last payload that parses as JSON), and
    the status values seen that the collector does not know without a status_map."""
    out: list[Candidate] = []
    statuses: set[str] = set()
    for topic in sorted(samples):
        payloads = samples[topic].payloads
        kiln = kiln_id(_kiln_of(topic, default_kiln))
        docs = [_json(p) for p in payloads]
        doc = next((d for d in reversed(docs) if d is not None), None)
        if doc is None or _is_number(doc):
            if doc is None and not all(_is_float(p) for p in payloads):
                continue  # neither JSON nor numbers
            name = topic.rsplit("/", 1)[-1]
            number = {"broker": broker, "topic": topic, "format": "number"}
            out.append(Candidate(kiln, signal_id(kiln, name), name, {"mqtt": number}))
            continue
        for leaf in _leaves(doc, [], None):
            binding: dict[str, Any] = {
                "broker": broker,
                "topic": topic,
                "value_path": ".".join(leaf.path),
                "status_path": leaf.status_path,
                "timestamp_path": leaf.timestamp_path,
            }
            c = Candidate(
                kiln,
                signal_id(kiln, leaf.channel),
                ".".join(leaf.path[:-1]) or leaf.channel,
                {"mqtt": binding},
            )
            if leaf.unit:
                c.unit_said = leaf.unit
                c.unit = units.from_display_name(leaf.unit)
            if leaf.timestamp_path is None:
                c.notes.append("no timestamp in the payload: the time of arrival is used")
            if leaf.status_path:
                for d in docs:
                    seen = _lookup(d, leaf.status_path)
                    if seen is not None and str(seen).lower() not in _KNOWN_STATUS:
                        statuses.add(str(seen))
            out.append(c)
    return out, statuses


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None


def _is_float(payload: bytes) -> bool:
    try:
        float(payload)
    except ValueError:
        return False
    return True


def _lookup(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc
