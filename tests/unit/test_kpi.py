"""Every KPI of analytics.kpi against values computed by hand (the tables below), for fuels of each
class, a month with a substituted hour and a missing fuel rate, and kiln -> plant -> company -> fleet."""

from __future__ import annotations

from datetime import date

import pytest

from analytics import kpi
from analytics.aggregates import CalculatedCO2, HourAggregate, ParameterStats
from analytics.hours import HOUR_NS
from analytics.plant_time import PlantClock
from analytics.targets import Milestone, trajectory

JAN = PlantClock("UTC").midnight_ns(date(2026, 1, 1))
FEB = PlantClock("UTC").midnight_ns(date(2026, 2, 1))

# name, class, NCV [GJ/t], EF [t CO2/TJ], biomass fraction
FUELS_A = (
    kpi.KpiFuel("a.coal", "coal", "conventional_fossil", 25.0, 96.0),
    kpi.KpiFuel("a.tyres", "tyres", "alternative_fossil", 30.0, 85.0),
    kpi.KpiFuel("a.wood", "wood", "biomass", 15.0, 110.0),
    kpi.KpiFuel("a.rdf", "rdf", "mixed", 20.0, 80.0, biomass_fraction=0.4),
)
FUELS_B = (kpi.KpiFuel("b.coal", "coal", "conventional_fossil", 25.0, 96.0),)

# Per fuel and hour of kiln A (rates 4, 1, 2, 1.5 t/h):
#   fuel   energy [GJ]   CO2 [t]          fossil   alternative fossil   biogenic
#   coal   4x25 = 100    100x96/1000=9.6  9.6      -                    -
#   tyres  1x30 = 30     30x85/1000=2.55  2.55     2.55                 -
#   wood   2x15 = 30     30x110/1000=3.3  -        -                    3.3
#   rdf    1.5x20 = 30   30x80/1000=2.4   1.44     1.44                 0.96
#   total  190 (alternative 90, biomass 30+12=42)  13.59    3.99         4.26


def _hour(kiln, i, co2, clinker, calc, calcination, rates, valid=True, substituted=False, start=JAN):
    params = {s: ParameterStats(r, 3600 if r is not None else 0, 3600) for s, r in rates.items()}
    return HourAggregate(
        kiln, "x", start + i * HOUR_NS, co2, clinker, None, valid, 1.0, params,
        co2_t_substituted=substituted,
        calculated=CalculatedCO2(calcination, None, None, calc, clinker),
    )  # fmt: skip


RATES = {"a.coal": 4.0, "a.tyres": 1.0, "a.wood": 2.0, "a.rdf": 1.5}
# kiln A, January: h0 valid; h1 substituted CO2; h2 without clinker, mass balance or tyre rate
HOURS_A = [
    _hour("A", 0, 110.0, 100.0, 105.0, 52.5, RATES),
    _hour("A", 1, 120.0, 100.0, 110.0, 52.5, RATES, valid=False, substituted=True),
    _hour("A", 2, 100.0, None, None, None, {**RATES, "a.tyres": None}, valid=False),
]
# kiln B (same plant), January: one hour burning 2 t/h coal: 50 GJ, 4.8 t CO2
HOURS_B = [_hour("B", 5, 50.0, 60.0, 48.0, 31.5, {"b.coal": 2.0})]
# kiln C (another plant and company), February: one hour without any fuel configured
HOURS_C = [_hour("C", 0, 80.0, 100.0, 80.0, 52.5, {}, start=FEB)]

GROUPING = kpi.Grouping(
    plant_of={"A": "P1", "B": "P1", "C": "P2"}, company_of={"P1": "C1", "P2": "C2"}, fleet="F"
)
FUELS = {"A": FUELS_A, "B": FUELS_B}
PERIODS = kpi.periods(PlantClock("UTC"), "month", date(2026, 1, 1), date(2026, 2, 28))
ROWS = {"A": HOURS_A, "B": HOURS_B, "C": HOURS_C}

