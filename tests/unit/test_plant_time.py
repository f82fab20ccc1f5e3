"""Local days, months and years of a plant's time zone: the boundaries (written out by hand here), the
IED daily means and their validity, the daily cross-check and the substitution's reporting year, for a
plant in Asia/Baku (UTC+4, no clock change) and one in Europe/Berlin (both clock changes of 2026)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from analytics.aggregates import CalculatedCO2, HalfHourAggregate, HourAggregate, ParameterStats
from analytics.aggregates import PollutantHalfHour as P
from analytics.averaging import mean_plus_two_sigma
from analytics.kiln_params import CO2_DRY
from analytics.periods import HALF_HOUR_NS
from analytics.plant_time import PlantClock, period_bounds
from analytics.reporting import daily_crosscheck, daily_from_hours
from analytics.substitution import SubstitutionHistory, period_start_ns
from analytics.tables import crosscheck_row, daily_rows
from kilnwatch import cli
from kilnwatch.config import ConfigError, parse_plant
from kilnwatch.demo import demo_plant
from kilnwatch.plant import build_runtime

HOUR = 3600 * 10**9
BAKU, BERLIN = PlantClock("Asia/Baku"), PlantClock("Europe/Berlin")


def utc(text: str) -> int:
    """An instant written as UTC, e.g. '2026-03-28T23:00Z' [ns]."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()) * 10**9


# (clock, local day, its start and end in UTC, hours in it), computed by hand from the offsets:
# Baku +04:00 all year; Berlin +01:00 (CET) and +02:00 (CEST) from 29 March 01:00Z to 25 October 01:00Z.
DAYS = [
    (BAKU, date(2026, 1, 1), "2025-12-31T20:00Z", "2026-01-01T20:00Z", 24),
    (BAKU, date(2026, 3, 29), "2026-03-28T20:00Z", "2026-03-29T20:00Z", 24),
    (BERLIN, date(2026, 1, 1), "2025-12-31T23:00Z", "2026-01-01T23:00Z", 24),
    (BERLIN, date(2026, 3, 29), "2026-03-28T23:00Z", "2026-03-29T22:00Z", 23),
    (BERLIN, date(2026, 10, 25), "2026-10-24T22:00Z", "2026-10-25T23:00Z", 25),
]


@pytest.mark.parametrize(("clock", "day", "start", "end", "n_hours"), DAYS)
def test_local_day_bounds(clock: PlantClock, day: date, start: str, end: str, n_hours: int) -> None:
    a, b = clock.day_bounds(day, day)
    assert (a, b) == (utc(start), utc(end))
    assert (b - a) // HOUR == n_hours
    assert clock.date_of(a) == day and clock.date_of(b - 1) == day and clock.date_of(a - 1) != day


def test_row_bounds_carry_utc_and_local_time_with_the_offset() -> None:
    a, b = BERLIN.day_bounds(date(2026, 3, 29), date(2026, 3, 29))
    assert period_bounds(BERLIN, int(a), int(b)) == {
        "start": "2026-03-28T23:00:00Z",
        "end": "2026-03-29T22:00:00Z",
        "start_local": "2026-03-29T00:00:00+01:00",
        "end_local": "2026-03-30T00:00:00+02:00",
    }


def test_half_hour_offset_days_start_at_the_first_whole_utc_hour_of_the_local_day() -> None:
    kolkata = PlantClock("Asia/Kolkata")  # +05:30: local midnight is 18:30Z, the day's first hour 19:00Z
    a, b = kolkata.day_bounds(date(2026, 1, 1), date(2026, 1, 1))
    assert (a, b) == (utc("2025-12-31T19:00Z"), utc("2026-01-01T19:00Z"))
    assert kolkata.local_iso(int(a)) == "2026-01-01T00:30:00+05:30"
    assert kolkata.date_of(utc("2025-12-31T18:00Z")) == date(2025, 12, 31)  # 23:30 local: the day before


def test_months_and_years_are_local() -> None:
    months = BERLIN.month_bounds(date(2026, 3, 5), date(2026, 4, 1))
    assert list(months) == [utc("2026-02-28T23:00Z"), utc("2026-03-31T22:00Z"), utc("2026-04-30T22:00Z")]
    assert period_start_ns(utc("2026-06-01T00:00Z"), BAKU.year_starts_ns) == utc("2025-12-31T20:00Z")
    assert period_start_ns(utc("2025-12-31T19:00Z"), BAKU.year_starts_ns) == utc("2024-12-31T20:00Z")
    assert period_start_ns(utc("2025-12-31T23:00Z"), BERLIN.year_starts_ns) == utc("2025-12-31T23:00Z")
    assert period_start_ns(utc("2026-06-01T00:00Z")) == utc("2026-01-01T00:00Z")  # no zone: UTC


# -- IED daily means -----------------------------------------------------------------------------

