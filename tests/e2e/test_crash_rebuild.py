"""`kilnwatch run` killed with SIGKILL mid-hour while the simulators replay a past period at 50x
(OPC UA without history, the analysers over MQTT with a persistent session), restarted 2 s later:
the engine is rebuilt from the store by event time, so the hour that spans the crash has every
analyser point a run without the crash has, and misses only the OPC UA points of the downtime."""

from __future__ import annotations

import re
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analytics.aggregates import HourAggregate, MinuteAggregate
from collector.store.reader import StoreReader
from tests.e2e.test_mqtt_crash import Kilnwatch, poll
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.ports import free_port
from tests.fixtures.service import Simulators, sim_plant, start_publisher, start_simulators

pytestmark = pytest.mark.integration

NS = 10**9
MINUTE_NS, HOUR_NS = 60 * NS, 3600 * NS
SPEED = 50.0  # an hour in 72 s: room for a loaded machine to close minutes and be killed in it
KILN = "kiln1"
MQTT_SIGNALS = [f"{KILN}.stack.{c}" for c in ("co2", "o2", "h2o", "co", "nox", "so2", "dust")]
OPCUA_SIGNALS = [
    f"{KILN}.stack.{k}" for k in ("flow", "temperature", "static_pressure", "barometric_pressure")
]
OPCUA_SIGNALS += [f"{KILN}.clinker.rate", f"{KILN}.fuel.rate"]
MAX_HOLD_NS = 60 * NS  # the engine's default max_hold_s


class Restartable(Kilnwatch):
    def start(self) -> None:
        """As Kilnwatch.start, with time for a loaded machine (start-up has taken 30 s on 2 shared cores)."""
        try:
            super().start()
        except TimeoutError:
            poll(self.ready, "kilnwatch to be ready (OPC UA connected, MQTT subscribed)", timeout=60)


@contextmanager
def replay(opcua_port: int, start_ns: int) -> Iterator[Simulators]:
    """One kiln's simulators replaying from ``start_ns`` at SPEED, without OPC UA history."""
    backfill_h = (time.time_ns() - start_ns) / HOUR_NS
    sims = start_simulators(opcua_port, SPEED, backfill_h, tick_s=1.0, kilns=(KILN,))
    try:
        yield sims
    finally:
        if sims.mqtt is not None:
            sims.loop.run(sims.mqtt.stop())
        sims.loop.run(sims.opcua.stop())
        sims.loop.close()


def covered(store: Path, names: list[str], start_ns: int, end_ns: int) -> dict[str, np.ndarray]:
    """Per signal, the 1-s grid points of [start, end) that a stored reading covers (within the hold)."""
    _, batch = StoreReader(store).readings(names, start_ns - MAX_HOLD_NS, end_ns)
    grid = np.arange(start_ns, end_ns, NS)
    out = {}
    for i, name in enumerate(names):
        ts = np.sort(batch.ts[batch.signal == i])
        last = np.searchsorted(ts, grid, side="right") - 1
        out[name] = (last >= 0) & (grid - ts[np.maximum(last, 0)] <= MAX_HOLD_NS) if len(ts) else grid < 0
    return out


def ledger_of(store: Path, hour: int) -> tuple[HourAggregate, list[MinuteAggregate]] | None:
    reader = StoreReader(store)
    hours = reader.hours(KILN, hour, hour + 1)
    return (hours[0], reader.minutes(KILN, hour, hour + HOUR_NS)) if hours else None


def mismatches(store: Path, hour: int) -> list[str]:
    """How the hour's minute rows differ from the stored readings: every covered point valid,
    every other point of a closed minute missing. Empty when they agree."""
    got = ledger_of(store, hour)
    if got is None:
        return ["the hour is not closed yet"]
    _, minutes = got
    cover = covered(store, MQTT_SIGNALS + OPCUA_SIGNALS, hour, hour + HOUR_NS)
    out = []
    for m in minutes:
        i = (m.start_ns - hour) // NS
        for name, c in cover.items():
            p = m.params[name]
            want = int(c[i : i + 60].sum())
            if p.n_valid != want or p.reasons.get("missing", 0) != 60 - want:
                out.append(f"{name} at minute {i // 60}: {p.n_valid} valid, {p.reasons}; stored: {want}")
    return out


