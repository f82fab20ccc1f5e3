"""Figure fleet_soak: a fleet in one process. 200 kilns x 15 signals at 1 Hz over MQTT (3 000
readings/s, real time) into one ``kilnwatch run`` for ``--minutes`` (default 30).

The plant file is the demo plant (``common.plant_file``) with every signal of every kiln read over
MQTT: one JSON document per kiln and second on ``kilnwatch/fleet/<kiln>``, in the simulator's
CEMS gateway format (``simulators.cems_payload``: ``ts``, and per channel value and status), the
demo kiln's 13 signals plus two more (a TOC analyser and a second fuel feeder) for 15. The values
are the simulator's kiln model (``simulators.model.KilnModel``), published by one paho client at
QoS 1 in a process of its own, each second's documents at that second (source time = wall time).

Measured over the window after ``--warmup-s``:

- CPU share of one core of the kilnwatch process and its MQTT worker process (``/proc``);
- RSS of both at the start and the end of the window (memory flat: end/start < 1.05). Each kiln's
  window of closed minutes (``engine.trend_minutes``, 360 by default) fills for its first hours;
  ``--trend-minutes 60 --warmup-s 3720`` starts the window once it is full;
- minutes closed on time: every ``minute`` event on ``/api/v1/stream`` arrives at most
  lateness + 2 s after the minute's end (the engine closes a minute once its watermark passes the
  end + lateness);
- nothing lost: after the publisher stops, readings in the store = readings published.

    RESULT fleet_soak value=<CPU % of one core> unit=% baseline=50 ratio=<value/50>   (goal < 1)
    RESULT fleet_soak_rss value=<end MiB> unit=MiB baseline=<start MiB> ratio=<end/start>
    RESULT fleet_soak_late_minutes value=<late minutes> unit=minutes baseline=<minutes closed> ratio=...
    RESULT fleet_soak_lost value=<published - stored readings> unit=readings baseline=<published> ratio=...

``--minutes 3`` checks the set-up; the figure is the 30-minute run (``make soak``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sqlite3
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import common
import httpx
import numpy as np
import paho.mqtt.client as paho
import yaml
from common import (
    cpu_seconds,
    free_port,
    kilnwatch_service,
    log,
    mosquitto,
    plant_file,
    result_line,
    wait_for,
)
from paho.mqtt.enums import CallbackAPIVersion
from soak_memory import _children, rss_mib

from analytics.engine import EngineParams
from simulators.cems_payload import iso_ms
from simulators.model import SIGNAL_KEYS, KilnModel

NS = 1_000_000_000
TOPIC = "kilnwatch/fleet/{kiln}"
#: the two signals beyond the demo kiln's 13: (key, quantity, unit, basis, range, a plausible value)
EXTRA: list[tuple[str, str, str, str | None, tuple[float, float], float]] = [
    ("stack.toc", "toc", "mg/Nm3", "dry", (0.0, 100.0), 4.0),
    ("fuel2.rate", "fuel_rate", "t/h", None, (0.0, 100.0), 3.0),
]
SIGNALS_PER_KILN = len(SIGNAL_KEYS) + len(EXTRA)
GOAL_CPU_PCT = 50.0
#: seconds of model values per kiln, published over and over with the current time
CYCLE_S = 600
#: kilnwatch builds 200 kilns' state before its API listens: more than the helpers' default wait
common.READY_TIMEOUT_S = 180.0


def channel(key: str) -> str:
    return key.replace(".", "_")


def fleet_plant(work: Path, kilns: list[str], port: int, trend_minutes: int | None = None) -> Path:
    """The demo plant file, every signal (and two more per kiln) bound to its kiln's MQTT topic."""
    path = plant_file(work, kilns, free_port(), port)
    plant: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    if trend_minutes is not None:
        plant.setdefault("engine", {})["trend_minutes"] = trend_minutes
    for kiln in plant["plants"][0]["kilns"]:
        for key, quantity, unit, basis, rng, _ in EXTRA:
            kiln["signals"].append(
                {"id": f"{kiln['id']}.{key}", "quantity": quantity, "unit": unit, "range": list(rng)}
                | ({"basis": basis} if basis else {})
            )
        for signal in kiln["signals"]:
            key = signal["id"].split(".", 1)[1]
            signal["source"] = {
                "mqtt": {
                    "broker": "cems",
                    "topic": TOPIC.format(kiln=kiln["id"]),
                    "value_path": f"channels.{channel(key)}.value",
                    "status_path": f"channels.{channel(key)}.status",
                    "timestamp_path": "ts",
                }
            }
    plant["sources"].pop("opcua", None)
    path.write_text(yaml.safe_dump(plant, sort_keys=False), encoding="utf-8")
    return path


