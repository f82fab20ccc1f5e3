"""Figure 16: seconds from a reading's arrival to the running minute that includes it on the stream.

Real time, 200 signals at 1 Hz, set up as figure 7 (``live_latency.py``): the kiln simulator (15
demo kilns: 6 signals each over OPC UA, 7 analyser channels each over MQTT through mosquitto) and
``kilnwatch run``, each in its own process. Besides kilnwatch, the benchmark subscribes to the
analyser topics on the same mosquitto: a message's arrival is when the broker hands it to this
subscriber too (the moment it is published, within a millisecond on 127.0.0.1). It also reads
``/api/v1/stream``.

A ``running_minute`` event says ``through``: every active signal of its kiln has reported up to
that second, so an analyser message stamped ``ts`` is in the first event of its kiln with
``through >= ts``. Its latency is that event's arrival minus the message's arrival. The same
messages' closed minutes (the first ``minute`` event of the kiln at or after the message's minute)
give the baseline, measured in the same run: what the page showed before the running minute.
Messages of the first ``--warmup`` seconds are not counted; a message with no event within
``--seconds`` + 10 s counts with the time waited.

    RESULT live_provisional_latency value=<p99 s> unit=s baseline=<closed-minute p99 s> ratio=<value/baseline>

Goal: value < 1.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import paho.mqtt.client as paho
from common import (
    free_port,
    kiln_ids,
    kilnwatch_service,
    log,
    mosquitto,
    percentile,
    plant_file,
    result_line,
    simulator,
)
from paho.mqtt.enums import CallbackAPIVersion

LATENESS_S = 10.0  # the engine's default, as in live_latency.py
MINUTE_S = 60
#: The simulator's analyser topics (simulators.mqtt_publisher, default prefix).
TOPICS = "kilnwatch/sim/+/cems"


def _s(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@dataclass
class Seen:
    """Arrivals [s since 1970, this process's clock] by kiln."""

    messages: list[tuple[str, float, float]] = field(default_factory=list)  # (kiln, ts, arrival)
    running: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    closed: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)


class Listener:
    """A plain paho subscriber (QoS 0, clean session) noting each analyser message's arrival."""

    def __init__(self, port: int, seen: Seen) -> None:
        self.seen = seen
        self.subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-provisional-{port}")
        self.client.on_connect = lambda c, *_: c.subscribe(TOPICS, qos=0)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise TimeoutError("the benchmark's subscriber was not subscribed within 10 s")

    def _on_message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        arrival = time.time()
        kiln = message.topic.split("/")[-2]
        ts = _s(json.loads(message.payload)["ts"].replace("Z", "+00:00"))
        with self.seen.lock:
            self.seen.messages.append((kiln, ts, arrival))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def read_stream(base_url: str, seen: Seen, until: float) -> None:
    """``running_minute`` and ``minute`` events of every kiln until ``until`` (time.time())."""
    timeout = httpx.Timeout(10.0, read=30.0)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=timeout) as client,
        client.stream("GET", "/api/v1/stream") as response,
    ):
        response.raise_for_status()
        event, data = "message", ""
        async for line in response.aiter_lines():
            now = time.time()
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif line == "" and data:
                body = json.loads(data)
                if event == "running_minute":
                    seen.running[body["kiln"]].append((_s(body["through"]), now))
                elif event == "minute" and body.get("time"):
                    seen.closed[body["kiln"]].append((_s(body["time"]), now))
                event, data = "message", ""
            if now >= until:
                return


def first_at_or_after(events: list[tuple[float, float]], t: float) -> float | None:
    """Arrival of the first event (in arrival order) whose time is >= t."""
    marks, high = [], float("-inf")
    for mark, _ in events:
        high = max(high, mark)
        marks.append(high)
    i = bisect.bisect_left(marks, t)
    return events[i][1] if i < len(events) else None


def latencies(
    seen: Seen, start: float, end: float, waited_until: float
) -> tuple[list[float], list[float], int]:
    """Per message that arrived in [start, end): the provisional and the closed-minute latency [s];
    and how many messages no running minute included (counted with the time waited)."""
    provisional, closed, missing = [], [], 0
    for kiln, ts, arrival in seen.messages:
        if not start <= arrival < end:
            continue
        at = first_at_or_after(seen.running[kiln], ts)
        if at is None:
            missing += 1
            at = waited_until
        provisional.append(at - arrival)
        minute = ts // MINUTE_S * MINUTE_S
        shown = first_at_or_after(seen.closed[kiln], minute)
        if shown is not None:
            closed.append(shown - arrival)
    return provisional, closed, missing


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--signals", type=int, default=200, help="signals (13 per kiln)")
    parser.add_argument("--seconds", type=float, default=120.0, help="measured window [s]")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds not counted at the start")
    args = parser.parse_args()
    kilns = kiln_ids(args.signals)
    seen = Seen()
    with tempfile.TemporaryDirectory(prefix="kw-bench-provisional-") as tmp:
        work = Path(tmp)
        opcua_port, api_port = free_port(), free_port()
        with mosquitto(work) as broker:
            plant = plant_file(work, kilns, opcua_port, broker.port, {"lateness_s": LATENESS_S})
            with (
                simulator(work, kilns, opcua_port, mqtt_port=broker.port, speed=1.0, backfill_h=0.0),
                kilnwatch_service(work, plant, api_port),
            ):
                listener = Listener(broker.port, seen)
                try:
                    start = time.time() + args.warmup
                    end = start + args.seconds
                    # past the window: the closed minutes of its messages (lateness after a minute's end)
                    until = end + MINUTE_S + LATENESS_S + 5
                    log(
                        f"live_provisional_latency: {len(kilns)} kilns, {args.warmup:.0f} s warm-up, "
                        f"{args.seconds:.0f} s measured, then {until - end:.0f} s for their closed minutes"
                    )
                    asyncio.run(read_stream(f"http://127.0.0.1:{api_port}", seen, until))
                finally:
                    listener.close()
    provisional, closed, missing = latencies(seen, start, end, until)
    if not provisional:
        raise RuntimeError("no analyser message arrived in the measured window")
    p50, p99 = percentile(provisional, 50), percentile(provisional, 99)
    log(
        f"live_provisional_latency: {len(provisional)} messages, {missing} never included; "
        f"min {min(provisional):.3f} s, p50 {p50:.3f} s, p99 {p99:.3f} s, max {max(provisional):.3f} s"
    )
    if not closed:
        raise RuntimeError("no closed minute of the measured messages arrived")
    c50, c99 = percentile(closed, 50), percentile(closed, 99)
    log(f"closed minute, same messages ({len(closed)}): p50 {c50:.2f} s, p99 {c99:.2f} s")
    result_line("live_provisional_latency", p99, "s", c99, p99 / c99)


if __name__ == "__main__":
    main()
