"""The accounting rules through the engine: stuck values, the ledger, CO as CO2, US conventions,
substitution of invalid hours (WE8) and IED half-hours (WE6, WE9), on synthetic step functions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics import quality as q
from analytics.batch import ReadingBatch
from analytics.engine import EmissionsEngine, EngineParams
from analytics.rules import FuelRule, KilnRules, PollutantRule
from analytics.signals import KilnSpec, Quantity, SignalInfo, SignalTable
from analytics.us_units import ReportingConvention

HOUR = 3600 * 10**9
MIN = 60 * 10**9
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00Z
RHO = 44.0095 / 22.414
Q_WE3 = 397_463.63  # WE2/WE3 dry normal flow [Nm3/h]
CLINKER = 5000 / 24

INFOS = [
    SignalInfo("k.flow", "p", "k", Quantity.FLOW, "Nm3/h", "dry", "standard"),
    SignalInfo("k.co2", "p", "k", Quantity.CO2, "vol %", "dry"),
    SignalInfo("k.clinker", "p", "k", Quantity.CLINKER_RATE, "t/h"),
    SignalInfo("k.co", "p", "k", Quantity.CO, "mg/Nm3", "dry"),
    SignalInfo("k.o2", "p", "k", Quantity.O2, "vol %", "dry"),
    SignalInfo("k.nox", "p", "k", Quantity.NOX, "mg/Nm3", "dry"),
    SignalInfo("k.fuel", "p", "k", Quantity.FUEL_RATE, "t/h"),
]
IDX = {s.id.split(".")[1]: i for i, s in enumerate(INFOS)}
COAL = FuelRule("k.fuel", "coal", 25.8, 94.6)


def make(rules: KilnRules | None = None, **params: float) -> EmissionsEngine:
    table = SignalTable(INFOS)
    kiln = KilnSpec.from_table(table, "k", "Kiln", "p")
    p = EngineParams(lateness_s=0, rules={"k": rules or KilnRules()}, **params)  # type: ignore[arg-type]
    return EmissionsEngine(table, [kiln], p)


def readings(
    start: int, n: int, values: dict[str, object], quality: dict[str, np.ndarray] | None = None
) -> ReadingBatch:
    """1-s readings from ``start`` for the named signals; a scalar value is held constant."""
    parts = []
    for name, v in values.items():
        arr = np.broadcast_to(np.asarray(v, dtype=float), (n,))
        qual = (quality or {}).get(name, np.zeros(n, np.uint8))
        parts.append(
            ReadingBatch.from_columns(np.full(n, IDX[name]), start + np.arange(n) * 10**9, arr, qual)
        )
    return ReadingBatch.concat(parts)


BASE: dict[str, object] = {
    "flow": Q_WE3,
    "co2": 22.0,
    "clinker": CLINKER,
    "co": 0.0,
    "o2": 10.0,
    "nox": 400.0,
    "fuel": 26.24,
}


def run(batch: ReadingBatch, rules: KilnRules | None = None, **params: float):
    eng = make(rules, **params)
    eng.ingest(batch)
    return eng, eng.advance_all()


def flags(n: int, where: slice, code: int) -> np.ndarray:
    out = np.zeros(n, np.uint8)
    out[where] = code
    return out


# -- stuck values and the ledger -------------------------------------------------------------------


def _wobbly_co2(n: int, frozen: slice) -> np.ndarray:
    co2 = 22.0 + 0.01 * np.sin(np.arange(n) / 7.0)
    co2[frozen] = co2[frozen.start]
    return co2


@pytest.mark.parametrize("chunk_s", [None, 60, 437])
def test_frozen_value_is_stuck_after_stuck_time_whatever_the_batches(chunk_s: int | None) -> None:
    n = 3600 + 120
    batch = readings(T0, n, {**BASE, "co2": _wobbly_co2(n, slice(300, 2100))})
    eng = make(KilnRules(stuck_s=900, stuck_signals=frozenset({IDX["co2"]})))
    hours = []
    if chunk_s is None:
        eng.ingest(batch)
        hours = eng.advance_all().hours
    else:
        order = np.argsort(batch.ts, kind="stable")
        ordered = batch.take(order)
        for lo in range(0, len(ordered), chunk_s * len(BASE)):
            eng.ingest(ordered.take(np.arange(lo, min(lo + chunk_s * len(BASE), len(ordered)))))
            hours += eng.advance_all().hours
    (hour,) = hours
    # frozen from t = 300 s: stuck once unchanged for 900 s, i.e. from 1200 s to 2099 s
    assert hour.params["k.co2"].reasons == {"stuck": 900}
    assert hour.params["co2_dry"].n_valid == 3600 - 900
    assert not hour.valid


def test_no_stuck_while_the_kiln_is_stopped() -> None:
    n = 3600 + 120
    clinker = np.full(n, CLINKER)
    clinker[200:2200] = 0.0
    batch = readings(T0, n, {**BASE, "co2": _wobbly_co2(n, slice(300, 2100)), "clinker": clinker})
    _, out = run(batch, KilnRules(stuck_s=900, stuck_signals=frozenset({IDX["co2"]})))
    (hour,) = out.hours
    assert "stuck" not in hour.params["k.co2"].reasons
    assert hour.running_fraction == pytest.approx(1 - 2000 / 3600)


def test_ledger_counts_every_invalid_point_once() -> None:
    n = 3600 + 60
    co2 = np.full(n, 22.0)
    co2[1000:1030] = np.nan  # good class but NaN: "bad"
    qual = flags(n, slice(100, 220), q.UNCERTAIN | q.CALIBRATION)
    qual[400:460] = q.BAD | q.FAULT | q.CALIBRATION  # calibration comes first
    qual[600:640] = q.BAD | q.COMM_LOSS
    qual[700:710] = q.BAD
    qual[800:830] = q.UNCERTAIN | q.OUT_OF_RANGE
    batch = readings(T0, n, {**BASE, "co2": co2}, quality={"co2": qual})
    gap = (batch.signal == IDX["co2"]) & (batch.ts >= T0 + 2000 * 10**9) & (batch.ts < T0 + 2100 * 10**9)
    _, out = run(batch.take(~gap), max_hold_s=10)
    s = out.hours[0].params["k.co2"]
    assert s.reasons == {
        "calibration": 180,
        "comm_loss": 40,
        "bad": 40,
        "out_of_range": 30,
        "missing": 90,  # 100 s without readings, the first 10 s held
    }
    assert s.n_valid + sum(s.reasons.values()) == s.n_expected == 3600
    assert s.n_received == 3600 - 90


# -- CO as CO2 and reporting conventions -------------------------------------------------------------


def test_co_is_counted_as_co2_in_the_reported_hour_we5() -> None:
    _, out = run(readings(T0, 3660, {**BASE, "co": 1500.0}))
    (hour,) = out.hours
    assert_allclose(hour.co_as_co2_t, 0.93674, rtol=5e-5)  # WE5
    assert_allclose(hour.co2_t, 171.691 + 0.93674, rtol=5e-6)
    assert_allclose(out.minutes[0].co2_t_per_h, hour.co2_t, rtol=1e-12)
    assert_allclose(out.minutes[0].co_as_co2_t_per_h, hour.co_as_co2_t, rtol=1e-12)


@pytest.mark.parametrize(
    ("convention", "co2_t", "short_tons"),
    [(ReportingConvention.US_PART75, 171.370, 188.903), (ReportingConvention.US_PART98, 171.670, None)],
)
def test_us_conventions_we7(convention: ReportingConvention, co2_t: float, short_tons: float | None) -> None:
    _, out = run(readings(T0, 3660, {**BASE, "co": 1500.0}), KilnRules(convention=convention))
    (hour,) = out.hours
    assert_allclose(hour.co2_t, co2_t, rtol=5e-6)  # WE7; CO is not part of the US equations
    assert hour.convention == convention.value
    if short_tons is None:
        assert hour.co2_short_tons is None
    else:
        assert_allclose(hour.co2_short_tons, short_tons, rtol=5e-6)


# -- substitution (WE8) ------------------------------------------------------------------------------


def hours_of_co2(means: list[float], bad_minutes: dict[int, int], **extra: object) -> ReadingBatch:
    """One hour per mean of steady readings; ``bad_minutes[h]`` minutes at the end of hour h faulty."""
    n = len(means) * 3600 + 120
    co2 = np.r_[np.repeat(means, 3600), np.full(120, means[-1])]
    qual = np.zeros(n, np.uint8)
    for h, m in bad_minutes.items():
        qual[h * 3600 + 3600 - m * 60 : (h + 1) * 3600] = q.BAD | q.FAULT
    return readings(T0, n, {**BASE, "flow": 397_500.0, "co2": co2, **extra}, quality={"co2": qual})


def test_we8_hour_a_valid_and_hour_b_substituted_by_mean_plus_two_sigma() -> None:
    half_spread = 0.55 / np.sqrt(2)  # two hours with mean 22.10 and sample sigma 0.55
    _, out = run(hours_of_co2([22.10 - half_spread, 22.10 + half_spread, 22.0, 22.0], {2: 15, 3: 10}))
    h_b, h_a = out.hours[2], out.hours[3]
    assert h_a.valid and not h_a.co2_t_substituted  # 50/60 valid
    assert_allclose(h_a.co2_t, 397_500 * 0.22 * RHO / 1000)
    assert not h_b.valid and h_b.co2_t_substituted  # 45/60 valid
    assert h_b.substitution_method == "co2_dry=mean_plus_2sigma"
    assert h_b.params["co2_dry"].substitute == pytest.approx(23.20, rel=1e-9)
    assert_allclose(h_b.co2_t, 181.072, rtol=5e-6)  # WE8 hour B
    assert_allclose(h_b.co2_t_measured, 397_500 * 0.22 * RHO / 1000)  # pro rata, for the record


def test_invalid_flow_hour_comes_from_the_mass_balance() -> None:
    rules = KilnRules(fuels=(COAL,))
    n = 3 * 3600 + 120
    flow_q = np.zeros(n, np.uint8)
    flow_q[2 * 3600 + 600 : 2 * 3600 + 1800] = q.BAD | q.COMM_LOSS
    _, out = run(readings(T0, n, BASE, quality={"flow": flow_q}), rules)
    hour = out.hours[2]
    calc = CLINKER * 0.525 + 26.24 * 25.8 * 94.6 / 1000 + CLINKER * 1.55 * 0.002 * 44 / 12
    assert_allclose(hour.calculated.total_t, calc)
    assert hour.substitution_method == "flow_n_dry=mass_balance"
    assert_allclose(hour.params["flow_n_dry"].substitute, calc / (0.22 * RHO / 1000))
    assert_allclose(hour.co2_t, calc)  # the balance, through the measured concentration
    assert hour.co2_t_substituted and not hour.params["co2_dry"].substituted


def test_without_history_or_fuels_nothing_is_invented() -> None:
    n = 3600 + 120
    bad = flags(n, slice(0, 1200), q.BAD | q.FAULT)
    batch = readings(T0, n, BASE, quality={"flow": bad, "co2": bad})
    _, out = run(batch, KilnRules(fuels=(COAL,)))
    (hour,) = out.hours  # flow and CO2 invalid, no earlier hour: the mass balance itself
    calc = hour.calculated.total_t
    assert calc is not None and hour.co2_t == pytest.approx(calc)
    assert hour.substitution_method == "flow_n_dry=mass_balance;co2_dry=mass_balance"
    _, out = run(batch)  # no fuels configured: no balance, no substitute
    (hour,) = out.hours
    assert hour.co2_t is None and not hour.co2_t_substituted
    assert hour.substitution_method == "flow_n_dry=unavailable;co2_dry=unavailable"


def test_history_seeds_a_new_engine_and_rebuild_gives_the_same_hours() -> None:
    batch = hours_of_co2([21.7, 22.5, 22.0], {2: 20})
    _, out = run(batch)
    fresh = make()
    fresh.load_history(out.hours[:2])
    minutes = [m for m in out.minutes if m.start_ns < T0 + 3 * HOUR]
    h1, h2 = fresh.rebuild_hours("k", [m for m in minutes if m.start_ns >= T0 + HOUR])
    assert h2.co2_t == pytest.approx(out.hours[2].co2_t) and h2.co2_t_substituted
    assert (h1.revision, h2.revision) == (1, 0)  # a seeded hour counts on from its stored revision
    assert dataclasses.asdict(h2.params["co2_dry"]) == dataclasses.asdict(out.hours[2].params["co2_dry"])


# -- IED half-hours ----------------------------------------------------------------------------------


def test_we9_half_hour_validated_and_we6_reference_o2() -> None:
    n = 3600 + 120
    nox = np.full(n, 545.0)
    nox[:1560] = np.repeat([552.0] * 14 + [538.0] * 12, 60)  # WE9: 26 valid minutes ...
    qual = flags(n, slice(1560, 1800), q.UNCERTAIN | q.CALIBRATION)  # ... and 4 of zero/span
    o2 = np.full(n, 10.0)
    o2[1800:] = 8.5  # second half-hour: WE6, 645.741 mg/Nm3 dry at 8.5 % O2
    nox[1800:] = 645.741
    rules = KilnRules(pollutants={"nox": PollutantRule(500.0, 0.2)})
    _, out = run(readings(T0, n, {**BASE, "nox": nox, "o2": o2}, quality={"nox": qual}), rules)
    first, second = out.hours[0].half_hours
    p = first.pollutants["nox"]
    assert p.valid and p.n_valid == 26 * 60 and p.ci == pytest.approx(100.0)
    assert_allclose(p.mean_ref, 545.538, rtol=5e-6)
    assert_allclose(p.validated, 445.538, rtol=5e-6)
    assert not p.above_elv and first.operating
    assert_allclose(second.pollutants["nox"].mean_ref, 568.25, rtol=5e-6)  # WE6
    assert second.pollutants["nox"].validated == pytest.approx(468.25, rel=5e-5)
    assert set(first.pollutants) == {"nox", "co"}  # every pollutant the kiln measures
    assert first.pollutants["co"].elv is None and first.pollutants["co"].validated is None


def test_half_hour_at_exactly_two_thirds_is_valid_below_is_not() -> None:
    n = 3600 + 120
    qual = flags(n, slice(1200, 1800), q.BAD | q.FAULT)  # 10 of 30 minutes
    qual[1800 + 1200 - 1 : 3600] = q.BAD | q.FAULT  # one point more
    _, out = run(readings(T0, n, BASE, quality={"nox": qual}))
    first, second = out.hours[0].half_hours
    assert first.pollutants["nox"].valid and first.pollutants["nox"].availability == pytest.approx(2 / 3)
    assert not second.pollutants["nox"].valid and second.pollutants["nox"].validated is None


def test_recompute_sees_stuck_runs_that_began_before_the_late_range() -> None:
    n = 2 * 3600 + 120
    co2 = _wobbly_co2(n, slice(3000, 4800))  # frozen 3000-4799 s: stuck from 3900 s
    batch = readings(T0, n, {**BASE, "co2": co2})
    rules = KilnRules(stuck_s=900, stuck_signals=frozenset({IDX["co2"]}))
    eng, out = run(batch, rules)
    live = out.hours[1].params["k.co2"].reasons["stuck"]
    assert live == 4800 - 3900
    lo, hi = eng.readings_window("k", T0 + 4200 * 10**9, T0 + 4500 * 10**9)
    window = batch.take((batch.ts >= lo) & (batch.ts < hi))
    redo = eng.recompute("k", window, T0 + 4200 * 10**9, T0 + 4500 * 10**9)
    assert redo.hours[0].params["k.co2"].reasons["stuck"] == live
    assert redo.hours[0].revision == 1


# -- the plant file: rules, per-value corrections at ingest --------------------------------------------


def _plant(**kiln_extra: object) -> dict:
    from kilnwatch.demo import demo_plant

    plant = demo_plant(mqtt_port=None, kilns=("kiln1",))
    plant["plants"][0]["kilns"][0].update(kiln_extra)
    return plant


def test_plant_file_accounting_becomes_the_kilns_rules_and_method() -> None:
    from kilnwatch.config import parse_plant
    from kilnwatch.plant import build_runtime

    accounting = {
        "pollutants": {"nox": {"elv_mg_per_nm3": 450}, "co": {"elv_mg_per_nm3": 1000}},
        "composition": {"cao_pct": 65.5, "cao_non_carbonate_pct": 0.8, "mgo_pct": 1.6},
        "fuels": [{"name": "coal", "signal": "kiln1.fuel.rate", "ncv_gj_per_t": 25.8, "ef_t_per_tj": 94.6}],
        "stuck_minutes": 10,
    }
    runtime = build_runtime(parse_plant(_plant(accounting=accounting)))
    rules = runtime.engine_params.rules["kiln1"]
    assert rules.ef_clinker_t_per_t == pytest.approx(0.525367, rel=1e-6)  # WE10
    assert rules.pollutant("nox") == PollutantRule(450.0, 0.2)
    assert rules.pollutant("so2") == PollutantRule(50.0, 0.2)  # IED Annex VI Part 4 default
    assert rules.pollutant("co") == PollutantRule(1000.0, 0.1)
    assert rules.stuck_s == 600 and rules.fuels[0].signal_id == "kiln1.fuel.rate"
    stuck = {runtime.table.ids[i] for i in rules.stuck_signals}
    assert "kiln1.stack.co2" in stuck and "kiln1.clinker.rate" not in stuck
    method = runtime.method()
    assert method["kilns"]["kiln1"]["mass_balance"]["fuels"][0]["signal"] == "kiln1.fuel.rate"
    assert "half_hour_valid" in method["assumptions"] and "co_as_co2_t" in method["hourly_co2"]


def test_plant_file_names_a_fuel_that_is_not_a_fuel_signal() -> None:
    from kilnwatch.config import ConfigError, parse_plant

    bad = {
        "fuels": [{"name": "coal", "signal": "kiln1.stack.co2", "ncv_gj_per_t": 25.8, "ef_t_per_tj": 94.6}]
    }
    with pytest.raises(ConfigError, match="is not a fuel_rate signal of kiln kiln1"):
        parse_plant(_plant(accounting=bad))


def test_qal2_and_4_20ma_are_applied_at_ingest_we11() -> None:
    from kilnwatch.config import parse_plant
    from kilnwatch.plant import build_runtime

    plant = _plant()
    signals = {s["id"]: s for s in plant["plants"][0]["kilns"][0]["signals"]}
    signals["kiln1.stack.co2"]["scaling"] = {"lo": 0.0, "hi": 30.0}
    signals["kiln1.stack.nox"]["calibration"] = {
        "a": 5.0,
        "b": 0.98,
        "valid_min": 0.0,
        "valid_max": 600.0,
        "valid_from": "2026-01-01T00:00:00Z",
        "invalidate_outside": True,
    }
    runtime = build_runtime(parse_plant(plant))
    co2, nox = runtime.table.index("kiln1.stack.co2"), runtime.table.index("kiln1.stack.nox")
    ma = [15.2, 4.0, 20.0, 3.7, 3.2, 21.5]
    batch = ReadingBatch.from_columns(
        [co2] * 6 + [nox] * 3, [T0] * 6 + [T0, T0, T0 - HOUR], [*ma, 400.0, 700.0, 400.0], [0] * 9
    )
    out, counts = runtime.conditioner.apply(batch)
    assert_allclose(out.value[:3], [21.0, 0.0, 30.0])  # WE11
    valid = q.is_valid(out.quality)
    assert valid[:3].all() and not valid[3:6].any()  # 3.7 mA out of range, 3.2/21.5 mA failures
    assert out.quality[3] & q.OUT_OF_RANGE and out.quality[4] & q.FAULT and np.isnan(out.value[5])
    assert_allclose(out.value[6:], [5.0 + 0.98 * 400.0, 5.0 + 0.98 * 700.0, 400.0])
    assert valid[6] and not valid[7]  # 691 mg/Nm3 is outside the valid calibration range
    assert out.quality[8] & q.CLASS_MASK == q.UNCERTAIN  # before the QAL2 was in force: uncalibrated
    assert counts.loop_current == {co2: 3} and counts.outside_calibration == {nox: 1}
    assert counts.calibration_not_in_force == {nox: 1}
