"""Issue 16 item 5: readings/s from mosquitto into victoria-metrics, kilnwatch against Node-RED.

Both take the same queued analyser messages from the same mosquitto and write them to the same
victoria-metrics through InfluxDB's v2 write API:

- value: ``kilnwatch run`` with the demo plant (its analysers over MQTT at QoS 1; its OPC UA
  server absent) and ``KILNWATCH_INFLUX_*`` set: MQTT -> conditioning -> SQLite store -> outbox ->
  historian writer, ack to the broker after the commit, minute and hourly aggregates beside;
- peer: Node-RED (npm ``node-red`` with ``node-red-contrib-influxdb``, installed by this script into
  ``bench/.peer/``) running ``bench/peer/flow.json``: ``mqtt in`` (QoS 1, parsed JSON) -> ``join``
  (batches of ``--batch-messages`` messages, 1 s at most) -> ``function`` (one point per channel)
  -> ``influxdb batch`` (v2 API). MQTT.js acknowledges on receipt; nothing is stored locally.

Each MQTT version of ``--protocols`` is measured in turn at every end (kilnwatch's ``protocol``
setting, Node-RED's broker node, the sessions): 5, kilnwatch's default, then 3.1.1, Node-RED's.
Per run, the persistent sessions (QoS 1) are created offline, paho publishers queue
``--messages`` simulator messages (``simulators.cems_payload``: two kilns, 7 channels each, hours
old) for each, then each consumer is started in turn (order alternating) and drains its queue.
A third session is drained last by paho alone in this process (acknowledging on receipt, nothing
decoded or stored): what the Python MQTT client kilnwatch's worker uses costs by itself, logged
per run and as a median beside the two consumers; it is not part of the RESULT line.
Points arriving are counted in victoria-metrics (``count_over_time`` of ``reading_quality``, the
peer's points carry ``writer="node-red"``) every ``--poll`` s; the rate is taken between 10 % and
90 % of the expected points, so start-up and the last flush are left out. A run checks that every
point arrived. Prints the medians of ``--repeats`` runs per version:

    RESULT peer_mqtt_to_historian value=<readings/s> unit=readings/s baseline=<Node-RED readings/s>
        ratio=<value/baseline>
    RESULT peer_mqtt_to_historian_mqtt311 ...   (the same with MQTT 3.1.1)

When Node-RED cannot be installed (no Node.js or npm, no registry), the script stops and says why.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import yaml
from common import (
    Broker,
    cpu_seconds,
    free_port,
    kilnwatch_service,
    log,
    mosquitto,
    result_line,
    victoria_metrics,
)
from mqtt_ingest import TOPICS, BareSubscriber, fill
from peer_node_red import node_red, node_red_script

from kilnwatch.demo import DEMO_KILNS, demo_plant
from simulators.cems_payload import build_messages
from simulators.model import ANALYSER_CHANNELS, build_models
from simulators.scenarios import Scenario

CHANNELS = len(ANALYSER_CHANNELS)
NS = 1_000_000_000
#: Points of a consumer in victoria-metrics: kilnwatch's readings have no ``writer`` tag.
SELECTORS = {"kilnwatch": 'reading_quality{writer=""}', "node-red": 'reading_quality{writer="node-red"}'}
STALL_S = 20.0
#: MQTT version at every end -> its RESULT line: kilnwatch's default first, then Node-RED's.
RESULT_NAMES = {"5": "peer_mqtt_to_historian", "3.1.1": "peer_mqtt_to_historian_mqtt311"}
INFLUX_ROWS = b'vm_rows_inserted_total{type="influx"}'

Message = tuple[str, bytes]


# -- kilnwatch ----------------------------------------------------------------------------


def kilnwatch_plant(workdir: Path, broker: Broker, client_id: str, protocol: str) -> Path:
    plant = demo_plant(opcua_port=free_port(), mqtt_port=broker.port)
    plant["sources"]["mqtt"]["cems"]["client_id"] = client_id
    plant["sources"]["mqtt"]["cems"]["protocol"] = protocol
    path = workdir / "plant.yaml"
    path.write_text(yaml.safe_dump(plant, sort_keys=False), encoding="utf-8")
    return path


@contextlib.contextmanager
def kilnwatch(workdir: Path, broker: Broker, influx_url: str, client_id: str, protocol: str) -> Iterator[int]:
    """``kilnwatch run`` writing to ``influx_url``; yields its pid."""
    workdir.mkdir(parents=True, exist_ok=True)
    plant = kilnwatch_plant(workdir, broker, client_id, protocol)
    env = {
        "KILNWATCH_INFLUX_URL": influx_url,
        "KILNWATCH_INFLUX_TOKEN": "bench",
        "KILNWATCH_INFLUX_ORG": "bench",
        "KILNWATCH_INFLUX_BUCKET": "bench",
    }
    with kilnwatch_service(workdir, plant, free_port(), env) as proc:
        yield proc.pid


def kilnwatch_topics() -> list[str]:
    return sorted({f"kilnwatch/sim/{k}/cems" for k in DEMO_KILNS})


# -- messages and sessions ----------------------------------------------------------------


def analyser_messages(n: int, end_s: int) -> list[Message]:
    """``n`` simulator messages of the demo kilns, one per kiln and second, ending at ``end_s``."""
    models = build_models(DEMO_KILNS)
    ticks = -(-n // len(models))
    t_ns = (end_s - ticks) * NS + np.arange(ticks, dtype=np.int64) * NS
    per_kiln = []
    for m in models:
        applied = Scenario().apply(m, t_ns, m.sample(t_ns))
        per_kiln.append([(f"kilnwatch/sim/{m.kiln_id}/cems", x.payload) for x in build_messages(applied)])
    return [msg for tick in zip(*per_kiln, strict=True) for msg in tick][:n]


def expected_points(messages: list[Message]) -> int:
    """Channels with a finite value: what both consumers write."""
    total = 0
    for _, payload in messages:
        doc = json.loads(payload)
        total += sum(isinstance(ch.get("value"), int | float) for ch in doc.get("channels", {}).values())
    return total


def create_session(broker: Broker, client_id: str, topics: list[str], protocol: str) -> None:
    """A persistent session subscribed at QoS 1, left offline: the broker queues for it."""
    session = BareSubscriber(broker, client_id, protocol, topics)
    try:
        session.connect()
    finally:
        session.disconnect()


# -- counting in victoria-metrics ---------------------------------------------------------


def points_in(url: str, selector: str) -> int:
    """Samples of ``selector`` victoria-metrics can search (visible about a second after the write)."""
    query = f"sum(count_over_time({selector}[30d]))"
    address = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(address, timeout=10) as r:
        result = json.load(r)["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def rows_inserted(url: str) -> int:
    """Field values victoria-metrics took in over the InfluxDB API (counted as they come)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        for line in r:
            if line.startswith(INFLUX_ROWS):
                return int(float(line.split()[-1]))
    return 0


