"""Fleet totals from kiln hours: sums per kiln, plant, company and fleet, per plant-local month and
year, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest

from kilnwatch.config import parse_plant
from kilnwatch.demo import demo_plant
from kilnwatch.fleet.grouping import Grouping, KilnRef
from kilnwatch.fleet.totals import KilnHour, fleet_totals

H = 3600 * 10**9
#: 2026-01-31T22:00Z: hours 22 and 23 UTC are January in UTC, February 01:00/02:00 in Asia/Baku (+4)
JAN31_22 = 1_769_896_800 * 10**9

A1, A2 = KilnRef("acme", "pa", "k1"), KilnRef("acme", "pa", "k2")
B1 = KilnRef("acme", "pb", "k1")  # same kiln id as A1, another plant
C1 = KilnRef("beta", "pc", "k1")
GROUPING = Grouping((A1, A2, B1, C1), {"pa": "UTC", "pb": "UTC", "pc": "Asia/Baku"})

# (kiln, hour index from JAN31_22, co2 t, clinker t)
HOURS = [
    (A1, 0, 100.0, 200.0),
    (A1, 1, 110.0, 210.0),
    (A2, 0, 50.0, 100.0),
    (A2, 1, None, 100.0),  # no CO2 number: counted in hours_without_co2
    (B1, 0, 80.0, 160.0),  # B1 hour 1 missing
    (C1, 0, 90.0, 180.0),
    (C1, 1, 95.0, 190.0),
]

# (level, company, plant, kiln, period) -> (co2, clinker, expected, reported, missing, without co2)
EXPECTED = {
    ("kiln", "acme", "pa", "k1", "2026-01"): (210.0, 410.0, 2, 2, 0, 0),
    ("kiln", "acme", "pa", "k2", "2026-01"): (50.0, 200.0, 2, 2, 0, 1),
    ("kiln", "acme", "pb", "k1", "2026-01"): (80.0, 160.0, 2, 1, 1, 0),
    ("kiln", "beta", "pc", "k1", "2026-02"): (185.0, 370.0, 2, 2, 0, 0),  # Baku: already February
    ("plant", "acme", "pa", "", "2026-01"): (260.0, 610.0, 4, 4, 0, 1),
    ("plant", "acme", "pb", "", "2026"): (80.0, 160.0, 2, 1, 1, 0),
    ("company", "acme", "", "", "2026-01"): (340.0, 770.0, 6, 5, 1, 1),
    ("company", "beta", "", "", "2026-01"): None,  # no January hour in Baku
    ("company", "beta", "", "", "2026"): (185.0, 370.0, 2, 2, 0, 0),
    ("fleet", "", "", "", "2026-01"): (340.0, 770.0, 6, 5, 1, 1),
    ("fleet", "", "", "", "2026-02"): (185.0, 370.0, 2, 2, 0, 0),
    ("fleet", "", "", "", "2026"): (525.0, 1140.0, 8, 7, 1, 1),
}


def _report() -> dict:
    hours = [KilnHour(k, JAN31_22 + i * H, co2, clinker) for k, i, co2, clinker in HOURS]
    hours.append(KilnHour(KilnRef("x", "px", "k9"), JAN31_22, 1.0, 1.0))  # not in the grouping
    hours.append(KilnHour(A1, JAN31_22 + 2 * H, 1.0, 1.0))  # outside the range
    # C1's company per its points is another: the plant files decide, C1 stays beta's
    hours = [KilnHour(KilnRef("old", h.kiln.plant, h.kiln.kiln), h.start_ns, h.co2_t, h.clinker_t)
             if h.kiln == C1 else h for h in hours]  # fmt: skip
    return fleet_totals(hours, GROUPING, JAN31_22, JAN31_22 + 2 * H)


Key = tuple[str, str, str, str, str]


@pytest.mark.parametrize(("key", "want"), list(EXPECTED.items()))
def test_sums_per_level_and_period(key: Key, want: tuple[float, ...] | None) -> None:
    rows = {(r["level"], r["company"], r["plant"], r["kiln"], r["period"]): r for r in _report()["rows"]}
    if want is None:
        assert key not in rows
        return
    r = rows[key]
    got = (
        r["co2_t"],
        r["clinker_t"],
        r["hours_expected"],
        r["hours_reported"],
        r["hours_missing"],
        r["hours_without_co2"],
    )
    assert got == want
    assert r["intensity_kg_per_t"] == pytest.approx(want[0] / want[1] * 1000.0)


def test_missing_and_unknown_hours_are_reported() -> None:
    report = _report()
    assert report["missing_hours"] == {"pb/k1": ["2026-01-31T23:00:00Z"]}
    assert report["unknown_kiln_hours"] == 1


def test_no_clinker_gives_no_intensity_and_nan_counts_as_no_number() -> None:
    g = Grouping((A1,), {"pa": "UTC"})
    report = fleet_totals([KilnHour(A1, JAN31_22, math.nan, 0.0)], g, JAN31_22, JAN31_22 + H)
    fleet = next(r for r in report["rows"] if r["level"] == "fleet" and r["period"] == "2026")
    assert (fleet["co2_t"], fleet["intensity_kg_per_t"], fleet["hours_without_co2"]) == (0.0, None, 1)


def test_grouping_from_plant_files_reads_the_company() -> None:
    a, b = demo_plant(), demo_plant()
    a["plants"][0].update(id="pa", company="acme")
    b["plants"][0].update(id="pb", company="beta", timezone="Europe/Berlin")
    g = Grouping.from_plant_files([parse_plant(a), parse_plant(b)])
    assert [(k.company, k.plant, k.kiln) for k in g.kilns] == [
        ("acme", "pa", "kiln1"),
        ("acme", "pa", "kiln2"),
        ("beta", "pb", "kiln1"),
        ("beta", "pb", "kiln2"),
    ]
    assert g.timezones == {"pa": "UTC", "pb": "Europe/Berlin"}
    with pytest.raises(ValueError, match="two plant files"):
        Grouping.from_plant_files([parse_plant(a), parse_plant(a)])