def model_values(kilns: list[str], first_s: int, seconds: int) -> list[list[tuple[str, list[float]]]]:
    """Per kiln, (channel, values of ``seconds`` s from ``first_s``) of each of its 15 signals; the
    model costs tens of ms per call whatever its length, so it is sampled once, up front."""
    t = (first_s + np.arange(seconds, dtype=np.int64)) * NS
    out = []
    for i, kiln in enumerate(kilns):
        values = KilnModel(kiln, seed=i + 1).sample(t)
        columns = [(channel(k), values[k].tolist()) for k in SIGNAL_KEYS]
        out.append(columns + [(channel(key), [value] * seconds) for key, *_, value in EXTRA])
    return out


def document(columns: list[tuple[str, list[float]]], i: int, stamp: str) -> bytes:
    """One kiln's gateway document (``simulators.cems_payload`` format) for second ``i`` of its values."""
    chans = {name: {"value": v[i], "status": "OK"} for name, v in columns}
    return json.dumps({"ts": stamp, "channels": chans}).encode()


def publish(port: int, kilns: list[str], stop: Any, published: Any, behind: Any) -> None:
    """Each wall second, that second's document of every kiln at QoS 1 (the model's values over
    ``CYCLE_S``, repeated), until ``stop`` is set. ``published``: documents the broker acknowledged;
    ``behind``: the most a second's documents were sent after that second [s]."""
    values = model_values(kilns, int(time.time()), CYCLE_S)
    topics = [TOPIC.format(kiln=k) for k in kilns]
    acked = threading.Semaphore(0)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-fleet-publisher")
    client.max_inflight_messages_set(1000)
    client.on_publish = lambda *_: acked.release()
    client.connect("127.0.0.1", port)
    client.loop_start()
    sent = 0
    second = int(time.time()) + 1
    while not stop.is_set():
        time.sleep(max(0.0, second - time.time()))
        (stamp,) = iso_ms(np.array([second * NS]))
        for topic, columns in zip(topics, values, strict=True):
            client.publish(topic, document(columns, second % CYCLE_S, stamp), qos=1)
        sent += len(kilns)
        behind.value = max(behind.value, time.time() - second)
        second += 1
    for _ in range(sent):
        if not acked.acquire(timeout=60):
            raise TimeoutError("the broker stopped acknowledging the publisher")
    published.value = sent
    client.disconnect()
    client.loop_stop()


class MinuteWatch:
    """``minute`` events of the SSE stream: how late each arrives after its minute's end [s]."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.delays: list[float] = []
        self.counting = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.stream("GET", self.url, timeout=httpx.Timeout(10, read=60)) as r:
            event = None
            for line in r.iter_lines():
                if self.stop.is_set():
                    return
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event == "minute" and self.counting:
                    minute = json.loads(line.split(":", 1)[1]).get("time")
                    if minute:
                        end = datetime.fromisoformat(minute.replace("Z", "+00:00")).timestamp() + 60
                        self.delays.append(time.time() - end)


class LivePoll:
    """When each new minute of one kiln first shows on ``/live`` (polled every 0.5 s): how late
    the engine closed it, beside the stream's figure [s after the minute's end]."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.delays: list[float] = []
        self.counting = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        seen = None
        while not self.stop.wait(0.5):
            try:
                minute = httpx.get(self.url, timeout=5).json().get("time")
            except httpx.HTTPError:
                continue
            if minute and minute != seen:
                if seen is not None and self.counting:
                    end = datetime.fromisoformat(minute.replace("Z", "+00:00")).timestamp() + 60
                    self.delays.append(time.time() - end)
                seen = minute


def cpu_of(pid: int) -> float:
    return sum(cpu_seconds(p) for p in (pid, *_children(pid)))