# Kiln A, January, by hand (744 hours in January):
#   gross per hour = CEMS - biogenic: h0 110-4.26 = 105.74, h1 115.74, h2 100-4.26 = 95.74
#   net per hour = gross - alternative fossil: h0 101.75, h1 111.75, h2 95.74-1.44 = 94.30 (tyres unknown)
KILN_A_JAN = {
    "clinker_t": 200.0,
    "co2_cems_t": 330.0,
    "co2_calculated_t": 215.0,
    "deviation_pct": (230.0 - 215.0) / 215.0 * 100,
    "calcination_co2_t": 105.0,
    "fuel_co2_t": 2 * 13.59,
    "alternative_fossil_co2_t": 2 * 3.99,
    "biogenic_co2_t": 2 * 4.26,
    "gross_co2_t": 105.74 + 115.74 + 95.74,
    "gross_co2_kg_per_t_clinker": (105.74 + 115.74) / 200.0 * 1000,
    "net_co2_t": 101.75 + 111.75 + 94.30,
    "net_co2_kg_per_t_clinker": (101.75 + 111.75) / 200.0 * 1000,
    "thermal_energy_gj": 380.0,
    "thermal_energy_mj_per_t_clinker": 380.0 * 1000 / 200.0,
    "alternative_fuel_rate_pct": 180.0 / 380.0 * 100,
    "biomass_share_pct": 84.0 / 380.0 * 100,
    "cementitious_t": None,
    "net_co2_kg_per_t_cementitious": None,
    "data_completeness_pct": 3 / 744 * 100,
    "valid_hours_pct": 1 / 744 * 100,
    "substituted_hours_pct": 1 / 3 * 100,
    "n_hours_expected": 744,
    "n_hours": 3,
    "n_hours_valid": 1,
    "n_hours_substituted": 1,
    "n_hours_co2": 3,
    "n_hours_clinker": 2,
    "n_hours_intensity": 2,
    "n_hours_calculated": 2,
    "n_hours_compared": 2,
    "n_hours_fuels": 2,
}
# Plant P1 = A + B, January; 400 t cementitious product given for the month
PLANT_P1_JAN = {
    "clinker_t": 260.0,
    "co2_cems_t": 380.0,
    "co2_calculated_t": 263.0,
    "deviation_pct": (280.0 - 263.0) / 263.0 * 100,
    "calcination_co2_t": 136.5,
    "fuel_co2_t": 27.18 + 4.8,
    "alternative_fossil_co2_t": 7.98,
    "biogenic_co2_t": 8.52,
    "gross_co2_t": 317.22 + 50.0,
    "gross_co2_kg_per_t_clinker": (221.48 + 50.0) / 260.0 * 1000,
    "net_co2_t": 307.80 + 50.0,
    "net_co2_kg_per_t_clinker": (213.5 + 50.0) / 260.0 * 1000,
    "thermal_energy_gj": 430.0,
    "thermal_energy_mj_per_t_clinker": 430.0 * 1000 / 260.0,
    "alternative_fuel_rate_pct": 180.0 / 430.0 * 100,
    "biomass_share_pct": 84.0 / 430.0 * 100,
    "cementitious_t": 400.0,
    "gross_co2_kg_per_t_cementitious": 367.22 / 400.0 * 1000,
    "net_co2_kg_per_t_cementitious": 357.80 / 400.0 * 1000,
    "data_completeness_pct": 4 / 1488 * 100,
    "valid_hours_pct": 2 / 1488 * 100,
    "substituted_hours_pct": 1 / 4 * 100,
    "n_hours_expected": 1488,
    "n_hours_fuels": 3,
}
# Kiln C, February (672 hours): no fuels configured, so no energy KPIs and gross = CEMS
KILN_C_FEB = {
    "clinker_t": 100.0,
    "co2_cems_t": 80.0,
    "deviation_pct": 0.0,
    "gross_co2_t": 80.0,
    "gross_co2_kg_per_t_clinker": 800.0,
    "net_co2_kg_per_t_clinker": 800.0,
    "thermal_energy_gj": 0.0,
    "thermal_energy_mj_per_t_clinker": None,
    "alternative_fuel_rate_pct": None,
    "n_hours_expected": 672,
    "n_hours_fuels": 0,
}


def _row(rows, key, period):
    return next(r for r in rows if r["id"] == key and r["period"] == period)


