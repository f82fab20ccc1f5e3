"""The MQTT collector against a real mosquitto, with a real pipeline and SQLite store."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from analytics import quality as q
from collector.metrics import Metrics
from collector.sources.mqtt.spec import MqttBinding
from collector.sources.supervisor import ConfigurationError
from tests.fixtures.mosquitto import Mosquitto
from tests.integration.mqtt_helpers import (
    NS,
    RACK_NAMES,
    STATUS,
    Publisher,
    base_ns,
    make_pipeline,
    rack_bindings,
    rack_payload,
    rig,
    running,
    until,
)

pytest_plugins = ["tests.fixtures.mosquitto", "tests.integration.mqtt_fixtures"]
pytestmark = pytest.mark.integration


@pytest.fixture(params=["process", "thread"])
def worker(request: pytest.FixtureRequest) -> str:
    """Where paho receives: both must behave the same."""
    return str(request.param)


async def test_messages_are_decoded_and_stored(
    broker: Mosquitto, prefix: str, tmp_path: Path, worker: str
) -> None:
    names = (*RACK_NAMES, "k1.dust", "k2.dust")
    bindings = rack_bindings(f"{prefix}/k1/cems") + [
        (f"{k}.dust", MqttBinding(broker="cems", topic=f"{prefix}/+/{k}/dust", format="number"))
        for k in ("k1", "k2")
    ]
    start, n = base_ns(), 40
    statuses = list(STATUS)
    async with (
        rig(tmp_path, names) as r,
        running(r.source(broker, bindings, f"{prefix}-c", worker=worker)) as task,
    ):
        pub = Publisher(broker)
        for i in range(n):
            pub.publish(f"{prefix}/k1/cems", rack_payload(start + i * NS, float(i), statuses[i % 4]))
            pub.publish(f"{prefix}/gw{i % 3}/{'k1' if i % 2 else 'k2'}/dust", str(0.5 + i).encode())
        await pub.flush()
        pub.close()
        await until(lambda: r.reader().count_readings() == 4 * n, f"{4 * n} readings")
        assert not task.done()
    got_names, batch = r.reader().readings(list(RACK_NAMES))
    assert got_names == list(RACK_NAMES)
    rows = sorted(
        zip(
            batch.signal.tolist(),
            batch.ts.tolist(),
            batch.value.tolist(),
            batch.quality.tolist(),
            strict=True,
        )
    )
    expected = sorted(
        (c, start + i * NS, float(i) + c, q.STATUS_QUALITY[STATUS[statuses[i % 4]]])
        for i in range(n)
        for c in range(3)
    )
    assert rows == expected
    dust_names, dust = r.reader().readings(["k1.dust", "k2.dust"])
    assert sorted(dust.value.tolist()) == [0.5 + i for i in range(n)]
    assert [dust_names[s] for s in dust.signal.tolist()].count("k1.dust") == n // 2
    assert r.reader().dead_letters() == []


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_unacknowledged_messages_come_again_after_a_stop_before_commit(
    broker: Mosquitto, prefix: str, tmp_path: Path, protocol: str, worker: str
) -> None:
    """Messages reach the collector, the pipeline never commits them: they must not be acked."""
    topic, client_id, n = f"{prefix}/k1/cems", f"{prefix}-c", 25
    start = base_ns()
    async with rig(tmp_path, RACK_NAMES) as r:
        stalled = make_pipeline(tmp_path / "stalled.sqlite", RACK_NAMES, Metrics())  # never run
        first = r.source(
            broker, rack_bindings(topic), client_id, pipeline=stalled, protocol=protocol, worker=worker
        )
        async with running(first):
            pub = Publisher(broker)
            for i in range(n):
                pub.publish(topic, rack_payload(start + i * NS, float(i)))
            await pub.flush()
            pub.close()
            await until(lambda: r.received() == 3 * n, "the first collector to receive every message")
        assert r.reader().count_readings() == 0
        stalled.close()
        stalled.store.close()

        second = r.source(broker, rack_bindings(topic), client_id, protocol=protocol, worker=worker)
        async with running(second):
            await until(lambda: r.reader().count_readings() == 3 * n, f"{3 * n} redelivered readings")
        _, batch = r.reader().readings(list(RACK_NAMES))
        assert sorted(set(batch.ts.tolist())) == [start + i * NS for i in range(n)]


async def test_messages_published_while_the_collector_is_down_are_stored(
    broker: Mosquitto, prefix: str, tmp_path: Path
) -> None:
    """Issue 3 asks for 30 s; 5 s exercise the same broker queue."""
    topic, client_id, gap_s = f"{prefix}/k1/cems", f"{prefix}-c", 5.0
    start = base_ns()
    published: list[int] = []
    in_gap: list[int] = []
    collector_down = asyncio.Event()

    async def publish_until(stop: asyncio.Event) -> None:
        pub = Publisher(broker)
        i = 0
        while not stop.is_set():
            ts = start + i * 10_000_000
            pub.publish(topic, rack_payload(ts, float(i)))
            published.append(ts)
            if collector_down.is_set():
                in_gap.append(ts)
            i += 1
            await asyncio.sleep(0.01)
        await pub.flush()
        pub.close()

    async with rig(tmp_path, RACK_NAMES) as r:
        stop = asyncio.Event()
        async with running(r.source(broker, rack_bindings(topic), client_id)):
            publisher = asyncio.create_task(publish_until(stop))
            await asyncio.sleep(1.0)
        collector_down.set()
        await asyncio.sleep(gap_s)
        collector_down.clear()
        async with running(r.source(broker, rack_bindings(topic), client_id)):
            await asyncio.sleep(1.0)
            stop.set()
            await publisher
            await until(lambda: r.reader().count_readings() == 3 * len(published), "every published reading")
        _, batch = r.reader().readings(["k1.co2"])
        stored = set(batch.ts.tolist())
    assert len(in_gap) > 100
    assert set(in_gap) <= stored
    assert stored == set(published)


async def test_broker_restart_reconnects_and_resubscribes(
    broker: Mosquitto, prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, worker: str
) -> None:
    caplog.set_level(logging.INFO, logger="collector.sources.mqtt")
    topic = f"{prefix}/k1/cems"
    start = base_ns()
    async with rig(tmp_path, RACK_NAMES) as r:
        source = r.source(broker, rack_bindings(topic), f"{prefix}-c", worker=worker)
        async with running(source):
            health = source.health
            assert health.connected and health.connects == 1
            pub = Publisher(broker)
            for i in range(10):
                pub.publish(topic, rack_payload(start + i * NS, 1.0))
            await pub.flush()
            pub.close()
            await until(lambda: r.reader().count_readings() == 30, "readings before the restart")

            outage_seen: list[bool] = []
            broker.stop()
            await until(lambda: not health.connected, "the outage to show in health")
            outage_seen.append(not source.subscribed.is_set())
            await asyncio.to_thread(broker.start)
            await until(lambda: health.connected and health.connects == 2, "reconnect and resubscribe")

            pub = Publisher(broker)  # a fresh publisher: the broker restarted under the old one
            for i in range(10, 20):
                pub.publish(topic, rack_payload(start + i * NS, 2.0))
            await pub.flush()
            pub.close()
            await until(lambda: r.reader().count_readings() == 60, "readings after the restart")
            assert outage_seen == [True] and health.last_error is not None
            assert r.metrics.registry.get_sample_value("kilnwatch_source_connected", {"source": "cems"}) == 1

            # A broker that lost its sessions: only subscribing again in on_connect brings data back.
            await asyncio.to_thread(broker.restart, True)
            await until(lambda: health.connected and health.connects == 3, "reconnect after the state loss")
            pub = Publisher(broker)
            for i in range(20, 30):
                pub.publish(topic, rack_payload(start + i * NS, 3.0))
            await pub.flush()
            pub.close()
            await until(lambda: r.reader().count_readings() == 90, "readings after the broker lost its state")
            reconnects = r.metrics.registry.get_sample_value(
                "kilnwatch_source_reconnects_total", {"source": "cems"}
            )
            assert reconnects == 3
    # Each outage is logged once however many reconnect attempts fail, and so is each recovery.
    messages = [rec.getMessage() for rec in caplog.records if rec.name == "collector.sources.mqtt.source"]
    assert sum("retrying with backoff" in m for m in messages) == 2
    assert sum("is back" in m for m in messages) == 2


async def test_a_killed_worker_process_is_replaced_and_nothing_is_lost(
    broker: Mosquitto, prefix: str, tmp_path: Path
) -> None:
    """SIGKILL of the worker mid-stream: the source reports the outage, a new worker takes the
    persistent session, and what the dead one took without an ack comes again."""
    topic, n = f"{prefix}/k1/cems", 600
    start = base_ns()
    async with rig(tmp_path, RACK_NAMES) as r:
        source = r.source(broker, rack_bindings(topic), f"{prefix}-c", worker="process")
        async with running(source):
            first = _worker_of(source.name)
            pub = Publisher(broker)
            for i in range(n):
                pub.publish(topic, rack_payload(start + i * NS // 100, float(i)))
                if i == n // 3:
                    await until(lambda: r.received() > 0, "the first readings")
                    os.kill(first.pid, signal.SIGKILL)  # type: ignore[arg-type]
                await asyncio.sleep(0.002)
            await pub.flush()
            pub.close()
            await until(lambda: source.health.connects == 2, "a new worker to connect")
            await until(lambda: r.reader().count_readings() == 3 * n, f"all {3 * n} readings")
            second = _worker_of(source.name)
            assert second.pid != first.pid and second.is_alive()
            assert "worker process ended with exit code -9" in str(source.health.last_error)
        _, batch = r.reader().readings(["k1.co2"])
        assert sorted(batch.ts.tolist()) == [start + i * NS // 100 for i in range(n)]
    assert not second.is_alive()


@pytest.mark.parametrize("worker", ["process", "thread"])
async def test_an_unreadable_tls_file_fails_at_start_up_with_its_name(
    broker: Mosquitto, prefix: str, tmp_path: Path, worker: str
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    async with rig(tmp_path, RACK_NAMES) as r:
        with pytest.raises(
            ConfigurationError, match=r"MQTT source cems: ca_file .*no-such-ca.pem .*No such file"
        ):
            r.source(
                broker,
                rack_bindings(f"{prefix}/k1/cems"),
                f"{prefix}-c",
                worker=worker,
                tls=True,
                ca_file=str(missing),
            )


def _worker_of(source: str) -> multiprocessing.process.BaseProcess:
    [proc] = [p for p in multiprocessing.active_children() if p.name == f"kilnwatch-{source}"]
    return proc


async def test_a_quiesced_stop_acknowledges_what_was_committed(
    broker: Mosquitto, prefix: str, tmp_path: Path, worker: str
) -> None:
    """Stopped mid-stream the way the service stops (quiesce, drain, stop), the collector leaves no
    committed message unacknowledged: the next run gets only what was not stored, no duplicate."""
    topic, client_id, n = f"{prefix}/k1/cems", f"{prefix}-c", 3000
    start = base_ns()
    async with rig(tmp_path, RACK_NAMES) as r:
        first = r.source(broker, rack_bindings(topic), client_id, worker=worker)
        async with running(first):
            pub = Publisher(broker)
            for i in range(n):
                pub.publish(topic, rack_payload(start + i * NS, float(i)))
            await until(lambda: r.reader().count_readings() > 0, "the first readings", within_s=30)
            await first.quiesce()
            await r.pipeline.drain()
        stored_first = r.reader().count_readings()
        await pub.flush(within_s=60)
        pub.close()

        second = r.source(broker, rack_bindings(topic), client_id, worker=worker)
        async with running(second):
            await until(lambda: r.reader().count_readings() == 3 * n, f"{3 * n} readings", within_s=60)
        duplicates = r.metrics.registry.get_sample_value(
            "kilnwatch_duplicate_readings_total", {"source": "cems", "signal": "k1.co2"}
        )
        assert (duplicates or 0.0) == 0.0, f"{duplicates} duplicates after {stored_first} stored first"
        assert stored_first < 3 * n  # the stop came mid-stream
