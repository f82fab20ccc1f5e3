"""Outages on the MQTT side of a running service: the collector stopped for 30 s while the analysers keep
publishing at QoS 1, and a broker restart that loses the broker's state."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from collector.store.reader import StoreReader
from simulators.mqtt_publisher import SimMqttPublisher
from tests.e2e.hourly import (
    HOUR_NS,
    KILNS,
    NS,
    hour_of_every_kiln,
    iso,
    last_full_hour_end,
    ns,
    stack_co2_t,
)
from tests.fixtures.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

#: Issue 3: the collector is down this long while the simulator keeps publishing [s].
GAP_S = 30.0
#: 60x: the 30-s gap is 30 simulated minutes, inside one hour that closes 30 s after it.
SPEED = 60.0
CEMS = ("co2", "o2", "h2o", "co", "nox", "so2", "dust")
CEMS_SIGNALS = [f"{k}.stack.{c}" for k in KILNS for c in CEMS]


def publisher_state(svc: Any) -> tuple[int, int]:
    """(messages handed to paho, newest tick [ns]) of the analyser publisher, read on its own loop."""

    async def read(pub: SimMqttPublisher) -> tuple[int, int]:
        return pub.stats.messages, pub.stats.last_tick_ns

    result: tuple[int, int] = svc.sims.loop.run(read(svc.sims.mqtt))
    return result


def stored_ticks(reader: StoreReader, start_ns: int, end_ns: int) -> dict[str, set[int]]:
    """Timestamps stored per analyser signal in [start_ns, end_ns)."""
    names, batch = reader.readings(CEMS_SIGNALS, start_ns, end_ns)
    return {n: set(batch.ts[batch.signal == i].tolist()) for i, n in enumerate(names)}


def readiness(svc: Any) -> tuple[int, list[str]]:
    r = svc.get("/readyz")
    return r.status_code, r.json()["reasons"]


def test_readings_published_while_the_collector_is_stopped_are_stored(
    start_service: Any, mosquitto: Mosquitto
) -> None:
    """Only the MQTT collector stops (same client id when it starts again): OPC UA keeps delivering the
    flow, which has no history to fetch afterwards, so the hour can be complete once the queue is in."""
    mosquitto.start()
    hour = last_full_hour_end(time.time_ns()) - 2 * HOUR_NS
    lead_ns = 6 * 60 * NS  # start-up, in simulated time
    backfill_h = (time.time_ns() - hour + lead_ns) / HOUR_NS
    svc = start_service(speed=SPEED, backfill_h=backfill_h, tick_s=1.0, mqtt_port=mosquitto.port)
    reader = StoreReader(svc.service.settings.store_path)
    clock = svc.sims.clock
    if clock.now_ns() > hour + 5 * 60 * NS:  # a slow start-up on a loaded machine: the next hour
        hour += HOUR_NS
    svc.wait_for(lambda: clock.now_ns() >= hour + 2 * 60 * NS, timeout=90)
    svc.wait_for(lambda: reader.count_readings("kiln1.stack.co2") > 0, timeout=10)

    svc.stop_source("mqtt:cems")  # disconnects; the broker keeps the session and queues for it
    messages0, last0 = publisher_state(svc)
    _, reasons = svc.wait_for(lambda: (r := readiness(svc))[0] == 503 and r, timeout=5)
    assert any("mqtt:cems" in reason for reason in reasons), reasons
    time.sleep(GAP_S)
    messages1, last1 = publisher_state(svc)
    svc.start_source("mqtt:cems")

    ticks = np.arange(last0 + NS, last1 + NS, NS, dtype=np.int64)
    assert len(ticks) > 25 * 60  # 30 simulated minutes at 1 tick/s, give or take the loop's pace
    assert messages1 - messages0 == len(KILNS) * len(ticks)  # the publisher's count agrees with the model
    assert ticks[-1] < hour + HOUR_NS - 10 * 60 * NS  # the gap lies inside the hour checked below
    expected = set(ticks.tolist())

    def gap_stored() -> bool:
        got = stored_ticks(reader, int(ticks[0]), int(ticks[-1]) + 1)
        return all(got.get(name) == expected for name in CEMS_SIGNALS)

    svc.wait_for(gap_stored, timeout=30)
    svc.wait_for(lambda: readiness(svc)[0] == 200, timeout=10)
    print(
        f"collector down {GAP_S:.0f} s: {messages1 - messages0} messages over {len(ticks)} ticks "
        f"({iso(int(ticks[0]))} to {iso(int(ticks[-1]))}), every one of their "
        f"{len(ticks) * len(CEMS_SIGNALS)} readings stored"
    )

    last: dict[str, Any] = {}

    def hour_with_the_gap() -> dict[str, Any] | None:
        """Every kiln's row of the hour once it includes the redelivered readings: the hour may
        close before they are recomputed, and is then revised."""
        rows = hour_of_every_kiln(svc.get, hour)
        last.update(rows or {})
        return rows if rows and all(r["completeness"] > 0.99 for r in rows.values()) else None

    try:
        rows = svc.wait_for(hour_with_the_gap, timeout=60, interval=1.0)
    except TimeoutError:
        minutes = svc.get(
            "/api/v1/kilns/kiln1/minutes", params={"start": iso(hour), "end": iso(hour + HOUR_NS)}
        ).json()
        pytest.fail(
            "the hour never included the redelivered readings: "
            + str({k: (r["completeness"], r["revision"], r["valid"]) for k, r in last.items()})
            + " kiln1 minutes (minute, revision, completeness): "
            + str([(m["minute"][11:16], m["revision"], m.get("completeness")) for m in minutes])
        )
    minutes = svc.get(
        "/api/v1/kilns/kiln1/minutes", params={"start": iso(hour), "end": iso(hour + HOUR_NS)}
    ).json()
    revised = sum(1 for m in minutes if m["revision"] > 0 and ticks[0] <= ns(m["minute"]) <= ticks[-1])
    for kiln in KILNS:
        row = rows[kiln]
        truth = svc.sims.truth[kiln].hour(hour)
        rel = stack_co2_t(row) / truth.co2_t - 1
        print(
            f"{kiln} {row['hour']}: completeness {row['completeness']:.4f}, revision {row['revision']}, "
            f"CO2 {stack_co2_t(row):.3f} t, truth {truth.co2_t:.3f} t ({rel:+.4%}); "
            f"minutes of kiln1 revised by the late readings: {revised}"
        )
        assert row["valid"] and row["completeness"] > 0.99, row
        for name in CEMS_SIGNALS:
            if name.startswith(kiln):
                assert row["ledger"][name]["valid"] == 3600, (name, row["ledger"][name])
        assert abs(rel) < 0.005
        assert stack_co2_t(row) == pytest.approx(truth.regulatory_co2_t, rel=1e-6)


def test_broker_restart_is_reported_and_the_collector_resubscribes(
    start_service: Any, mosquitto: Mosquitto
) -> None:
    mosquitto.start()
    svc = start_service(speed=SPEED, backfill_h=1.0, tick_s=1.0, mqtt_port=mosquitto.port)
    reader = StoreReader(svc.service.settings.store_path)
    health = svc.service.health.sources["mqtt:cems"]
    svc.wait_for(lambda: readiness(svc)[0] == 200, timeout=30)
    svc.wait_for(lambda: reader.count_readings("kiln1.stack.co2") > 0, timeout=10)
    assert health.connects == 1

    mosquitto.stop()
    try:
        status, reasons = svc.wait_for(lambda: (r := readiness(svc))[0] == 503 and r, timeout=15)
        print(f"broker down: /readyz {status} {reasons}")
        assert [r for r in reasons if "mqtt:cems" in r] and not [r for r in reasons if "opcua" in r], reasons
    finally:
        # As a broker that lost its disk: no session, no subscription survives; only the collector's
        # own subscribe on every connect brings data back.
        for db in mosquitto.data_dir.glob("*.db"):
            db.unlink()
        mosquitto.start()
    restarted_ns = svc.sims.clock.now_ns()
    back = time.monotonic()

    svc.wait_for(lambda: readiness(svc)[0] == 200, timeout=30)
    print(f"broker restart: /readyz 200 again {time.monotonic() - back:.1f} s after the broker came back")
    assert health.connects == 2

    def fresh_readings() -> int:
        _, batch = reader.readings(["kiln1.stack.co2"], restarted_ns + 5 * NS, None)
        return len(batch)

    svc.wait_for(lambda: fresh_readings() > 60, timeout=30)
    print(f"back: /readyz 200, {fresh_readings()} CO2 readings of kiln1 since the broker restarted")
