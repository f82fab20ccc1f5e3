"""GET /api/v1/kpi from a running service (simulators, OPC UA, SQLite store): kiln, plant, company and
fleet levels, where the plant is the sum of its kilns; CSV and the Excel workbook hold the same
numbers; targets with a baseline from the plant file and one computed from the store."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from openpyxl import load_workbook

import tests.fixtures.service as service_fixture

pytestmark = pytest.mark.integration

ADDITIVE = (
    "clinker_t", "co2_cems_t", "co2_calculated_t", "calcination_co2_t", "fuel_co2_t",
    "alternative_fossil_co2_t", "biogenic_co2_t", "gross_co2_t", "net_co2_t", "thermal_energy_gj",
    "n_hours_expected", "n_hours", "n_hours_valid", "n_hours_substituted", "n_hours_co2",
    "n_hours_intensity", "n_hours_fuels",
)  # fmt: skip
THIS_YEAR = datetime.now(UTC).year


def kpi_plant(original: Any) -> Any:
    """The demo plant in a company and a fleet; kiln2 burns a mixed fuel (half biomass); targets."""

    def plant(*args: Any, **kwargs: Any) -> dict[str, Any]:
        data = original(*args, **kwargs)
        p = data["plants"][0]
        p["company"] = "acme"
        p["cementitious_t_per_h"] = 300.0
        # baseline from the store: this year's own value, so the trajectory starts at the actual
        p["target"] = {"baseline": {"year": THIS_YEAR}, "milestones": [{"year": 2050, "reduction_pct": 100}]}
        data["companies"] = [{"id": "acme", "name": "Acme Cement"}]
        data["fleet"] = {
            "name": "association",
            "target": {
                "baseline": {"year": 2020, "value": 1000.0},
                "milestones": [{"year": 2030, "reduction_pct": 20}, {"year": 2050, "reduction_pct": 100}],
            },
        }
        fuel = p["kilns"][1]["accounting"]["fuels"][0]
        fuel["class"] = "mixed"
        fuel["biomass_fraction"] = 0.5
        return data

    return plant


def _range() -> dict[str, str]:
    today = datetime.now(UTC).date()
    return {"period": "range", "start": (today - timedelta(days=1)).isoformat(), "end": today.isoformat()}


def _rows(svc: Any, level: str, **params: str) -> list[dict[str, Any]]:
    r = svc.get("/api/v1/kpi", params={"level": level, **_range(), **params})
    assert r.status_code == 200, r.text
    return r.json()["rows"]


def _snapshot(svc: Any) -> dict[str, list[dict[str, Any]]] | None:
    """Every level, taken between two equal kiln reads (an hour closing meanwhile: try again)."""
    before = _rows(svc, "kiln")
    got = {level: _rows(svc, level) for level in ("plant", "company", "fleet")}
    got["kiln"] = _rows(svc, "kiln")
    return got if got["kiln"] == before and all(r["n_hours_intensity"] for r in before) else None


def test_kpi_levels_csv_and_workbook(start_service, monkeypatch) -> None:
    monkeypatch.setattr(service_fixture, "demo_plant", kpi_plant(service_fixture.demo_plant))
    svc = start_service(speed=600.0, backfill_h=3.0, tick_s=5.0)
    # closed hours of both kilns (under load the simulators may take minutes to get there)
    snap = svc.wait_for(lambda: _snapshot(svc), timeout=360, interval=1.0)

    kilns = snap["kiln"]
    assert [r["id"] for r in kilns] == ["kiln1", "kiln2"]
    (plant,) = snap["plant"]
    (company,) = snap["company"]
    (fleet,) = snap["fleet"]
    assert (plant["id"], company["id"], company["name"], fleet["id"]) == (
        "demo",
        "acme",
        "Acme Cement",
        "association",
    )
    for name in ADDITIVE:
        assert plant[name] == pytest.approx(kilns[0][name] + kilns[1][name]), name
    for name in (*ADDITIVE, "gross_co2_kg_per_t_clinker", "thermal_energy_mj_per_t_clinker", "deviation_pct"):
        assert company[name] == pytest.approx(plant[name]) and fleet[name] == pytest.approx(plant[name]), name
    lo, hi = sorted(k["gross_co2_kg_per_t_clinker"] for k in kilns)
    assert lo <= plant["gross_co2_kg_per_t_clinker"] <= hi  # sum / sum: between the kilns
    # kiln1 burns coal (conventional), kiln2 the same rate of a half-biomass mixed fuel
    assert kilns[0]["alternative_fuel_rate_pct"] == 0.0 and kilns[0]["biogenic_co2_t"] == 0.0
    assert kilns[1]["alternative_fuel_rate_pct"] == pytest.approx(100.0)
    assert kilns[1]["biomass_share_pct"] == pytest.approx(50.0)
    assert kilns[1]["net_co2_t"] < kilns[1]["gross_co2_t"] < kilns[1]["co2_cems_t"]
    assert 0 < plant["alternative_fuel_rate_pct"] < 100
    assert plant["cementitious_t"] == pytest.approx(300.0 * plant["n_hours_expected"] / 2)
    assert kilns[0]["cementitious_t"] is None
    assert 0 < plant["data_completeness_pct"] <= 100

    # the fleet target from the plant file: 1000 kg/t in 2020, -20 % by 2030 -> 2026: 880
    expected = 1000.0 - 200.0 * min(THIS_YEAR - 2020, 10) / 10
    assert fleet["target_value"] == pytest.approx(expected)
    assert fleet["target_on_track"] is (fleet["gross_co2_kg_per_t_clinker"] <= expected)
    assert plant["target_kpi"] == "gross_co2_kg_per_t_clinker" and kilns[0]["target_kpi"] is None

    # the plant's baseline from the store is this year's value: the yearly row sits on its trajectory
    def year_row() -> dict[str, Any] | None:
        r = svc.get("/api/v1/kpi", params={"level": "plant", "period": "year", "start": str(THIS_YEAR),
                                           "end": str(THIS_YEAR)})  # fmt: skip
        body = r.json()
        row = body["rows"][0]
        same = row["target_baseline_value"] == pytest.approx(row["gross_co2_kg_per_t_clinker"])
        return (row, body["method"]) if same else None

    row, method = svc.wait_for(year_row, timeout=120, interval=1.0)
    assert row["target_on_track"] is True and row["target_value"] == pytest.approx(
        row["target_baseline_value"]
    )
    left = 2050 - THIS_YEAR
    assert row["reduction_needed_kg_per_t_per_year"] == pytest.approx(
        row["gross_co2_kg_per_t_clinker"] / left
    )
    assert method["targets_in_force"]["plant:demo"]["baseline"]["source"].startswith("computed from")
    assert {k["name"] for k in method["kpis"]} >= {"gross_co2_kg_per_t_clinker", "biomass_share_pct"}

    # CSV and the workbook: the same numbers (taken between two equal CSV reads)
    def csv_and_book() -> tuple[list[dict[str, str]], Any] | None:
        text = svc.get("/api/v1/kpi", params={"level": "plant", **_range(), "format": "csv"}).text
        book = svc.get("/api/v1/kpi", params={"level": "plant", **_range(), "format": "xlsx"})
        again = svc.get("/api/v1/kpi", params={"level": "plant", **_range(), "format": "csv"}).text
        if text != again:
            return None
        assert book.headers["content-type"].startswith("application/vnd.openxmlformats")
        return list(csv.DictReader(io.StringIO(text))), load_workbook(io.BytesIO(book.content))

    csv_rows, wb = svc.wait_for(csv_and_book, timeout=120, interval=1.0)
    assert wb.sheetnames == ["kiln", "plant", "company", "fleet", "method"]
    sheet = list(wb["plant"].iter_rows(values_only=True))
    header, cells = list(sheet[0]), sheet[1:]
    assert header == list(csv_rows[0].keys()) and len(cells) == len(csv_rows) == 1
    numbers = 0
    for name, text_value in csv_rows[0].items():
        cell = cells[0][header.index(name)]
        if text_value == "":
            assert cell is None, name
        elif isinstance(cell, bool):
            assert text_value == str(cell), name
        elif isinstance(cell, int | float):
            assert float(text_value) == pytest.approx(cell, rel=1e-12), name
            numbers += 1
        else:
            assert str(cell) == text_value, name
    assert numbers > 20
    method_sheet = [r[0] for r in wb["method"].iter_rows(values_only=True)]
    assert "net_co2_kg_per_t_clinker" in method_sheet