def _check(row, expected):
    for name, value in expected.items():
        if value is None:
            assert row[name] is None, name
        else:
            assert row[name] == pytest.approx(value, rel=1e-12, abs=1e-9), name


def test_kiln_level_every_kpi_by_hand() -> None:
    rows = kpi.kpi_report(ROWS, GROUPING, FUELS, PERIODS, "kiln")
    assert [(r["id"], r["period"]) for r in rows] == [
        ("A", "2026-01"), ("A", "2026-02"), ("B", "2026-01"), ("B", "2026-02"),
        ("C", "2026-01"), ("C", "2026-02"),
    ]  # fmt: skip
    _check(_row(rows, "A", "2026-01"), KILN_A_JAN)
    _check(_row(rows, "C", "2026-02"), KILN_C_FEB)
    empty = _row(rows, "A", "2026-02")
    assert empty["n_hours"] == 0 and empty["clinker_t"] == 0.0
    assert empty["gross_co2_kg_per_t_clinker"] is None and empty["data_completeness_pct"] == 0.0


def test_plant_is_the_sum_of_its_kilns_and_cement_is_per_plant() -> None:
    rows = kpi.kpi_report(ROWS, GROUPING, FUELS, PERIODS, "plant", {"P1": [400.0, 380.0]})
    _check(_row(rows, "P1", "2026-01"), PLANT_P1_JAN)
    kilns = kpi.kpi_report(ROWS, GROUPING, FUELS, PERIODS, "kiln")
    for name in ("clinker_t", "co2_cems_t", "gross_co2_t", "net_co2_t", "thermal_energy_gj", "n_hours"):
        total = _row(kilns, "A", "2026-01")[name] + _row(kilns, "B", "2026-01")[name]
        assert _row(rows, "P1", "2026-01")[name] == pytest.approx(total)
    assert _row(rows, "P2", "2026-01")["cementitious_t"] is None  # P2 gives none


def test_company_and_fleet() -> None:
    companies = kpi.kpi_report(ROWS, GROUPING, FUELS, PERIODS, "company", {"P1": [400.0, 380.0]})
    assert sorted({r["id"] for r in companies}) == ["C1", "C2"]
    _check(_row(companies, "C1", "2026-01"), PLANT_P1_JAN)
    fleet = kpi.kpi_report(ROWS, GROUPING, FUELS, PERIODS, "fleet", {"P1": [400.0, 380.0]})
    assert {r["id"] for r in fleet} == {"F"}
    feb = _row(fleet, "F", "2026-02")
    assert feb["clinker_t"] == 100.0 and feb["n_hours_expected"] == 3 * 672
    assert feb["cementitious_t"] is None  # P2 has no cement figure: no fleet ratio
    jan = _row(fleet, "F", "2026-01")
    assert jan["co2_cems_t"] == pytest.approx(380.0)


def test_hours_outside_the_periods_are_left_out() -> None:
    late = [_hour("A", 0, 999.0, 999.0, None, None, {}, start=FEB + 40 * 24 * HOUR_NS)]
    one = kpi.periods(PlantClock("UTC"), "month", date(2026, 1, 1), date(2026, 1, 31))
    rows = kpi.kpi_report({"A": HOURS_A + late}, GROUPING, FUELS, one, "kiln")
    _check(rows[0], {"clinker_t": 200.0, "n_hours": 3})


def test_year_and_range_periods_in_a_time_zone() -> None:
    baku = PlantClock("Asia/Baku")  # UTC+4: the local year starts at 20:00 UTC the day before
    year = kpi.periods(baku, "year", date(2026, 5, 1), date(2027, 2, 1))
    assert year.labels == ("2026", "2027") and year.years == (2026, 2027)
    assert year.bounds[0] == JAN - 4 * HOUR_NS
    rng = kpi.periods(PlantClock("UTC"), "range", date(2026, 1, 1), date(2026, 1, 2))
    assert rng.bounds.tolist() == [JAN, JAN + 48 * HOUR_NS]
    rows = kpi.kpi_report(ROWS, GROUPING, FUELS, rng, "plant")
    assert _row(rows, "P1", rng.labels[0])["n_hours_expected"] == 96


