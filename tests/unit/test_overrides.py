"""Operators' overrides through the engine: stopped ranges make hours not operating (no substitution),
manual lab values replace the plant file's constants in the mass balance from their validity start."""

from __future__ import annotations

import numpy as np
import pytest

from analytics import overrides as ov
from analytics.rules import KilnRules
from tests.unit.test_engine_rules import BASE, CLINKER, COAL, HOUR, IDX, T0, make, readings


def test_stopped_ranges_merge_and_mask() -> None:
    r = ov.StoppedRanges.of([(10, 20), (15, 30), (40, None), (5, 5)])
    assert r.starts.tolist() == [10, 40] and r.ends.tolist() == [30, np.iinfo(np.int64).max]
    assert r.contains(10) and not r.contains(30) and r.contains(10**18)
    assert r.mask(0, 6, 10).tolist() == [False, True, True, False, True, True]
    assert r.covered_ns(0, 50) == 30
    assert not ov.StoppedRanges.of([])


def test_value_in_force_follows_validity_and_entry_order() -> None:
    vals = (
        ov.ManualValue(ov.CLINKER_CAO_PCT, 64.0, 100, id=1),
        ov.ManualValue(ov.CLINKER_CAO_PCT, 66.0, 200, 300, id=2),
        ov.ManualValue(ov.CLINKER_CAO_PCT, 65.0, 200, id=3),  # entered later, same start: wins
    )
    assert ov.value_at(vals, ov.CLINKER_CAO_PCT, 99) is None
    assert ov.value_at(vals, ov.CLINKER_CAO_PCT, 150) == 64.0
    assert ov.value_at(vals, ov.CLINKER_CAO_PCT, 250) == 65.0
    assert ov.value_at(vals, ov.CLINKER_MGO_PCT, 250) is None


def test_a_stopped_hour_is_not_substituted_and_not_operating() -> None:
    n = 3 * 3600
    values = dict(BASE)
    flow = np.full(n, BASE["flow"], dtype=float)  # type: ignore[arg-type]
    flow[3600:7200] = np.nan  # the analyser has nothing in the second hour
    values["flow"] = flow
    values["clinker"] = np.where((np.arange(n) >= 3600) & (np.arange(n) < 7200), 0.0, CLINKER)
    rules = KilnRules(fuels=(COAL,))
    eng = make(rules)
    eng.ingest(readings(T0, n, values))
    hours = eng.advance_all().hours
    assert hours[1].co2_t_substituted and hours[1].operating  # without the annotation: substituted

    stopped = ov.KilnOverrides(ov.StoppedRanges.of([(T0 + HOUR, T0 + 2 * HOUR)]))
    eng.set_overrides("k", stopped, T0 + HOUR, T0 + 2 * HOUR)
    assert eng.is_stopped("k", T0 + HOUR) and not eng.is_stopped("k", T0 + 2 * HOUR)
    assert eng.late_ranges() == [("k", T0 + HOUR, T0 + 2 * HOUR)]
    out = eng.recompute("k", readings(T0, n, values), T0 + HOUR, T0 + 2 * HOUR)
    (h,) = out.hours
    assert h.start_ns == T0 + HOUR and h.revision == 1
    assert not h.operating and not h.co2_t_substituted
    assert h.substitution_method == "not_operating" and h.co2_t == 0.0
    assert h.running_fraction == 0.0


def test_manual_cao_changes_the_calcination_from_its_validity_start() -> None:
    rules = KilnRules(fuels=(COAL,), cao_pct=65.0, mgo_pct=1.5, ef_clinker_t_per_t=0.5266)
    eng = make(rules)
    n = 2 * 3600 + 120
    eng.ingest(readings(T0, n, BASE))
    before = eng.advance_all().hours
    assert before[0].calculated.calcination_t == pytest.approx(CLINKER * 0.5266)
    manual = (ov.ManualValue(ov.CLINKER_CAO_PCT, 60.0, T0 + HOUR, id=1),)
    eng.set_overrides("k", ov.KilnOverrides(manual=manual), T0 + HOUR, None)
    ((kiln, lo, hi),) = eng.late_ranges()
    assert (lo, hi) == (T0 + HOUR, T0 + 2 * HOUR + 60 * 10**9)  # up to where closing is
    out = eng.recompute(kiln, readings(T0, n, BASE), lo, hi)
    (h,) = [h for h in out.hours if h.start_ns == T0 + HOUR]
    # (60 % x 0.785 + 1.5 % x 1.092) / 100 = 0.48738 t CO2/t clinker
    assert h.calculated.calcination_t == pytest.approx(CLINKER * 0.48738, rel=1e-9)
    assert h.revision == 1


def test_manual_fuel_ncv_replaces_the_plant_files_for_that_fuel_only() -> None:
    rules = KilnRules(fuels=(COAL,))
    manual = (
        ov.ManualValue(ov.FUEL_NCV_GJ_PER_T, 27.0, T0, fuel="coal", id=1),
        ov.ManualValue(ov.FUEL_EF_T_PER_TJ, 90.0, T0, fuel="petcoke", id=2),
    )
    at = ov.KilnOverrides(manual=manual).rules_at(rules, T0)
    assert at.fuels[0].ncv_gj_per_t == 27.0 and at.fuels[0].ef_t_per_tj == 94.6
    assert ov.KilnOverrides(manual=manual).rules_at(rules, T0 - 1) is rules
    assert IDX["fuel"] >= 0


def test_a_fuel_ncv_per_delivery_changes_the_fuel_co2_from_its_validity_start_only() -> None:
    eng = make(KilnRules(fuels=(COAL,)))
    n = 3 * 3600 + 120
    eng.ingest(readings(T0, n, BASE))
    before = {h.start_ns: h for h in eng.advance_all().hours}
    rate = BASE["fuel"]
    assert before[T0].calculated.fuel_t == pytest.approx(rate * 25.8 * 94.6 / 1000)  # type: ignore[operator]
    delivery = (ov.ManualValue(ov.FUEL_NCV_GJ_PER_T, 24.0, T0 + 2 * HOUR, fuel="coal", id=1),)
    eng.set_overrides("k", ov.KilnOverrides(manual=delivery), T0 + 2 * HOUR, None)
    ((_, lo, hi),) = eng.late_ranges()
    assert lo == T0 + 2 * HOUR  # the hours before the delivery are not touched
    after = {h.start_ns: h for h in eng.recompute("k", readings(T0, n, BASE), lo, hi).hours}
    assert list(after) == [T0 + 2 * HOUR]
    h = after[T0 + 2 * HOUR]
    assert h.calculated.fuel_t == pytest.approx(rate * 24.0 * 94.6 / 1000, rel=1e-9)  # type: ignore[operator]
    assert h.calculated.calcination_t == before[T0 + 2 * HOUR].calculated.calcination_t
    assert h.revision == 1
