"""The ``sums`` block of ``GET /api/v1/kpi?sums=true`` (api.kpi_report.sums_block): each kiln's
analytics.kpi.kiln_sums per period, which rolled up give the instance's own report."""

from __future__ import annotations

import json

from analytics import kpi
from api import kpi_report
from tests.unit.test_kpi import FUELS, GROUPING, PERIODS, ROWS


def _read(kiln: str, start_ns: int, end_ns: int) -> list:
    return [h for h in ROWS[kiln] if start_ns <= h.start_ns < end_ns]


def test_sums_block_rolls_up_to_the_instances_own_report() -> None:
    setup = kpi.KpiSetup(GROUPING, FUELS)
    block = json.loads(json.dumps(kpi_report.sums_block(setup, _read, PERIODS)))  # through JSON
    assert block["fields"] == list(kpi.SUM_FIELDS)
    assert [p["period"] for p in block["periods"]] == ["2026-01", "2026-02"]
    assert block["periods"][0]["end_ns"] == block["periods"][1]["start_ns"] == int(PERIODS.bounds[1])
    assert sorted(block["kilns"]) == ["A", "B", "C"]
    for level in kpi.LEVELS:
        got = kpi.report_from_sums(block["kilns"], GROUPING, PERIODS, level)  # type: ignore[arg-type]
        assert got == kpi.kpi_report(ROWS, GROUPING, FUELS, PERIODS, level)  # type: ignore[arg-type]
