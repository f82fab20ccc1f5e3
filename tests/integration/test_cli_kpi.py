"""``kilnwatch report --table kpi`` on the store of tests/integration/test_cli_report.py (two hours of
kiln1 written by the service): the KPI rows add up the API's hours; the workbook opens."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from kilnwatch import cli
from tests.integration.test_cli_report import store  # noqa: F401  (the module's store fixture)

pytestmark = pytest.mark.integration


def _argv(data_dir: Path, out: Path, *more: str) -> list[str]:
    return [
        "report", "--table", "kpi", "--from", "2026-01-01", "--to", "2026-02-28",
        "--output", str(out), "--data-dir", str(data_dir), *more,
    ]  # fmt: skip


def test_kpi_csv_and_workbook_from_the_store(
    store: tuple[Path, list[dict[str, Any]]],  # noqa: F811
    tmp_path: Path,
) -> None:
    data_dir, hours = store
    out = tmp_path / "kpi.csv"
    assert cli.main(_argv(data_dir, out, "--level", "kiln", "--format", "csv")) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["id"], r["period"]) for r in rows] == [
        ("kiln1", "2026-01"), ("kiln1", "2026-02"), ("kiln2", "2026-01"), ("kiln2", "2026-02"),
    ]  # fmt: skip
    jan = rows[0]
    assert float(jan["clinker_t"]) == pytest.approx(sum(h["clinker_t"] for h in hours), rel=1e-12)
    assert float(jan["co2_cems_t"]) == pytest.approx(sum(h["co2_t"] for h in hours), rel=1e-12)
    assert int(jan["n_hours"]) == len(hours) and int(jan["n_hours_expected"]) == 744
    assert 700 < float(jan["gross_co2_kg_per_t_clinker"]) < 950
    assert out.with_name("kpi.csv.method.json").exists()

    book = tmp_path / "kpi.xlsx"
    assert cli.main(_argv(data_dir, book, "--format", "xlsx")) == 0
    wb = load_workbook(book)
    assert wb.sheetnames == ["kiln", "plant", "company", "fleet", "method"]
    plant = list(wb["plant"].iter_rows(values_only=True))
    header = list(plant[0])
    assert plant[1][header.index("clinker_t")] == pytest.approx(float(jan["clinker_t"]), rel=1e-12)


def test_kpi_needs_local_dates(store: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:  # noqa: F811
    argv = _argv(store[0], tmp_path / "x.csv")
    argv[argv.index("2026-01-01")] = "2026-01-01T00:00"
    assert cli.main(argv) == 2
