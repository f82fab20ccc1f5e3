"""Many plants, one historian: 4 kilnwatch processes (4 plants of 2 companies, 8 kilns) write to one
victoria-metrics while one set of simulators replays a past period fast (OPC UA with history, the
analysers over one mosquitto). One plant's kilnwatch is stopped mid-replay and started again.

``kilnwatch fleet`` (the CLI, reading the historian) must then equal the sum of the plants' own
``/hourly`` reports, kiln by kiln, plant by plant, per company and for the fleet; while the plant is
down its hours are reported missing, afterwards they are filled and nothing counts twice. At the
end ``kilnwatch fleet --from-instances`` (the full KPI report from the 4 running instances' kiln
sums) must agree with the historian's fleet report and the plants' own ``/api/v1/kpi`` rows, and
name the kilns of an instance it cannot reach as missing.

About 2.7 minutes on an idle machine, 4-5 under a load average of 20 (starting 4 kilnwatch
processes is much of it: the simulators' clock is held until all are connected, so a slow start
does not eat the replay)."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from analytics.kpi import HOUR_FIELDS, KPI_FIELDS
from kilnwatch.demo import demo_plant
from kilnwatch.fleet.victoria import read_hours
from simulators.clock import SimClock
from simulators.model import build_models
from simulators.opcua_server import SimOpcUaServer
from tests.e2e.hourly import iso, ns
from tests.e2e.test_mqtt_crash import Kilnwatch, poll
from tests.fixtures.loop_thread import LoopThread
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.ports import free_port
from tests.fixtures.service import HeldWall, Simulators, start_publisher
from tests.fixtures.victoria import Victoria

pytestmark = pytest.mark.integration

H = 3600 * 10**9
#: 360 simulated seconds per second, a value every 10 s: an hour of 8 kilns in 10 s, ~3700 readings/s.
SPEED, TICK_S, BACKFILL_H = 360.0, 10.0, 4.0
#: plant -> (company, its two kilns)
PLANTS = {
    "p1": ("north", ("k1", "k2")),
    "p2": ("north", ("k3", "k4")),
    "p3": ("south", ("k5", "k6")),
    "p4": ("south", ("k7", "k8")),
}
STOPPED = "p3"
KILNS = tuple(k for _, kilns in PLANTS.values() for k in kilns)


@contextmanager
def simulators(opcua_port: int, wall: HeldWall) -> Iterator[Simulators]:
    loop = LoopThread("simulators")
    clock = SimClock(backfill_s=BACKFILL_H * 3600, speed=SPEED, wall_ns=wall)
    models = build_models(KILNS, seed=1)
    opcua = SimOpcUaServer(models, clock, port=opcua_port, tick_s=TICK_S, history_values=20_000)
    sims = Simulators(clock, models, TICK_S, opcua, loop)
    loop.run(opcua.start())
    try:
        yield sims
    finally:
        sims.stop()


class Plant(Kilnwatch):
    def launch(self) -> None:
        """Start without waiting for readiness (the four start side by side)."""
        self.runs += 1
        cmd = [
            sys.executable, "-m", "kilnwatch", "run", "--config", str(self.config),
            "--data-dir", str(self.workdir / "data"), "--port", str(self.port),
        ]  # fmt: skip
        with (self.workdir / f"run{self.runs}.log").open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env)

    def hourly(self, kiln: str, start_ns: int, end_ns: int) -> dict[int, dict[str, Any]]:
        r = httpx.get(
            f"http://127.0.0.1:{self.port}/api/v1/kilns/{kiln}/hourly",
            params={"start": iso(start_ns), "end": iso(end_ns)},
            timeout=30,
        )
        r.raise_for_status()
        return {ns(row["hour"]): row for row in r.json()}


def plant_file(plant: str, opcua_port: int, mqtt_port: int, prefix: str, token: str) -> dict[str, Any]:
    company, kilns = PLANTS[plant]
    doc = demo_plant(opcua_port=opcua_port, mqtt_port=mqtt_port, kilns=kilns)
    doc["plants"][0].update(id=plant, name=f"Plant {plant}", company=company)
    for kiln in doc["plants"][0]["kilns"]:
        for s in kiln["signals"]:
            binding = s["source"].get("mqtt")
            if binding is not None:
                binding["topic"] = f"{prefix}/{binding['topic'].removeprefix('kilnwatch/sim/')}"
    doc["sources"]["mqtt"]["cems"]["client_id"] = f"kw-fleet-{plant}-{token}"
    return doc


def kilnwatch_fleet(tmp_path: Path, configs: list[Path], vm: Victoria, lo: int, hi: int, fmt: str) -> str:
    out = tmp_path / f"fleet.{fmt}"
    cmd = [
        sys.executable, "-m", "kilnwatch", "fleet", "--historian", vm.url, "--from", iso(lo), "--to", iso(hi),
        "--format", fmt, "--output", str(out), *[a for c in configs for a in ("--config", str(c))],
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return out.read_text(encoding="utf-8")


def kilnwatch_fleet_from(
    tmp_path: Path, configs: list[Path], urls: list[str], day: tuple[str, str]
) -> tuple[dict[str, Any], str]:
    """``kilnwatch fleet --from-instances`` over the whole UTC days: its JSON and its stderr."""
    out = tmp_path / "fleet-kpi.json"
    cmd = [
        sys.executable, "-m", "kilnwatch", "fleet", "--from-instances", *urls, "--from", day[0],
        "--to", day[1], "--period", "range", "--tz", "UTC", "--output", str(out),
        *[a for c in configs for a in ("--config", str(c))],
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(out.read_text(encoding="utf-8")), done.stderr.decode()


def plants_kpi(plants: dict[str, Plant], day: tuple[str, str]) -> dict[str, dict[str, Any]]:
    """Each plant's own ``/api/v1/kpi?level=plant`` row over the whole UTC days."""
    out = {}
    for p, kw in plants.items():
        r = httpx.get(
            f"http://127.0.0.1:{kw.port}/api/v1/kpi",
            params={"level": "plant", "period": "range", "start": day[0], "end": day[1], "tz": "UTC"},
            timeout=60,
        )
        r.raise_for_status()
        (out[p],) = r.json()["rows"]
    return out