def stored_readings(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM reading").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="measured wall minutes")
    parser.add_argument("--kilns", type=int, default=200)
    parser.add_argument("--warmup-s", type=float, default=90.0, help="wall s before the window starts")
    parser.add_argument(
        "--trend-minutes",
        type=int,
        help="engine.trend_minutes of the plant (default 360): at 60 the minute window is full after an "
        "hour, so a warm-up of 62 min shows whether memory is flat after it",
    )
    args = parser.parse_args()
    kilns = [f"kiln{i + 1}" for i in range(args.kilns)]
    lateness = EngineParams().lateness_s
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="kw-bench-fleet-") as tmp:
        work = Path(tmp)
        api_port = free_port()
        with mosquitto(work) as broker:
            plant = fleet_plant(work, kilns, broker.port, args.trend_minutes)
            with kilnwatch_service(work, plant, api_port) as service:
                base = f"http://127.0.0.1:{api_port}/api/v1"
                ready = f"http://127.0.0.1:{api_port}/readyz"
                # the MQTT source subscribed: then nothing published is lost before kilnwatch listens
                wait_for(lambda: httpx.get(ready, timeout=5).status_code == 200, 120, "kilnwatch ready")
                stop, published, behind = ctx.Event(), ctx.Value("q", 0), ctx.Value("d", 0.0)
                publisher = ctx.Process(target=publish, args=(broker.port, kilns, stop, published, behind))
                publisher.start()
                watch = MinuteWatch(f"{base}/stream")
                watch.thread.start()
                poll = LivePoll(f"{base}/kilns/{kilns[0]}/live")
                poll.thread.start()
                newest = f"{base}/kilns/{kilns[-1]}/live"
                wait_for(
                    lambda: httpx.get(newest, timeout=5).json().get("time"), 180, "a first closed minute"
                )
                time.sleep(args.warmup_s)
                behind.value = 0.0
                watch.counting = poll.counting = True
                rss0, cpu0, t0 = rss_mib(service.pid), cpu_of(service.pid), time.monotonic()
                log(f"fleet_soak start: {rss0:.1f} MiB, {len(kilns)} kilns x {SIGNALS_PER_KILN} signals")
                end_at = t0 + args.minutes * 60
                while (left := end_at - time.monotonic()) > 0:
                    time.sleep(min(60.0, left))
                    if service.poll() is not None:
                        raise RuntimeError(f"kilnwatch exited with {service.returncode}")
                    cpu = (cpu_of(service.pid) - cpu0) / (time.monotonic() - t0) * 100
                    late = sum(d > lateness + 2 for d in watch.delays)
                    log(
                        f"fleet_soak {(time.monotonic() - t0) / 60:5.1f} min: CPU {cpu:.0f} % of a core, "
                        f"{rss_mib(service.pid):.1f} MiB, {len(watch.delays)} minutes closed, {late} late"
                        + (f", delay max {max(watch.delays):.1f} s" if watch.delays else "")
                        + f"; publisher at most {behind.value:.1f} s behind"
                        + (
                            f"; {kilns[0]} on /live: delay max {max(poll.delays):.1f} s"
                            if poll.delays
                            else ""
                        )
                    )
                cpu1, t1, rss1 = cpu_of(service.pid), time.monotonic(), rss_mib(service.pid)
                publisher_behind = behind.value
                watch.counting = poll.counting = False
                poll.stop.set()
                stop.set()
                publisher.join(120)
                if publisher.exitcode != 0:
                    raise RuntimeError(f"the publisher exited with {publisher.exitcode}")
                sent = published.value * SIGNALS_PER_KILN
                db = work / "data" / "kilnwatch-kw1.sqlite3"
                try:
                    wait_for(lambda: stored_readings(db) >= sent, 60, "every published reading stored", 1.0)
                except TimeoutError as err:
                    log(f"fleet_soak: {err}")
                stored = stored_readings(db)
                watch.stop.set()
    cpu_pct = (cpu1 - cpu0) / (t1 - t0) * 100
    delays = np.asarray(watch.delays)
    late = int((delays > lateness + 2).sum())
    log(
        f"fleet_soak: CPU {cpu_pct:.1f} % of one core; RSS {rss0:.1f} -> {rss1:.1f} MiB; "
        f"{len(delays)} minutes closed, {late} later than {lateness + 2:g} s after their end "
        f"(delay median {np.median(delays):.1f} s, max {delays.max():.1f} s); "
        f"{sent:,} readings published, {stored:,} stored; the publisher was at most "
        f"{publisher_behind:.1f} s behind the wall clock; {kilns[0]}'s minutes on /live "
        f"{np.round(poll.delays, 1).tolist()} s after their end"
    )
    result_line("fleet_soak", cpu_pct, "%", GOAL_CPU_PCT, cpu_pct / GOAL_CPU_PCT)
    result_line("fleet_soak_rss", rss1, "MiB", rss0, rss1 / rss0)
    result_line("fleet_soak_late_minutes", late, "minutes", len(delays), late / max(len(delays), 1))
    result_line("fleet_soak_lost", sent - stored, "readings", sent, (sent - stored) / max(sent, 1))


if __name__ == "__main__":
    main()