class Drain(NamedTuple):
    readings_per_s: float
    arrived: int
    """readings that arrived of those expected"""
    cpu_us_per_reading: float
    seconds: float
    """from the first point to the last"""


def process_tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its children (kilnwatch's MQTT worker)."""
    total = 0.0
    with contextlib.suppress(OSError):
        total += cpu_seconds(pid)
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        total += sum(process_tree_cpu(int(c)) for c in children)
    return total


def drain(url: str, selector: str, expected: int, pid: int, poll_s: float, timeout_s: float) -> Drain:
    """Follow victoria-metrics' row counter until the ``expected`` readings of ``selector`` are there.

    The counter counts every field value (a reading has two; kilnwatch also writes aggregates),
    so the rate over the middle 80 % of the rows is scaled by readings / rows of the whole drain.
    """
    rows0, readings0 = rows_inserted(url), points_in(url, selector)
    samples: list[tuple[float, int, float]] = []
    started = time.monotonic()
    last_progress, next_check, readings = started, started, 0
    while True:
        rows = rows_inserted(url) - rows0
        samples.append((time.perf_counter(), rows, process_tree_cpu(pid)))
        now = time.monotonic()
        if len(samples) > 1 and rows > samples[-2][1]:
            last_progress = now
        if now >= next_check and rows > 0:  # searching costs victoria-metrics more than /metrics
            readings, next_check = points_in(url, selector) - readings0, now + 0.5
            if readings >= expected:
                break
        if now - started > timeout_s or (rows > 0 and now - last_progress > STALL_S):
            log(f"  stopped waiting: {readings:,} of {expected:,} readings after {now - started:.0f} s")
            break
        time.sleep(poll_s)
    return middle_of(samples, readings / samples[-1][1] if samples[-1][1] else 0.0, readings)


def middle_of(samples: list[tuple[float, int, float]], per_count: float, arrived: int) -> Drain:
    """The rate and CPU per reading between 10 % and 90 % of a drain's ``samples`` (time, count,
    CPU s); a count is worth ``per_count`` readings."""
    total = samples[-1][1]
    if total == 0:
        return Drain(0.0, arrived, 0.0, 0.0)
    first = next((s for s in samples if s[1] > 0), samples[-1])
    lo = next((s for s in samples if s[1] >= 0.1 * total), samples[-1])
    hi = next((s for s in samples if s[1] >= 0.9 * total), samples[-1])
    if hi[0] <= lo[0]:  # the middle of the drain fell between two polls: the whole drain instead
        lo, hi = samples[0], samples[-1]
    rate = (hi[1] - lo[1]) / (hi[0] - lo[0]) * per_count
    cpu = (hi[2] - lo[2]) / max((hi[1] - lo[1]) * per_count, 1) * 1e6
    return Drain(rate, arrived, cpu, samples[-1][0] - first[0])


def bare_drain(
    broker: Broker, client_id: str, protocol: str, messages: int, expected: int, poll_s: float
) -> Drain:
    """paho alone, in this process, draining its queue: the session kilnwatch's MQTT worker uses
    (QoS 1, receive maximum 1000 under MQTT 5), acknowledging on receipt, nothing decoded or stored.
    What the Python MQTT client costs before kilnwatch does anything with a message."""
    sub = BareSubscriber(broker, client_id, protocol)
    samples: list[tuple[float, int, float]] = [(time.perf_counter(), 0, time.process_time())]
    sub.connect()
    try:
        started = time.monotonic()
        while sub.count < messages and time.monotonic() - started < 300:
            time.sleep(poll_s)
            samples.append((time.perf_counter(), sub.count, time.process_time()))
    finally:
        sub.disconnect()
    return middle_of(samples, expected / messages, sub.count * expected // messages)


# -- one run ------------------------------------------------------------------------------


def one_run(
    run: int, workdir: Path, broker: Broker, url: str, red: Path, args: argparse.Namespace
) -> tuple[Drain, Drain, Drain]:
    end_s = time.time_ns() // NS - 3600 - run * (args.messages // len(DEMO_KILNS) + 60)
    messages = analyser_messages(args.messages, end_s)
    expected = expected_points(messages)
    kw_id, nr_id, paho_id = f"bench-kilnwatch-{run}", f"bench-node-red-{run}", f"bench-paho-{run}"
    create_session(broker, kw_id, kilnwatch_topics(), args.protocol)
    create_session(broker, nr_id, [TOPICS], args.protocol)
    create_session(broker, paho_id, [TOPICS], args.protocol)
    filled = fill(broker, messages)
    log(f"run {run}: {len(messages):,} messages ({expected:,} readings) queued at {filled:,.0f} messages/s")

    def ours() -> Drain:
        with kilnwatch(workdir / f"kilnwatch{run}", broker, url, kw_id, args.protocol) as pid:
            return drain(url, SELECTORS["kilnwatch"], expected, pid, args.poll, 300)

    def peer() -> Drain:
        with node_red(
            workdir / f"node-red{run}", red, broker, url, nr_id, args.batch_messages, args.protocol
        ) as pid:
            return drain(url, SELECTORS["node-red"], expected, pid, args.poll, 300)

    if run % 2:
        kw, nr = ours(), peer()
    else:
        nr, kw = peer(), ours()
    bare = bare_drain(broker, paho_id, args.protocol, len(messages), expected, args.poll)
    for name, d in (("kilnwatch", kw), ("node-red", nr), ("paho", bare)):
        log(
            f"  {name:9}: {d.readings_per_s:9,.0f} readings/s, {d.arrived:,}/{expected:,} arrived "
            f"in {d.seconds:.1f} s, CPU {d.cpu_us_per_reading:.1f} µs per reading"
        )
        if d.arrived < expected:
            log(f"  {name}: {expected - d.arrived:,} readings did not arrive")
    return kw, nr, bare


def measure(workdir: Path, args: argparse.Namespace) -> None:
    red = node_red_script()
    with mosquitto(workdir) as broker, victoria_metrics(workdir, "-search.disableCache") as url:
        for i, protocol in enumerate(args.protocols):
            log(f"MQTT {protocol} at every end")
            runs = range(i * args.repeats + 1, (i + 1) * args.repeats + 1)
            as_run = argparse.Namespace(**{**vars(args), "protocol": protocol})
            drains = [one_run(run, workdir, broker, url, red, as_run) for run in runs]
            report(protocol, drains)


def report(protocol: str, drains: list[tuple[Drain, Drain, Drain]]) -> None:
    v, b, p = (statistics.median(d[i].readings_per_s for d in drains) for i in range(3))
    cpu = [statistics.median(d[i].cpu_us_per_reading for d in drains) for i in range(3)]
    log(
        f"MQTT {protocol}, medians: kilnwatch {v:,.0f}, Node-RED {b:,.0f}, paho alone {p:,.0f} readings/s "
        f"({p / b if b else 0:.2f} of Node-RED); CPU per reading {cpu[0]:.1f}, {cpu[1]:.1f}, {cpu[2]:.1f} µs"
    )
    result_line(RESULT_NAMES[protocol], v, "readings/s", b, v / b if b else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--messages", type=int, default=100_000, help="queued per run (2 kilns, 7 channels; 15-25 s a drain)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--protocols",
        nargs="+",
        choices=list(RESULT_NAMES),
        default=list(RESULT_NAMES),
        help="MQTT versions to measure, each at every end (kilnwatch's `protocol`, Node-RED's broker node)",
    )
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between counts in victoria-metrics")
    parser.add_argument(
        "--batch-messages", type=int, default=700, help="Node-RED: messages per write (7 points each)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kw-bench-peer-") as tmp:
        measure(Path(tmp), args)


if __name__ == "__main__":
    main()
