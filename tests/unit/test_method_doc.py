"""docs/method.md states what the code does: its constants, defaults and worked examples follow the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from analytics import crosscheck, emissions, pollutants, rules, us_units
from analytics.corrections import M_NO2, M_SO2

from .worked_examples import WE

METHOD = Path(__file__).parents[2] / "docs" / "method.md"
TEXT = METHOD.read_text(encoding="utf-8")


def section(number: str) -> str:
    """The text of ``## § number`` up to the next section of the same level."""
    match = re.search(rf"^## § {number} .*?(?=^## § |\Z)", TEXT, flags=re.S | re.M)
    assert match, f"no § {number} in {METHOD}"
    return match.group(0)


def test_sections_are_numbered_in_order() -> None:
    numbers = [int(n) for n in re.findall(r"^## § (\d+) ", TEXT, flags=re.M)]
    assert numbers == list(range(1, len(numbers) + 1))
    headings = set(re.findall(r"^#{2,3} § (\d+(?:\.\d+)?) ", TEXT, flags=re.M))
    for cited in set(re.findall(r"§ (\d+(?:\.\d+)?)", TEXT)):
        assert cited in headings, f"§ {cited} is cited but has no heading"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("1.963483", emissions.CO2_DENSITY_KG_PER_NM3, id="co2-density"),
        pytest.param("1.571201", emissions.CO2_PER_CO, id="co-as-co2"),
        pytest.param("2.052534", M_NO2 / emissions.V_M, id="no2-ppm"),
        pytest.param("2.858214", M_SO2 / emissions.V_M, id="so2-ppm"),
        pytest.param("37.90040", us_units.SCF_PER_NM3, id="scf-per-nm3"),
    ],
)
def test_derived_factors_match_the_code(text: str, value: float) -> None:
    assert text in section("2")
    assert float(text) == pytest.approx(value, abs=0.5 * 10 ** -len(text.split(".")[1]))


def test_stated_constants_are_the_codes() -> None:
    s2 = section("2")
    for constant in (emissions.T_N_K, emissions.P_N_KPA, emissions.V_M, emissions.M_CO2, emissions.M_CO):
        assert f"| {constant} |" in s2
    assert f"| {crosscheck.MR_CAO} |" in s2 and f"| {crosscheck.MR_MGO} |" in s2
    assert f"| {crosscheck.CSI_DEFAULT_EF_T_PER_T} |" in s2
    assert f"| {crosscheck.RAW_MEAL_PER_CLINKER_DEFAULT} |" in s2
    assert f"{us_units.K_PART98_C6 * 1e7:.2f} × 10⁻⁷" in section("11")
    assert f"{us_units.K_PART75_CO2 * 1e7:.1f} × 10⁻⁷" in section("11")


def test_defaults_of_the_rules() -> None:
    s13 = section("13")
    assert rules.DEFAULT_STUCK_S == 15 * 60 and "unchanged 15 min" in s13
    assert f"clinker ≥ {rules.DEFAULT_RUNNING_MIN_CLINKER_T_PER_H:g} t/h" in s13
    assert rules.DEFAULT_OPERATING_FRACTION == 0.5 and "≥ half of the half-hour" in s13
    assert abs(pollutants.HALF_HOUR_MIN_AVAILABILITY - 2 / 3) < 1e-12 and "≥ 2/3 of points" in s13
    assert f"| {crosscheck.DEFAULT_DEVIATION_THRESHOLD_PCT:g} % |" in s13
    assert f"`max_discarded_half_hours` ({pollutants.MAX_DISCARDED_HALF_HOURS_PER_DAY};" in section("10")


def test_pollutant_table_matches_the_defaults() -> None:
    rows = re.findall(r"^\| (dust|NOx \(as NO2\)|SO2|TOC|CO) \| ([^|]+) \| ([\d.]+) \|$", section("10"), re.M)
    names = {"dust": "dust", "NOx (as NO2)": "nox", "SO2": "so2", "TOC": "toc", "CO": "co"}
    assert len(rows) == 5
    for label, elv, ci in rows:
        name = names[label]
        want = pollutants.DEFAULT_DAILY_ELV_MG_PER_NM3.get(name)
        assert (float(elv) if want is not None else None) == want, label
        assert float(ci) == pollutants.CI_FRACTION_OF_ELV[name], label


def _we_number(we: str) -> int:
    return int(we[2:])


WE_IDS: list[str] = sorted(WE.keys(), key=_we_number)


@pytest.mark.parametrize("we", WE_IDS)
def test_every_worked_example_has_a_row(we: str) -> None:
    assert re.search(rf"^\| {we} \| .+\|$", section("14"), flags=re.M), f"{we} missing from § 14"
