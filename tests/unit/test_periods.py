"""IED days from half-hours (WE9), the daily cross-check (WE10) and plant sums, from stored hours."""

from __future__ import annotations

import json

import pytest

from analytics.aggregates import (
    CalculatedCO2,
    HalfHourAggregate,
    HourAggregate,
    PollutantHalfHour,
    hour_from_dict,
)
from analytics.periods import DAY_NS, HALF_HOUR_NS, daily_pollutants
from analytics.reporting import daily_crosscheck, daily_from_hours, plant_hours
from analytics.tables import crosscheck_row, daily_rows, halfhourly_rows, plant_hourly_rows

T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00Z
HOUR = 3600 * 10**9
ELV, CI = 500.0, 100.0


def half(i: int, mean: float | None, valid: bool = True, operating: bool = True) -> HalfHourAggregate:
    validated = None if not valid or mean is None else max(mean - CI, 0.0)
    p = PollutantHalfHour(
        mean, 1800 if valid else 600, 1800, valid, CI, validated, ELV, bool(validated and validated > ELV)
    )
    return HalfHourAggregate(T0 + i * HALF_HOUR_NS, operating, 1.0 if operating else 0.0, {"nox": p})


def we9_day() -> list[HalfHourAggregate]:
    """WE9: 48 half-hours, 3 discarded, 45 validated: 20 x 430 and 25 x 470."""
    halves = [half(i, 530.0) for i in range(20)] + [half(20 + i, 570.0) for i in range(25)]
    return halves + [half(45 + i, None, valid=False) for i in range(3)]


def test_we9_daily_average_of_validated_half_hours() -> None:
    (day,) = daily_pollutants(T0, [(h, 0) for h in we9_day()], T0 + DAY_NS)
    assert day.validated == pytest.approx(452.222, rel=5e-6)
    assert day.valid and day.complete and not day.exceedance
    assert (day.n_valid, day.n_discarded, day.n_pending) == (45, 3, 0)
    assert day.mean_ref == pytest.approx(552.222, rel=5e-6)  # before the CI is taken off


@pytest.mark.parametrize(
    ("discarded", "valid"),
    [(5, True), (6, False), (48, False)],
)
def test_day_is_valid_with_at_most_five_discarded(discarded: int, valid: bool) -> None:
    halves = [half(i, 650.0, valid=i >= discarded) for i in range(48)]
    (day,) = daily_pollutants(T0, [(h, 0) for h in halves], T0 + DAY_NS)
    assert day.valid is valid and day.n_discarded == discarded
    assert day.exceedance is valid  # 550 validated > 500, judged on valid days only
    if discarded == 48:
        assert day.validated is None


def test_exceedance_is_strictly_above_and_not_operating_is_not_discarded() -> None:
    at_elv = [half(i, 600.0) for i in range(48)]
    assert not daily_pollutants(T0, [(h, 0) for h in at_elv], T0 + DAY_NS)[0].exceedance
    halves = [half(i, 600.01) for i in range(40)] + [
        half(40 + i, None, False, operating=False) for i in range(8)
    ]
    (day,) = daily_pollutants(T0, [(h, 2) for h in halves], T0 + DAY_NS)
    assert day.valid and day.exceedance and day.n_not_operating == 8 and day.n_discarded == 0
    assert day.revision == 2 * 24


def test_missing_half_hours_are_discarded_before_the_last_closed_hour_and_pending_after() -> None:
    halves = [half(i, 550.0) for i in range(4, 20)]  # 00:00-02:00 absent, data until 10:00
    (day,) = daily_pollutants(T0, [(h, 0) for h in halves], T0 + 10 * HOUR)
    assert (day.n_discarded, day.n_pending, day.n_valid) == (4, 28, 16)
    assert day.valid and not day.complete
    assert daily_pollutants(T0, [], T0 + DAY_NS) == []  # nothing measured: no pollutant rows


def hour(
    i: int, co2: float | None, calc: float | None, clinker: float = 5000 / 24, rev: int = 0
) -> HourAggregate:
    h = HourAggregate("k", "p", T0 + i * HOUR, co2, clinker, None, co2 is not None, 1.0, {}, rev)
    h.calculated = CalculatedCO2(109.451, 64.052, 2.368, calc, clinker)
    h.co_as_co2_t = 0.5
    return h


def test_we10_cross_check_over_a_day() -> None:
    hours = [hour(i, 171.691, 175.872, rev=1) for i in range(24)]
    hours[5].co2_t_substituted = True
    c = daily_crosscheck("k", T0, hours, 5.0)
    assert c.deviation_pct == pytest.approx(-2.38, abs=0.005)  # WE10
    assert c.cems_co2_t == pytest.approx(24 * 171.691)
    assert c.calculated_intensity_kg_per_t == pytest.approx(844.18, rel=5e-5)
    assert not c.flagged and c.n_substituted_hours == 1 and c.revision == 24
    assert daily_crosscheck("k", T0, hours, 2.0).flagged
    hours[3] = hour(3, None, 175.872)  # an hour without CEMS CO2 is left out of both sides
    c = daily_crosscheck("k", T0, hours, 5.0)
    assert (c.n_hours, c.n_hours_compared) == (24, 23)
    assert c.deviation_pct == pytest.approx(-2.38, abs=0.005)
    empty = daily_crosscheck("k", T0, [], 5.0)
    assert empty.deviation_pct is None and not empty.flagged and empty.cems_co2_t is None
    row = crosscheck_row(c)
    assert row["day"] == "2026-01-01" and "day_start_ns" not in row


def test_plant_hours_sum_the_kilns_and_say_which_is_missing() -> None:
    a = [hour(0, 100.0, None, 200.0, rev=1), hour(1, 110.0, None, 210.0)]
    b = [hour(0, 50.0, None, 100.0, rev=2)]
    for h in b:
        h.kiln = "b"
    first, second = plant_hours("p", {"a": a, "b": b})
    assert first.co2_t == 150.0 and first.clinker_t == 300.0 and first.revision == 3
    assert first.intensity_kg_per_t == pytest.approx(1000 * 150 / 300)  # never a mean of ratios
    assert first.valid and first.co_as_co2_t == 1.0
    assert second.missing_kilns == ["b"] and not second.valid and second.completeness == 0.0
    assert plant_hourly_rows([first])[0]["hour"] == "2026-01-01T00:00:00Z"


def test_half_hours_survive_the_ledger_round_trip_and_make_the_same_day() -> None:
    halves = we9_day()
    hours = []
    for i in range(24):
        h = hour(i, 171.0, 175.0, rev=i % 2)
        h.half_hours = halves[2 * i : 2 * i + 2]
        hours.append(hour_from_dict(json.loads(json.dumps(h.to_dict()))))
    (day,) = daily_from_hours(T0, hours, T0 + DAY_NS, 5)
    assert day.validated == pytest.approx(452.222, rel=5e-6)
    assert day.revision == 12
    rows = halfhourly_rows(hours, "nox", T0 + HOUR, T0 + 2 * HOUR)
    assert [r["half_hour"] for r in rows] == ["2026-01-01T01:00:00Z", "2026-01-01T01:30:00Z"]
    assert rows[0]["validated_mg_per_nm3"] == 430.0 and rows[0]["elv_mg_per_nm3"] == ELV
    assert daily_rows([day])[0]["validated_mg_per_nm3"] == pytest.approx(452.222, rel=5e-6)