ELV, CI = 500.0, 100.0


def half(start_ns: int, mean: float | None) -> HalfHourAggregate:
    ok = mean is not None
    validated = None if mean is None else mean - CI
    p = P(mean, 1800 if ok else 0, 1800, ok, CI, validated, ELV, bool(validated and validated > ELV))
    return HalfHourAggregate(start_ns, True, 1.0, {"nox": p})


def hours_with_halves(lo: int, hi: int, value: float | None) -> list[HourAggregate]:
    """Stored hours of [lo, hi), each with two NOx half-hours of ``value`` (None: invalid)."""
    out = []
    for t in range(lo, hi, HOUR):
        h = HourAggregate("k", "p", t, 1.0, 1.0, None, True, 1.0, {})
        h.half_hours = [half(t, value), half(t + HALF_HOUR_NS, value)]
        out.append(h)
    return out


@pytest.mark.parametrize(("clock", "day", "start", "end", "n_hours"), DAYS)
def test_daily_mean_counts_the_half_hours_of_the_local_day(
    clock: PlantClock, day: date, start: str, end: str, n_hours: int
) -> None:
    a, b = utc(start), utc(end)
    # 600 before and after the local day (UTC-day neighbours), 530 inside, and 5 invalid half-hours
    hours = hours_with_halves(a - 6 * HOUR, a, 600.0) + hours_with_halves(a, b, 530.0)
    hours += hours_with_halves(b, b + 6 * HOUR, 600.0)
    for h in hours:
        if a + 2 * HOUR <= h.start_ns < a + 4 * HOUR or h.start_ns == b - HOUR:
            h.half_hours[0] = half(h.start_ns, None)  # 3 hours x 1 invalid half-hour
        if a + 2 * HOUR <= h.start_ns < a + 4 * HOUR:
            h.half_hours[1] = half(h.start_ns + HALF_HOUR_NS, None)  # and 2 more: 5 in all
    (d,) = daily_from_hours(a, hours, b + 6 * HOUR, 5, b)
    assert d.n_half_hours == 2 * n_hours  # 46, 48 or 50
    assert (d.n_valid, d.n_discarded, d.n_pending) == (2 * n_hours - 5, 5, 0)
    assert d.valid and d.mean_ref == pytest.approx(530.0) and d.validated == pytest.approx(430.0)
    sixth = next(h for h in hours if h.start_ns == a + 5 * HOUR)
    sixth.half_hours[1] = half(a + 5 * HOUR + HALF_HOUR_NS, None)
    (d6,) = daily_from_hours(a, hours, b + 6 * HOUR, 5, b)
    assert d6.n_discarded == 6 and not d6.valid
    (row,) = daily_rows([d], clock)
    assert row["day"] == day.isoformat() and row["n_half_hours"] == 2 * n_hours
    assert (row["start"], row["end"]) == (start.replace("Z", ":00Z"), end.replace("Z", ":00Z"))
    assert row["start_local"] == f"{day.isoformat()}T00:00:00{clock.utc_offset(a)}"


def test_the_50_half_hours_of_the_autumn_day_all_enter_the_mean() -> None:
    """25 October 2026 in Berlin: the repeated hour 02:00-03:00 local (00:00Z and 01:00Z) is two hours."""
    a, b = utc("2026-10-24T22:00Z"), utc("2026-10-25T23:00Z")
    hours = hours_with_halves(a, b, 530.0)
    for h in hours[:2]:  # 22:00Z and 23:00Z: 00:00-02:00 local
        h.half_hours = [half(h.start_ns, 630.0), half(h.start_ns + HALF_HOUR_NS, 630.0)]
    (d,) = daily_from_hours(a, hours, b, 5, b)
    assert d.n_half_hours == 50 and d.n_valid == 50
    assert d.mean_ref == pytest.approx((4 * 630.0 + 46 * 530.0) / 50)  # 538.0
    # the UTC day of 25 October: 48 half-hours, 46 of them in the stored hours, the last hour missing
    (utc_day,) = daily_from_hours(utc("2026-10-25T00:00Z"), hours, b + 2 * HOUR, 5)
    assert utc_day.n_half_hours == 48 and utc_day.n_valid == 46 and utc_day.n_discarded == 2


# -- daily cross-check ---------------------------------------------------------------------------


def co2_hours(lo: int, n: int) -> list[HourAggregate]:
    """``n`` hours from ``lo``; hour i has i t of CEMS CO2 and 2 i t calculated."""
    out = []
    for i in range(n):
        h = HourAggregate("k", "p", lo + i * HOUR, float(i), 10.0, None, True, 1.0, {}, 1)
        h.calculated = CalculatedCO2(float(i), 0.0, 0.0, 2.0 * i, 10.0)
        out.append(h)
    return out