def test_targets_in_the_rows() -> None:
    targets = {
        ("plant", "P1"): trajectory("gross_co2_kg_per_t_clinker", 2020, 1100.0, [Milestone(2030, 900.0)])
    }
    rows = kpi.kpi_report(ROWS, GROUPING, FUELS, PERIODS, "plant", None, targets)
    jan = _row(rows, "P1", "2026-01")
    # 2026 on the line 1100 -> 900 (2020 -> 2030): 1100 - 200 x 6/10 = 980; actual 1044.15: off track
    assert jan["target_value"] == pytest.approx(980.0)
    assert jan["target_on_track"] is False
    assert jan["target_gap"] == pytest.approx(PLANT_P1_JAN["gross_co2_kg_per_t_clinker"] - 980.0)
    needed = (PLANT_P1_JAN["gross_co2_kg_per_t_clinker"] - 900.0) / 4
    assert jan["reduction_needed_kg_per_t_per_year"] == pytest.approx(needed)
    assert _row(rows, "P1", "2026-02")["target_on_track"] is None  # no clinker in February
    assert _row(rows, "P2", "2026-01")["target_kpi"] is None


def test_columns_and_method_cover_every_kpi() -> None:
    rows = kpi.kpi_report(ROWS, GROUPING, FUELS, PERIODS, "kiln")
    assert tuple(rows[0]) == kpi.COLUMNS
    hours = {h for h, _ in kpi.HOUR_FIELDS}
    assert all(k.hours in hours for k in kpi.KPI_FIELDS)
    assert [k["name"] for k in kpi.method()["kpis"]] == [k.name for k in kpi.KPI_FIELDS]


@pytest.mark.parametrize("level", kpi.LEVELS)
def test_kiln_sums_from_two_instances_roll_up_to_the_report_over_all_kilns(level: str) -> None:
    """``kilnwatch fleet --from-instances``: one instance holds kilns A and B, another kiln C; their
    kiln sums, pulled apart and rolled up, give the same rows as one process with every kiln."""
    cem = {"P1": [1000.0, 900.0], "P2": [500.0, 400.0]}
    targets = {
        ("fleet", "F"): trajectory("gross_co2_kg_per_t_clinker", 2025, 900.0, [Milestone(2030, 700.0)]),
        ("company", "C2"): trajectory("net_co2_kg_per_t_clinker", 2025, 800.0, [Milestone(2030, 600.0)]),
    }
    instances = ({"A": HOURS_A, "B": HOURS_B}, {"C": HOURS_C})
    pulled = {
        k: kpi.kiln_sums(hours, FUELS.get(k, ()), PERIODS.bounds).tolist()  # as JSON carries them
        for instance in instances
        for k, hours in instance.items()
    }
    got = kpi.report_from_sums(pulled, GROUPING, PERIODS, level, cem, targets)  # type: ignore[arg-type]
    want = kpi.kpi_report(ROWS, GROUPING, FUELS, PERIODS, level, cem, targets)  # type: ignore[arg-type]
    assert got == want
    assert len(got) == {"kiln": 6, "plant": 4, "company": 4, "fleet": 2}[level]
    fleet_jan = kpi.report_from_sums(pulled, GROUPING, PERIODS, "fleet")[0]
    assert fleet_jan["co2_cems_t"] == pytest.approx(330.0 + 50.0)  # A and B in January; C in February
    assert fleet_jan["target_kpi"] is None


def test_kiln_sums_of_an_instance_that_did_not_answer_count_as_expected_hours_only() -> None:
    """A kiln whose instance is down: its hours are expected, none reported (completeness drops)."""
    pulled = {k: kpi.kiln_sums(ROWS[k], FUELS.get(k, ()), PERIODS.bounds) for k in ("A", "B")}
    pulled["C"] = kpi.kiln_sums([], (), PERIODS.bounds)
    feb = kpi.report_from_sums(pulled, GROUPING, PERIODS, "fleet")[1]
    assert feb["n_hours_expected"] == 3 * 28 * 24
    assert feb["n_hours"] == 0
    assert feb["data_completeness_pct"] == 0.0
