"""`kilnwatch run` killed with SIGKILL while the analysers stream over MQTT, then started again: every
message the broker took is in the store (acknowledged only after commit; redelivered otherwise),
and the OPC UA values of the downtime are read back from the server's history."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from collector.store.reader import StoreReader
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.ports import free_port
from tests.fixtures.service import Simulators, sim_plant, start_publisher, start_simulators

pytestmark = pytest.mark.integration

NS = 10**9
#: 200 analyser messages per second (two kilns at 100 simulated seconds per second).
SPEED, TICK_S = 100.0, 1.0
CEMS = ("co2", "o2", "h2o", "co", "nox", "so2", "dust")
SIGNALS = [f"{k}.stack.{c}" for k in ("kiln1", "kiln2") for c in CEMS]
#: OPC UA signals checked for gaps, and the past values per node the simulator keeps for them.
OPCUA_SIGNALS = [f"{k}.stack.flow" for k in ("kiln1", "kiln2")]
HISTORY_VALUES = 20_000


def poll(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (httpx.HTTPError, OSError):  # a server still starting, a store not yet created
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


class Kilnwatch:
    """`python -m kilnwatch run` on a plant file; the output of each run goes to its own log file."""

    def __init__(self, workdir: Path, plant: dict[str, Any], instance_id: str) -> None:
        self.workdir = workdir
        self.config = workdir / "plant.yaml"
        self.config.write_text(yaml.safe_dump(plant), encoding="utf-8")
        self.port = free_port()
        self.env = {**os.environ, "KILNWATCH_INSTANCE_ID": instance_id}
        self.store = workdir / "data" / f"kilnwatch-{instance_id}.sqlite3"
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.runs += 1
        cmd = [
            sys.executable, "-m", "kilnwatch", "run", "--config", str(self.config),
            "--data-dir", str(self.workdir / "data"), "--port", str(self.port),
        ]  # fmt: skip
        with (self.workdir / f"run{self.runs}.log").open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        poll(self.ready, "kilnwatch to be ready (OPC UA connected, MQTT subscribed)")

    def ready(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log()
        return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait up to ``timeout``; past that SIGKILL it and raise."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise

    @contextmanager
    def stopped_at_end(self) -> Iterator[None]:
        """Whatever happens inside, no kilnwatch process of this test outlives it."""
        try:
            yield
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)

    def mqtt_readings_received(self) -> float:
        """This run's ``kilnwatch_readings_total`` of the MQTT source."""
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        line = next(
            x for x in text.splitlines() if x.startswith('kilnwatch_readings_total{source="mqtt:cems"}')
        )
        return float(line.rsplit(" ", 1)[1])

    def log(self) -> str:
        return (self.workdir / f"run{self.runs}.log").read_text(errors="replace")[-3000:]


@contextmanager
def simulators(opcua_port: int) -> Iterator[Simulators]:
    # 3 h of backlog last 108 s at 100x: the stream is still fast when a slow start-up is done.
    sims = start_simulators(opcua_port, SPEED, backfill_h=3.0, tick_s=TICK_S, opcua_history=HISTORY_VALUES)
    try:
        yield sims
    finally:
        sims.stop()


def stored(store: Path, signals: list[str] = SIGNALS) -> dict[str, list[int]]:
    names, batch = StoreReader(store).readings(signals)
    return {n: batch.ts[batch.signal == i].tolist() for i, n in enumerate(names)}


def test_sigkill_mid_stream_loses_no_delivered_reading(mosquitto: Mosquitto, tmp_path: Path) -> None:
    mosquitto.start()
    token = uuid.uuid4().hex[:10]
    prefix, opcua_port = f"kwtest/{token}/sim", free_port()
    plant = sim_plant(opcua_port, mosquitto.port, prefix, {"client_id": f"kilnwatch-crash-{token}"})
    kw = Kilnwatch(tmp_path, plant, instance_id=f"crash{token}")
    with simulators(opcua_port) as sims, kw.stopped_at_end():
        kw.start()  # subscribed before the first message is published: the broker keeps every one
        publisher = start_publisher(sims, mosquitto.port, None, prefix, f"kwsim-{token}")
        reader = StoreReader(kw.store)
        poll(lambda: reader.count_readings("kiln2.stack.dust") > 1000, "readings flowing into the store", 90)

        assert kw.kill() == -signal.SIGKILL
        before = sum(len(v) for v in stored(kw.store).values())
        kw.start()  # same data directory, instance id and MQTT client id: the session resumes
        poll(
            lambda: reader.count_readings("kiln2.stack.dust") > before / len(SIGNALS) + 1000,
            "new readings",
            90,
        )
        sims.loop.run(publisher.stop())  # waits for the broker's PUBACK of every message
        assert publisher.stats.acked == publisher.stats.messages
        per_kiln, last_tick = publisher.stats.messages // 2, publisher.stats.last_tick_ns

        def complete() -> dict[str, list[int]] | None:
            got = stored(kw.store)
            return got if all(len(got[s]) == per_kiln for s in SIGNALS) else None

        def opcua_without_gaps() -> dict[str, int] | None:
            gaps = {
                n: max(np.diff(sorted(ts)), default=0) for n, ts in stored(kw.store, OPCUA_SIGNALS).items()
            }
            return gaps if all(0 < g <= round(TICK_S * NS) for g in gaps.values()) else None

        try:
            got = poll(complete, f"{per_kiln} readings of every analyser signal", timeout=90)
            received = kw.mqtt_readings_received()
            poll(
                opcua_without_gaps, "the OPC UA values of the downtime, from the server's history", timeout=90
            )
            second_run_log = (tmp_path / f"run{kw.runs}.log").read_text()
            assert "missed values read from the server's history" in second_run_log
        finally:
            assert kw.kill(signal.SIGTERM) == 0, kw.log()
    tick = round(TICK_S * NS)
    for name in SIGNALS:
        assert got[name] == list(range(last_tick - (per_kiln - 1) * tick, last_tick + 1, tick)), name
    assert StoreReader(kw.store).dead_letters() == []
    total = per_kiln * len(SIGNALS)
    print(
        f"published {publisher.stats.messages} messages ({total} readings); {before} stored before the "
        f"SIGKILL; the second run received {received:.0f}, of which {received - (total - before):.0f} were "
        f"redelivered although already stored (committed, not yet acknowledged); all {total} stored"
    )