@pytest.mark.parametrize(("clock", "day", "start", "end", "n_hours"), DAYS)
def test_daily_cross_check_sums_the_local_day(
    clock: PlantClock, day: date, start: str, end: str, n_hours: int
) -> None:
    t0 = utc(start) - 5 * HOUR
    hours = co2_hours(t0, 40)
    a, b = clock.day_bounds(day, day)
    c = daily_crosscheck("k", int(a), hours, 5.0, int(b))
    assert c.n_hours == n_hours and c.revision == n_hours
    assert c.cems_co2_t == sum(range(5, 5 + n_hours))  # hours 5 .. 5 + n - 1 after t0
    assert c.calculated_co2_t == 2 * sum(range(5, 5 + n_hours)) and c.deviation_pct == -50.0
    row = crosscheck_row(c, clock)
    assert row["day"] == day.isoformat() and "day_end_ns" not in row
    assert row["end"] == end.replace("Z", ":00Z")


# -- substitution's reporting year -----------------------------------------------------------------


def co2_hour(start_ns: int, value: float) -> HourAggregate:
    stats = ParameterStats(value, 3600, 3600)
    return HourAggregate("k", "p", start_ns, None, None, None, True, 1.0, {CO2_DRY: stats})


@pytest.mark.parametrize(
    ("clock", "year_start"),
    [(BAKU, "2025-12-31T20:00Z"), (BERLIN, "2025-12-31T23:00Z"), (PlantClock(), "2026-01-01T00:00Z")],
)
def test_substitution_uses_the_valid_hours_of_the_local_year(clock: PlantClock, year_start: str) -> None:
    history = SubstitutionHistory(clock.year_starts_ns)
    y0 = utc(year_start)
    before = [co2_hour(y0 - k * HOUR, 30.0 + k) for k in (1, 2, 3)]  # the old local year
    after = [co2_hour(y0 + k * HOUR, 20.0 + k) for k in (0, 1, 2)]  # the new one
    for h in before + after:
        history.record(h, 0.8)
    got = history.substitute(CO2_DRY, y0 + 3 * HOUR)
    assert got == pytest.approx(float(mean_plus_two_sigma(np.array([20.0, 21.0, 22.0]), np.ones(3, bool))))
    assert got == pytest.approx(21.0 + 2.0)  # mean 21, sigma 1 (ddof 1), computed by hand
    assert history.substitute(CO2_DRY, y0 + HOUR) is None  # one valid hour of the year so far
    assert history.substitute(CO2_DRY, y0) is None  # the old year's hours do not count
    assert history.substitute(CO2_DRY, y0 - HOUR) == pytest.approx(32.5 + 2 * 0.5**0.5)  # 32 and 33


# -- the setting -----------------------------------------------------------------------------------


def test_plant_timezone_reaches_the_rules_and_a_wrong_name_is_reported() -> None:
    data = demo_plant()
    data["plants"][0]["timezone"] = "Asia/Baku"
    plant = parse_plant(data)
    assert plant.page.timezone == "Asia/Baku"  # the page shows the plant's zone
    rules = next(iter(build_runtime(plant).engine_params.rules.values()))
    assert rules.timezone == "Asia/Baku" and rules.describe()["timezone"] == "Asia/Baku"
    assert rules.year_starts_ns is not None and utc("2025-12-31T20:00Z") in rules.year_starts_ns
    assert build_runtime(parse_plant(demo_plant())).method()["calendar"].startswith("days, months")
    data["plants"][0]["timezone"] = "Asia/Bakuu"
    with pytest.raises(ConfigError) as err:
        parse_plant(data, "plant.yaml")
    assert err.value.errors == [
        "plants[0].timezone: unknown time zone 'Asia/Bakuu': expected an IANA name such as Asia/Baku "
        "(got 'Asia/Bakuu')"
    ]


def test_deprecated_page_timezone_sets_the_plants_zone_and_may_not_contradict_it() -> None:
    plant = parse_plant({**demo_plant(), "page": {"timezone": "Europe/Berlin"}})
    assert plant.plants[0].timezone == "Europe/Berlin" and plant.page.timezone == "Europe/Berlin"
    data = demo_plant()
    data["plants"][0]["timezone"] = "Asia/Baku"
    with pytest.raises(ConfigError, match=r"page\.timezone \(Europe/Berlin\) disagrees"):
        parse_plant({**data, "page": {"timezone": "Europe/Berlin"}})
    assert parse_plant({**data, "page": {"timezone": "Asia/Baku"}}).plants[0].timezone == "Asia/Baku"


def test_check_config_rejects_an_unknown_zone_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = demo_plant()
    data["plants"][0]["timezone"] = "Europe/Berlin"
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(data))
    assert cli.main(["check-config", str(good)]) == 0
    data["plants"][0]["timezone"] = "Europe/Berlinn"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    assert cli.main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: plants[0].timezone: unknown time zone 'Europe/Berlinn': expected an IANA name" in err
