"""Sparkplug B ingest: readings/s of kilnwatch's host decode against a bare Sparkplug decode.

The messages are DDATA payloads shaped like the simulator's edge node (``simulators.sparkplug_node``):
per message, ``--metrics`` Double metrics by alias with a per-metric timestamp (default 7, the
analyser channels of one kiln; every tenth value with a ``Quality`` property), ``seq`` counting,
after an NBIRTH and a DBIRTH. ``--messages`` of them are built once, then decoded in-process (no
broker: the MQTT part is the MQTT collector's and measured by ``mqtt_ingest``):

- value: kilnwatch's :class:`collector.sources.sparkplug.host.Host` (topic, seq check, alias
  resolution to signals, signedness, timestamps, quality), flushed every 2000 messages (the
  source's ``max_batch_messages``) into a ``ReadingBatch``;
- baseline: a bare decode, ``Payload.FromString`` and each metric's alias, timestamp and value
  read into lists: the least any Sparkplug consumer does.

A warm-up run, then ``--repeats`` runs; prints the medians:

    RESULT sparkplug_ingest value=<readings/s> unit=readings/s baseline=<readings/s> ratio=<value/baseline>
"""

from __future__ import annotations

import argparse
import time

import common  # noqa: F401 - puts the repository root on sys.path
from common import log, repeat_median, result_line

from analytics.batch import ReadingBatch
from collector.sources.sparkplug.host import Host
from collector.sources.sparkplug.sparkplug_b_pb2 import Payload
from collector.sources.sparkplug.spec import SparkplugBinding

TOPIC = "spBv1.0/g/{kind}/e1"
#: Messages per flush: the MQTT source's ``max_batch_messages`` default.
BATCH = 2000


def build(messages: int, metrics: int) -> tuple[list[tuple[str, bytes]], Host]:
    names = [f"m{i}" for i in range(metrics)]
    bindings = [
        (i, SparkplugBinding(source="s", group="g", edge_node="e1", device="d1", metric=n))
        for i, n in enumerate(names)
    ]
    host = Host(bindings, names, 300 * 10**9)
    t0 = time.time_ns() // 1_000_000 - messages * 1000
    nbirth = Payload(timestamp=t0, seq=0)
    nbirth.metrics.add(name="bdSeq", datatype=4, long_value=0)
    dbirth = Payload(timestamp=t0, seq=1)
    for a, n in enumerate(names, start=1):
        dbirth.metrics.add(name=n, alias=a, datatype=10, is_null=True)
    out = [(TOPIC.format(kind="NBIRTH"), nbirth.SerializeToString())]
    out.append((TOPIC.format(kind="DBIRTH") + "/d1", dbirth.SerializeToString()))
    for k in range(messages):
        p = Payload(timestamp=t0 + k * 1000, seq=(k + 2) % 256)
        for a in range(1, metrics + 1):
            m = p.metrics.add(
                alias=a, timestamp=t0 + k * 1000, datatype=10, double_value=20.0 + 0.001 * k + a
            )
            if (k + a) % 10 == 0:
                m.properties.keys.append("Quality")
                m.properties.values.add(type=3, int_value=192)
        out.append((TOPIC.format(kind="DDATA") + "/d1", p.SerializeToString()))
    return out, host


def kilnwatch(messages: list[tuple[str, bytes]], host: Host) -> float:
    now = time.time_ns()
    started = time.perf_counter()
    n = 0
    for k in range(0, len(messages), BATCH):  # as the source does: a batch of messages, one flush
        chunk = messages[k : k + BATCH]
        batches = [host.handle(topic, data, now, tag).batch for tag, (topic, data) in enumerate(chunk)]
        batches.append(host.flush(now).batch)
        n += len(ReadingBatch.concat(batches))
    return n / (time.perf_counter() - started)


def bare(messages: list[tuple[str, bytes]]) -> float:
    started = time.perf_counter()
    n = 0
    for _topic, data in messages:
        metrics = Payload.FromString(data).metrics
        alias = [m.alias for m in metrics]
        ts = [m.timestamp for m in metrics]
        value = [m.double_value for m in metrics]
        n += len(value) if len(alias) == len(ts) else 0
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--metrics", type=int, default=7, help="metrics per DDATA message")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    messages, _ = build(args.messages, args.metrics)

    def ours() -> float:
        _, host = build(0, args.metrics)  # a fresh host state (seq from the births) per run
        return kilnwatch(messages, host)

    value, runs = repeat_median(ours, args.repeats)
    baseline, base_runs = repeat_median(lambda: bare(messages), args.repeats)
    log(f"kilnwatch runs {[round(r) for r in runs]}, bare decode runs {[round(r) for r in base_runs]}")
    result_line("sparkplug_ingest", value, "readings/s", baseline, value / baseline)


if __name__ == "__main__":
    main()