def vm_rows_inserted(vm: Victoria) -> float:
    text = httpx.get(f"{vm.url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vm_rows_inserted_total") and 'type="influx"' in line
    )


def test_fleet_report_equals_the_plants_reports_through_a_stop_and_restart(
    mosquitto: Mosquitto, start_victoria: Any, tmp_path: Path
) -> None:
    mosquitto.start()
    vm: Victoria = start_victoria()
    token = uuid.uuid4().hex[:10]
    prefix, opcua_port = f"kwtest/{token}/sim", free_port()
    wall = HeldWall()
    plants: dict[str, Plant] = {}
    for plant in PLANTS:
        workdir = tmp_path / plant
        workdir.mkdir()
        kw = Plant(workdir, plant_file(plant, opcua_port, mosquitto.port, prefix, token), f"fleet{plant}")
        kw.env.update(
            KILNWATCH_INFLUX_URL=vm.url, KILNWATCH_INFLUX_TOKEN="t", KILNWATCH_INFLUX_BUCKET="fleet"
        )
        plants[plant] = kw
    configs = [kw.config for kw in plants.values()]
    t_start = time.monotonic()
    with simulators(opcua_port, wall) as sims, ExitStack() as stack:
        for kw in plants.values():
            stack.enter_context(kw.stopped_at_end())
            kw.launch()
        for kw in plants.values():
            poll(kw.ready, "every kilnwatch to be ready (OPC UA connected, MQTT subscribed)", timeout=120)
        start_publisher(sims, mosquitto.port, None, prefix, f"kwsim-{token}")
        wall.release()  # the replay starts
        t_release, rows_release = time.monotonic(), vm_rows_inserted(vm)
        first_hour = sims.clock.start_ns // H * H
        now_hour = wall() // H * H  # the hour the replay ends in: it does not close during the test

        def in_historian() -> dict[tuple[str, str], set[int]]:
            """Per (plant, kiln) the hours in the historian."""
            out: dict[tuple[str, str], set[int]] = {}
            for h in read_hours(vm.url, first_hour, now_hour + H).hours:
                out.setdefault((h.kiln.plant, h.kiln.kiln), set()).add(h.start_ns)
            return out

        def newest_of_stopped() -> int:
            got = in_historian()
            return max((t for k in PLANTS[STOPPED][1] for t in got.get((STOPPED, k), ())), default=0)

        # The stopped plant has written an hour; it stops before the replay is through.
        print(f"started, replay released after {time.monotonic() - t_start:.0f} s")
        poll(newest_of_stopped, f"{STOPPED}'s first hour in the historian", timeout=120)
        assert plants[STOPPED].kill(signal.SIGTERM) == 0, plants[STOPPED].log()
        gap_hour = newest_of_stopped() + H  # what it had not sent at the stop stays in its outbox
        assert gap_hour < now_hour, "the replay ended before the stop: the machine is too slow for this test"
        others = [p for p in PLANTS if p != STOPPED]
        poll(
            lambda: all(gap_hour in in_historian().get((p, k), ()) for p in others for k in PLANTS[p][1]),
            "the other plants' kilns to write an hour the stopped one has not",
            timeout=120,
        )
        while_down = json.loads(kilnwatch_fleet(tmp_path, configs, vm, first_hour, now_hour, "json"))
        down_missing = while_down["missing_hours"]
        for kiln in PLANTS[STOPPED][1]:
            assert iso(gap_hour) in down_missing[f"{STOPPED}/{kiln}"]
        for p in others:
            for kiln in PLANTS[p][1]:
                assert iso(gap_hour) not in down_missing.get(f"{p}/{kiln}", [])

        plants[STOPPED].launch()  # same store, instance id and MQTT session: it catches up
        poll(plants[STOPPED].ready, f"{STOPPED} to be ready again", timeout=120)
        poll(lambda: sims.clock.now_ns() >= wall() - 10**9, "the replay to catch up", timeout=120)
        t_caught_up, rows_caught_up = time.monotonic(), vm_rows_inserted(vm)

        def every_hour_closed() -> dict[str, dict[str, dict[int, dict[str, Any]]]] | None:
            """Per plant and kiln its /hourly rows, once every kiln has closed every hour of the range
            from its first one on; None before."""
            out: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
            for p, (_, kilns) in PLANTS.items():
                out[p] = {k: plants[p].hourly(k, first_hour, now_hour) for k in kilns}
                for rows in out[p].values():
                    if not rows or set(rows) != set(range(min(rows), now_hour, H)):
                        return None
            return out

        print(f"caught up {time.monotonic() - t_release:.0f} s after the release")
        reports = poll(every_hour_closed, "every kiln to close every hour of the replay", timeout=180)

        def not_drained(reports: dict[str, dict[str, dict[int, dict[str, Any]]]]) -> list[str]:
            """The closed hours not (yet) in the historian with the plant's own revision."""
            hours = read_hours(vm.url, first_hour, now_hour).hours
            stored = {(h.kiln.plant, h.kiln.kiln, h.start_ns): h.revision for h in hours}
            return [
                f"{p}/{k} {iso(t)}: revision {row['revision']}, historian {stored.get((p, k, t))}"
                for p in PLANTS
                for k, rows in reports[p].items()
                for t, row in rows.items()
                if stored.get((p, k, t)) != row["revision"]
            ]

        def drained() -> dict[str, dict[str, dict[int, dict[str, Any]]]] | None:
            """The plants' reports once the historian holds each of their hours (late data may
            still revise an hour: the reports are read again each time)."""
            now = every_hour_closed()
            return now if now is not None and not not_drained(now) else None

        for _ in range(3):  # again if late data revised an hour while the fleet report was made
            try:
                reports = poll(drained, "every plant's outbox to drain into the historian", 120)
            except TimeoutError:
                pytest.fail(
                    "\n".join(["not in the historian:", *not_drained(every_hour_closed() or reports)])
                )
            t0 = time.monotonic()
            report = json.loads(kilnwatch_fleet(tmp_path, configs, vm, first_hour, now_hour, "json"))
            report_s = time.monotonic() - t0
            csv_text = kilnwatch_fleet(tmp_path, configs, vm, first_hour, now_hour, "csv")
            read = read_hours(vm.url, first_hour, now_hour)
            if every_hour_closed() == reports:
                break

        # The full KPI report from the running instances' kiln sums (not from the historian).
        t0 = time.monotonic()
        urls = [f"http://127.0.0.1:{kw.port}" for kw in plants.values()]
        day = (iso(first_hour)[:10], iso(now_hour - H)[:10])
        for _ in range(3):  # again if late data revised an hour between the two pulls
            plant_kpis = plants_kpi(plants, day)
            by_instances, warned = kilnwatch_fleet_from(tmp_path, configs, urls, day)
            if plants_kpi(plants, day) == plant_kpis:
                break
        # Hours closed after the historian report (the hour the replay ends in, if it has ended since)
        # are in the KPI report's whole days: add them from the plants' own hourly rows.
        day_end = ns(f"{day[1]}T00:00:00Z") + 24 * H
        later = [
            r
            for p, (_, ks) in PLANTS.items()
            for k in ks
            for r in plants[p].hourly(k, now_hour, day_end).values()
        ]
        one_wrong = [*urls[:-1], f"http://127.0.0.1:{free_port()}"]
        with_one_down, warned_down = kilnwatch_fleet_from(tmp_path, configs, one_wrong, day)
        from_instances_s = time.monotonic() - t0

    # The fleet report: each level the sum of the plants' own hourly reports.
    def rows_of(p: str, k: str) -> list[dict[str, Any]]:
        return list(reports[p][k].values())

    def total(rows: list[dict[str, Any]], name: str) -> float:
        return math.fsum(r[name] or 0.0 for r in rows)

    expected: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for p, (company, kilns) in PLANTS.items():
        for k in kilns:
            rows = rows_of(p, k)
            for key in (("kiln", company, p, k), ("plant", company, p, ""), ("company", company, "", "")):
                expected.setdefault(key, []).extend(rows)
            expected.setdefault(("fleet", "", "", ""), []).extend(rows)
    years = {r["period"] for r in report["rows"] if len(r["period"]) == 4}
    got: dict[tuple[str, str, str, str], dict[str, float]] = {}
    for r in report["rows"]:
        if r["period"] in years:
            acc = got.setdefault((r["level"], r["company"], r["plant"], r["kiln"]), {})
            for name in ("co2_t", "clinker_t", "hours_reported", "hours_without_co2"):
                acc[name] = acc.get(name, 0.0) + r[name]
    assert set(got) == set(expected)
    for key, rows in expected.items():
        assert got[key]["co2_t"] == pytest.approx(total(rows, "co2_t"), rel=1e-9), key
        assert got[key]["clinker_t"] == pytest.approx(total(rows, "clinker_t"), rel=1e-9), key
        assert got[key]["hours_reported"] == len(rows), key  # each hour once: no double count
        assert got[key]["hours_without_co2"] == sum(r["co2_t"] is None for r in rows), key
    # Missing: only the hours before a kiln's first one (none of the stopped plant's gap).
    for p, (_, kilns) in PLANTS.items():
        for k in kilns:
            before_first = [iso(t) for t in range(first_hour, min(reports[p][k]), H)]
            assert report["missing_hours"].get(f"{p}/{k}", []) == before_first, (p, k)
    # Every hour the stopped plant missed is there now, with the plant's own revision and numbers.
    by_key = {(h.kiln.plant, h.kiln.kiln, h.start_ns): h for h in read.hours}
    for k in PLANTS[STOPPED][1]:
        for t, row in reports[STOPPED][k].items():
            h = by_key[(STOPPED, k, t)]
            assert h.revision == row["revision"]
            assert (h.co2_t is None) == (row["co2_t"] is None)
            if row["co2_t"] is not None:
                assert h.co2_t == pytest.approx(row["co2_t"], rel=1e-9)
    assert read.disagreeing == 0
    assert csv_text.splitlines()[0].startswith("level,company,plant,kiln,period,co2_t,clinker_t")
    assert len(csv_text.splitlines()) == len(report["rows"]) + 1

    # --from-instances: the fleet KPI equals the historian's fleet report and the plants' own KPIs.
    fleet_kpi = [r for r in by_instances["rows"] if r["level"] == "fleet"]
    assert len(fleet_kpi) == 1 and not warned, warned
    fk, hist = fleet_kpi[0], got[("fleet", "", "", "")]
    co2_hist = hist["co2_t"] + total(later, "co2_t")
    clinker_hist = hist["clinker_t"] + total(later, "clinker_t")
    assert fk["co2_cems_t"] == pytest.approx(co2_hist, rel=1e-9)
    assert fk["clinker_t"] == pytest.approx(clinker_hist, rel=1e-9)
    assert fk["n_hours"] == hist["hours_reported"] + len(later)
    assert fk["co2_cems_t"] / fk["clinker_t"] == pytest.approx(co2_hist / clinker_hist, rel=1e-9)
    for name in ("co2_cems_t", "clinker_t", "gross_co2_t", "net_co2_t", "thermal_energy_gj", "n_hours"):
        assert fk[name] == pytest.approx(math.fsum(r[name] for r in plant_kpis.values()), rel=1e-9), name
    assert fk["gross_co2_kg_per_t_clinker"] is not None
    for r in by_instances["rows"]:  # every KPI and hour count of a plant as the plant reports it
        if r["level"] == "plant":
            own = plant_kpis[r["id"]]
            for name in [k.name for k in KPI_FIELDS] + [h for h, _ in HOUR_FIELDS]:
                want = own[name] if own[name] is None else pytest.approx(own[name], rel=1e-9)
                assert r[name] == want, (r["id"], name)
    # One instance's URL wrong: its kilns are named missing, the rest computed; exit 0 with a warning.
    down = list(PLANTS)[-1]
    assert with_one_down["missing_kilns"] == list(PLANTS[down][1])
    assert "did not answer" in warned_down and "k7, k8" in warned_down
    fleet_down = next(r for r in with_one_down["rows"] if r["level"] == "fleet")
    up = [r for p, r in plant_kpis.items() if p != down]
    assert fleet_down["co2_cems_t"] == pytest.approx(math.fsum(r["co2_cems_t"] for r in up), rel=1e-9)
    assert fleet_down["n_hours_expected"] == fk["n_hours_expected"]  # its kilns' hours still expected

    points_per_s = (rows_caught_up - rows_release) / (t_caught_up - t_release)
    gap = sum(
        1 for k in PLANTS[STOPPED][1] for t in down_missing.get(f"{STOPPED}/{k}", []) if ns(t) >= gap_hour
    )
    print(
        f"fleet e2e: 4 instances, 8 kilns, {len(read.hours)} kiln hours; into victoria-metrics "
        f"{points_per_s:.0f} points/s during the {SPEED:.0f}x replay; kilnwatch fleet (JSON, process "
        f"included) {report_s:.2f} s, reading {read.samples} samples; {read.revised} revised kiln hours; "
        f"{gap} kiln hours missing while {STOPPED} was down, all filled; kilnwatch fleet --from-instances "
        f"(twice, and the plants' own KPIs) {from_instances_s:.2f} s"
    )