def test_sigkill_mid_hour_of_a_replay_loses_no_stored_reading(mosquitto: Mosquitto, tmp_path: Path) -> None:
    mosquitto.start()
    token = uuid.uuid4().hex[:10]
    prefix, opcua_port = f"kwtest/{token}/sim", free_port()
    plant: dict[str, Any] = sim_plant(
        opcua_port, mosquitto.port, prefix, {"client_id": f"kw-rebuild-{token}"}
    )
    plant["plants"][0]["kilns"] = [k for k in plant["plants"][0]["kilns"] if k["id"] == KILN]
    kw = Restartable(tmp_path, plant, instance_id=f"rebuild{token}")
    # The replay starts 2 min before an hour that ended more than 2 h ago; kilnwatch, started with
    # it, takes longer than that (2.4 s at 50x) to connect: no hour of the replay is stored at the
    # crash, as when a replay or a gateway catching up is killed in its first hour.
    hour = time.time_ns() // HOUR_NS * HOUR_NS - 3 * HOUR_NS
    with replay(opcua_port, hour - 2 * MINUTE_NS) as sims, kw.stopped_at_end():
        kw.start()
        if sims.clock.now_ns() > hour + 20 * MINUTE_NS:
            # A slow start on a loaded machine: the crash would fall after the hour. The next hour
            # is then the one killed mid-way (kilnwatch ran before it, the rebuild is the same).
            hour += HOUR_NS
        publisher = start_publisher(sims, mosquitto.port, None, prefix, f"kwsim-{token}")

        def enough_closed() -> bool:
            minutes = StoreReader(kw.store).minutes(KILN, hour, hour + HOUR_NS)
            return len(minutes) >= 5

        poll(enough_closed, "minutes of the hour in the ledger", timeout=60)
        assert kw.kill() == -signal.SIGKILL
        killed_ns = sims.clock.now_ns()
        assert killed_ns < hour + HOUR_NS, "the kill missed the hour: the machine is too slow for this test"
        assert StoreReader(kw.store).hours(KILN, hour, hour + HOUR_NS) == [], "the hour closed too soon"
        newest = StoreReader(kw.store).newest_timestamps()
        before_kill = {n: newest[n] for n in OPCUA_SIGNALS}
        time.sleep(2.0)
        kw.start()  # same store, instance id and MQTT client id: the session resumes
        try:
            poll(lambda: not mismatches(kw.store, hour), "the hour's ledger to match the store", timeout=90)
        except TimeoutError:
            pytest.fail("\n".join([kw.log(), *mismatches(kw.store, hour)[:20]]))
        finally:
            sims.loop.run(publisher.stop())
            assert kw.kill(signal.SIGTERM) == 0, kw.log()

    row, minutes = ledger_of(kw.store, hour) or pytest.fail("no hour")
    first = minutes[0].start_ns
    assert [m.start_ns for m in minutes] == list(range(first, hour + HOUR_NS, MINUTE_NS))
    cover = covered(kw.store, MQTT_SIGNALS + OPCUA_SIGNALS, first, hour + HOUR_NS)
    # The analysers: every point from their first reading on, as without the crash.
    for name in MQTT_SIGNALS:
        from_first = cover[name][np.argmax(cover[name]) :]
        assert from_first.all(), name
        assert row.params[name].n_valid == cover[name].sum(), name
    assert row.params["co2_dry"].n_valid == cover[f"{KILN}.stack.co2"].sum()
    # OPC UA: only the points of the downtime are missing (from the last value before the kill,
    # held for max_hold, to the first value after the restart).
    after_restart = {
        n: StoreReader(kw.store).readings([n], t + 1, None)[1].ts for n, t in before_kill.items()
    }
    restarted_ns = min(int(ts.min()) for ts in after_restart.values())
    grid = np.arange(first, hour + HOUR_NS, NS)
    for name in OPCUA_SIGNALS:
        downtime = (grid > before_kill[name] + MAX_HOLD_NS) & (grid < after_restart[name].min())
        missing = ~cover[name] & (grid >= first + (np.argmax(cover[name]) * NS))
        assert not (missing & ~downtime).any(), name
        assert row.params[name].reasons.get("missing", 0) == (first - hour) // NS + (~cover[name]).sum(), name
    rebuilt = re.search(r"engine rebuilt from the store in ([0-9.]+) s", (tmp_path / "run2.log").read_text())
    assert rebuilt is not None
    print(
        f"hour {row.start_ns}: completeness {row.completeness:.4f}, valid {row.valid}; co2_dry "
        f"{row.params['co2_dry'].n_valid}/3600 valid, flow {row.params[f'{KILN}.stack.flow'].n_valid}/3600; "
        f"engine data from minute {(first - hour) // MINUTE_NS}; killed at minute "
        f"{(killed_ns - hour) / MINUTE_NS:.1f}, OPC UA back at minute "
        f"{(restarted_ns - hour) / MINUTE_NS:.1f}; "
        f"rebuild {rebuilt.group(1)} s"
    )
