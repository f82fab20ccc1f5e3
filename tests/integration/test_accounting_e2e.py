"""The whole service against the simulators with faults: every affected hour, half-hour and day is
checked against values the test computes itself from the simulator's model and the rules.

Kiln 1, hours A-D (the first four whole hours well after the clock starts):
  before A  analysers in maintenance (so no hour before A enters the C_mean + 2 sigma history)
  A         10-min zero/span calibration                     -> valid (50/60), mean of the rest
  B         CO spikes x4; NOx x2.2 from B+30 min for 90 min  -> CO as CO2 up; 3 half-hours above the ELV
  C         flow dropout 15 min (BadNoCommunication)          -> flow from the mass balance
  D         calibration 10 min + analyser fault 15 min        -> CO2 and CO by C_mean + 2 sigma of A-C,
                                                                 flow (H2O faulty) from the mass balance
Kiln 2 runs clean; the plant's hourly sum is checked against both kilns.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

import tests.fixtures.service as service_fixture
from simulators.model import KilnModel
from simulators.scenarios import Event, Kind, Scenario

pytestmark = pytest.mark.integration

NS = 10**9
MIN = 60 * NS
HOUR = 3600 * NS
DAY = 24 * HOUR
TICK_S = 5.0
RHO = 44.0095 / 22.414
CO2_PER_CO = 44.0095 / 28.0101
COAL_T_CO2_PER_T = 25.8 * 94.6 / 1000  # NCV [GJ/t] x EF [t/TJ]: the simulator's coal
ELV, CI = 500.0, 100.0  # NOx, IED defaults


def accounting_plant(original: Any) -> Any:
    def plant(*args: Any, **kwargs: Any) -> dict[str, Any]:
        data = original(*args, **kwargs)
        for kiln in data["plants"][0]["kilns"]:
            kiln["accounting"] = {
                "composition": {"ef_clinker_t_per_t": 0.525, "toc_pct": 0.0},
                "fuels": [
                    {
                        "name": "coal",
                        "signal": f"{kiln['id']}.fuel.rate",
                        "ncv_gj_per_t": 25.8,
                        "ef_t_per_tj": 94.6,
                    }
                ],
            }
        return data

    return plant


def scenario(t0: int, a: int) -> Scenario:
    b, c, d = a + HOUR, a + 2 * HOUR, a + 3 * HOUR
    k = "kiln1"
    return Scenario(
        [
            Event(Kind.MAINTENANCE, k, t0 - HOUR, (a - t0 + HOUR) / NS),
            Event(Kind.CALIBRATION, k, a + 20 * MIN, 600),
            Event(Kind.SPIKE, k, b + 10 * MIN, 180, ("stack.co",), factor=4.0),
            Event(Kind.SPIKE, k, b + 40 * MIN, 120, ("stack.co",), factor=4.0),
            Event(Kind.SPIKE, k, b + 30 * MIN, 90 * 60, ("stack.nox",), factor=2.2),
            Event(Kind.FLOW_DROPOUT, k, c + 5 * MIN, 900),
            Event(Kind.CALIBRATION, k, d + 5 * MIN, 600),
            Event(Kind.FAULT, k, d + 35 * MIN, 900),
        ]
    )


#: Valid range of each kiln1 signal in the demo plant file, by the simulator's key.
PLANT_RANGES = {
    sig["id"].removeprefix("kiln1."): tuple(sig["range"])
    for sig in service_fixture.demo_plant()["plants"][0]["kilns"][0]["signals"]
}


class Expected:
    """The rules applied by the test itself to what the instruments report, on the 1-s grid."""

    def __init__(self, model: KilnModel, scn: Scenario) -> None:
        self.model, self.scn = model, scn

    def grid(self, start: int, seconds: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        t = start + np.arange(seconds, dtype=np.int64) * NS
        ticks = t // round(TICK_S * NS) * round(TICK_S * NS)  # the tick in force at each grid point
        applied = self.scn.apply(self.model, ticks, self.model.sample(ticks))
        ok = {k: applied.status_code[k] == 0 for k in applied.values}  # Good; any other status invalid
        for key, (lo, hi) in PLANT_RANGES.items():  # the plant file's valid range (a CO spike may leave it)
            if key in ok:
                ok[key] &= (applied.values[key] >= lo) & (applied.values[key] <= hi)
        return applied.values, ok

    def hour(self, start: int) -> dict[str, Any]:
        v, ok = self.grid(start, 3600)
        p_abs = v["stack.barometric_pressure"] + v["stack.static_pressure"]
        q = v["stack.flow"] * 273.15 / (v["stack.temperature"] + 273.15) * p_abs / 101.325
        q = q * (1 - v["stack.h2o"] / 100)
        q_ok = ok["stack.flow"] & ok["stack.temperature"] & ok["stack.barometric_pressure"]
        q_ok &= ok["stack.static_pressure"] & ok["stack.h2o"]
        nox_ref = v["stack.nox"] * (21 - 10) / (21 - v["stack.o2"])
        nox_ok = ok["stack.nox"] & ok["stack.o2"]
        halves = []
        for lo in (0, 1800):
            sl = slice(lo, lo + 1800)
            n = int(nox_ok[sl].sum())
            mean = float(nox_ref[sl][nox_ok[sl]].mean()) if n else None
            valid = n / 1800 >= 2 / 3
            halves.append(
                {"mean": mean, "valid": valid, "validated": max(mean - CI, 0.0) if valid and mean else None}
            )
        return {
            "flow": (float(q[q_ok].mean()), q_ok.mean()),
            "co2": (float(v["stack.co2"][ok["stack.co2"]].mean()), ok["stack.co2"].mean()),
            "co": (float(v["stack.co"][ok["stack.co"]].mean()), ok["stack.co"].mean()),
            "calc": float(np.mean(v["clinker.rate"]) * 0.525 + np.mean(v["fuel.rate"]) * COAL_T_CO2_PER_T),
            "clinker": float(np.mean(v["clinker.rate"])),
            "halves": halves,
        }


def mean_plus_2sigma(values: list[float]) -> float:
    return float(np.mean(values) + 2 * np.std(values, ddof=1))


def iso_ns(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()) * NS


def test_scenarios_against_the_rules_and_ground_truth(start_service, monkeypatch) -> None:
    monkeypatch.setattr(service_fixture, "demo_plant", accounting_plant(service_fixture.demo_plant))
    backfill_h = 7.8
    t0 = time.time_ns() - round(backfill_h * HOUR)
    # the first readings arrive 40-80 simulated minutes after the clock starts (connect, subscribe),
    # later on a busy machine
    a = -(-(t0 + 150 * MIN) // HOUR) * HOUR
    scn = scenario(t0, a)
    svc = start_service(speed=720.0, backfill_h=backfill_h, tick_s=TICK_S, scenario=scn)
    hours_wanted = [a + i * HOUR for i in range(4)]

    def rows_for(kiln: str) -> dict[int, dict[str, Any]]:
        got = svc.get(
            f"/api/v1/kilns/{kiln}/hourly", params={"start": "2026-01-01T00:00:00Z", "ledger": "true"}
        )
        return {iso_ns(r["hour"]): r for r in got.json()}

    def ready() -> Any:
        rows = {k: rows_for(k) for k in ("kiln1", "kiln2")}
        return rows if all(h in rows[k] for k in rows for h in hours_wanted) else None

    rows = svc.wait_for(ready, timeout=150, interval=1.0)
    exp = Expected(svc.sims.models[0], scn)
    e = {h: exp.hour(h) for h in hours_wanted}
    r1 = rows["kiln1"]
    A, B, C, D = hours_wanted

    def measured_co2_t(x: dict[str, Any]) -> float:
        q, c, co = x["flow"][0], x["co2"][0], x["co"][0]
        return q * c / 100 * RHO / 1000 + q * co * CO2_PER_CO * 1e-9

    # A: calibration, valid on the rest; B: CO spikes and NOx, valid
    for h in (A, B):
        row, x = r1[h], e[h]
        short = {k: v for k, v in row["ledger"].items() if v["valid"] < 3600}
        assert row["valid"] and not row["co2_t_substituted"], (row["hour"], svc.sims.clock.start_ns, short)
        assert row["parameters"]["co2_dry"]["n_valid"] == round(x["co2"][1] * 3600)
        assert row["co2_t"] == pytest.approx(measured_co2_t(x), rel=1e-6)
        assert row["co_as_co2_t"] == pytest.approx(x["flow"][0] * x["co"][0] * CO2_PER_CO * 1e-9, rel=1e-6)
    assert r1[A]["parameters"]["co2_dry"]["n_valid"] == 50 * 60
    # OPC UA reports changes only: zero and span gas are each held max_hold_s (60 s) and then missing
    ledger = r1[A]["ledger"]["kiln1.stack.co2"]
    held = 2 * 61
    assert (ledger["calibration"], ledger["missing"], ledger["received"]) == (
        held,
        600 - held,
        3600 - 600 + held,
    )
    calm = Scenario([ev for ev in scn.events if not (ev.kind is Kind.SPIKE and ev.keys == ("stack.co",))])
    x_calm = Expected(svc.sims.models[0], calm).hour(B)
    calm_co_t = x_calm["flow"][0] * x_calm["co"][0] * CO2_PER_CO * 1e-9
    # 300 s at x4 in the hour: about +25 %, less where the spike leaves the plant file's range (those
    # seconds are invalid, not counted); the hour carries exactly the spike's in-range share.
    spike_effect = (e[B]["flow"][0] * e[B]["co"][0]) / (x_calm["flow"][0] * x_calm["co"][0])
    assert spike_effect > 1.0
    assert r1[B]["co_as_co2_t"] / calm_co_t == pytest.approx(spike_effect, rel=1e-6)

    # C: flow dropout -> flow from the mass balance
    row, x = r1[C], e[C]
    assert x["flow"][1] == pytest.approx(45 / 60) and not row["valid"]
    assert row["substitution_method"] == "flow_n_dry=mass_balance" and row["co2_t_substituted"]
    q_subst = x["calc"] / (x["co2"][0] / 100 * RHO / 1000)
    assert row["parameters"]["flow_n_dry"]["substitute"] == pytest.approx(q_subst, rel=1e-6)
    assert row["co2_t"] == pytest.approx(x["calc"] + q_subst * x["co"][0] * CO2_PER_CO * 1e-9, rel=1e-6)
    flow = row["ledger"]["kiln1.stack.flow"]  # bad-status values reach the engine as changes only
    assert flow["comm_loss"] >= 61 and flow["comm_loss"] + flow["missing"] == 900 and flow["valid"] == 2700
    assert row["ledger"]["kiln1.stack.flow"]["substituted"] is True

    # D: calibration + fault > 12 min -> CO2 and CO by C_mean + 2 sigma of A-C, flow by the balance
    row, x = r1[D], e[D]
    assert x["co2"][1] == pytest.approx(35 / 60)
    c_sub = mean_plus_2sigma([e[h]["co2"][0] for h in (A, B, C)])
    co_sub = mean_plus_2sigma([e[h]["co"][0] for h in (A, B, C)])
    assert (
        row["substitution_method"]
        == "flow_n_dry=mass_balance;co2_dry=mean_plus_2sigma;co_dry=mean_plus_2sigma"
    )
    assert row["parameters"]["co2_dry"]["substitute"] == pytest.approx(c_sub, rel=1e-6)
    q_subst = x["calc"] / (c_sub / 100 * RHO / 1000)
    assert row["co2_t"] == pytest.approx(x["calc"] + q_subst * co_sub * CO2_PER_CO * 1e-9, rel=1e-6)
    co_measured_t = x["flow"][0] * x["co"][0] * CO2_PER_CO * 1e-9
    assert row["co2_t_measured"] == pytest.approx(measured_co2_t(x) - co_measured_t, rel=1e-6)
    ledger = row["ledger"]["kiln1.stack.co2"]  # the fault freezes the value: held 60 s, then missing
    assert (ledger["calibration"], ledger["fault"], ledger["valid"]) == (122, 61, 2100)
    assert ledger["missing"] == 1500 - 122 - 61

    # kiln 2 clean: the regulatory product of hourly means, plus CO as CO2
    truth2 = svc.sims.truth["kiln2"]
    for h in hours_wanted:
        row2 = rows["kiln2"][h]
        assert row2["valid"] and row2["completeness"] == 1.0
        assert row2["co2_t"] - row2["co_as_co2_t"] == pytest.approx(truth2.regulatory_hour(h), rel=1e-6)

    # the plant sums both kilns
    plant = svc.get("/api/v1/plants/demo/hourly", params={"start": "2026-01-01T00:00:00Z"}).json()
    by_hour = {iso_ns(p["hour"]): p for p in plant["rows"]}
    for h in hours_wanted:
        assert by_hour[h]["co2_t"] == pytest.approx(r1[h]["co2_t"] + rows["kiln2"][h]["co2_t"], rel=1e-12)
        assert by_hour[h]["co2_t_substituted"] == r1[h]["co2_t_substituted"]

    # NOx half-hours: 3 above the ELV, each validated value as computed here
    start = datetime.fromtimestamp(A / NS, tz=UTC).isoformat()
    end = datetime.fromtimestamp((D + HOUR) / NS, tz=UTC).isoformat()
    halves = svc.get(
        "/api/v1/kilns/kiln1/halfhourly", params={"start": start, "end": end, "pollutant": "nox"}
    ).json()["rows"]
    want = [hh for h in hours_wanted for hh in e[h]["halves"]]
    assert len(halves) == 8
    for got, w in zip(halves, want, strict=True):
        assert got["valid"] == w["valid"], got
        if w["validated"] is not None:
            assert got["validated_mg_per_nm3"] == pytest.approx(w["validated"], rel=1e-6)
    above = [iso_ns(h["half_hour"]) for h in halves if h["above_elv"]]
    assert above == [B + 30 * MIN, C, C + 30 * MIN]
    assert [h["valid"] for h in halves[6:]] == [True, False]  # D: 20/30 minutes valid, then 15/30

    check_days(svc, e, a)


def check_days(svc: Any, e: dict[int, dict[str, Any]], a: int) -> None:
    """Each day touched: NOx daily from the half-hours, and the cross-check from the hours.

    Simulated time runs on meanwhile, so each day's answers are read until two reads agree."""
    for day in sorted({h // DAY * DAY for h in e}):
        iso_day = datetime.fromtimestamp(day / NS, tz=UTC).date().isoformat()
        nox, cross, hourly = svc.wait_for(lambda d=iso_day: day_reports(svc, d), timeout=30, interval=0.2)
        expected_valid: list[float] = []
        discarded = 0
        for slot in range(day, day + (48 - nox["n_pending"]) * 30 * MIN, 30 * MIN):
            hour = slot // HOUR * HOUR
            if hour < a:
                discarded += 1  # not measured, or in maintenance
                continue
            x = e.get(hour) or expected_clean(svc, hour)
            hh = x["halves"][(slot - hour) // (30 * MIN)]
            if hh["valid"]:
                expected_valid.append(hh["validated"])
            else:
                discarded += 1
        assert nox["n_discarded"] == discarded and nox["n_valid"] == len(expected_valid)
        assert nox["validated_mg_per_nm3"] == pytest.approx(float(np.mean(expected_valid)), rel=1e-6)
        assert nox["valid"] == (discarded <= 5)
        assert nox["exceedance"] == (nox["valid"] and float(np.mean(expected_valid)) > ELV)

        assert cross["n_hours"] == len(hourly)
        assert cross["cems_co2_t"] == pytest.approx(sum(r["co2_t"] for r in hourly if r["co2_t"]), rel=1e-9)
        assert cross["revision"] == sum(r["revision"] for r in hourly)
        # calcination + coal is exactly what the simulator emits: CEMS differs by CO and covariance only
        assert abs(cross["deviation_pct"]) < 1.0 and not cross["flagged"]


def day_reports(svc: Any, iso_day: str) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]] | None:
    """(NOx daily row, cross-check row, hourly rows) of one day, if no hour closed between the reads."""
    day = {"start": iso_day, "end": iso_day + "T23:59:59Z"}

    def hourly() -> list[dict[str, Any]]:
        return svc.get("/api/v1/kilns/kiln1/hourly", params=day).json()

    before = hourly()
    (nox,) = [
        r for r in svc.get("/api/v1/kilns/kiln1/daily", params=day).json()["rows"] if r["pollutant"] == "nox"
    ]
    (cross,) = svc.get("/api/v1/kilns/kiln1/crosscheck", params={"day": iso_day}).json()["rows"]
    return (nox, cross, before) if hourly() == before else None


_clean_cache: dict[int, dict[str, Any]] = {}


def expected_clean(svc: Any, hour: int) -> dict[str, Any]:
    """Hours after D: no events but the maintenance, which ended at A."""
    if hour not in _clean_cache:
        model = svc.sims.models[0]
        _clean_cache[hour] = Expected(model, svc.sims.opcua.scenario).hour(hour)
    return _clean_cache[hour]
