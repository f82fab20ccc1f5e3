"""`kilnwatch fleet` from the historian: a year of 8 kilns (4 plants, 2 companies) read back and summed.

Starts its own victoria-metrics, writes 8760 hours of 8 kilns as the plants' outboxes do
(`kiln_hour_rev` and `kiln_hourly` points, line protocol), 10 % of them sent twice and 5 % revised,
then measures, 3 repeats after a warm-up:

- value: the fleet report (export of the `kiln_hour_rev` series, newest revision per kiln hour,
  sums per kiln, plant, company and fleet per month and year), in kiln hours per second;
- baseline: the bare export request of the same series (bytes only, no parsing), same unit.

    RESULT fleet_report value=<kiln hours/s> unit=kiln_hours/s baseline=<kiln hours/s> ratio=<value/baseline>
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.aggregates import HourAggregate
from bench.common import log, repeat_median, result_line, victoria_metrics
from collector.outputs.historian.line_protocol import KILN_HOUR_REV, aggregate_outbox_rows
from kilnwatch.fleet.grouping import Grouping, KilnRef
from kilnwatch.fleet.totals import fleet_totals
from kilnwatch.fleet.victoria import read_hours

H = 3600 * 10**9
YEAR_START = 1_735_689_600 * 10**9  # 2025-01-01T00:00Z
HOURS = 8760
KILNS = tuple(
    KilnRef(company, plant, kiln)
    for company, plant in (("north", "p1"), ("north", "p2"), ("south", "p3"), ("south", "p4"))
    for kiln in ("k1", "k2")
)


def fill(url: str) -> int:
    """Write the year; returns the number of kiln hours."""
    rng = np.random.default_rng(1)
    companies = {k.plant: k.company for k in KILNS}
    with httpx.Client(timeout=60) as client:
        for k in KILNS:
            hours = [
                HourAggregate(k.kiln, k.plant, YEAR_START + i * H, float(rng.normal(120, 5)),
                              float(rng.normal(200, 5)), None, True, 1.0, {})
                for i in range(HOURS)
            ]  # fmt: skip
            resent = [h for h in hours if rng.random() < 0.10]
            revised = [
                HourAggregate(h.kiln, h.plant, h.start_ns, (h.co2_t or 0) + 1.0, h.clinker_t, None, True, 1.0,
                              {}, 1)
                for h in hours
                if rng.random() < 0.05
            ]  # fmt: skip
            for part in (hours, resent, revised):
                for i in range(0, len(part), 2000):
                    [(_, _, body)] = aggregate_outbox_rows([], part[i : i + 2000], companies)
                    client.post(
                        f"{url}/api/v2/write", params={"bucket": "b"}, content=body
                    ).raise_for_status()
        client.get(f"{url}/internal/force_flush")
    return len(KILNS) * HOURS


def main() -> None:
    grouping = Grouping(KILNS, {k.plant: "UTC" for k in KILNS})
    end = YEAR_START + HOURS * H
    with (
        tempfile.TemporaryDirectory() as tmp,
        victoria_metrics(Path(tmp), "-search.disableCache", "-retentionPeriod=100y") as url,
    ):
        n = fill(url)
        log(f"wrote {n} kiln hours")
        expected = n

        def report() -> float:
            t0 = time.perf_counter()
            read = read_hours(url, YEAR_START, end)
            out = fleet_totals(read.hours, grouping, YEAR_START, end)
            elapsed = time.perf_counter() - t0
            fleet = next(r for r in out["rows"] if r["level"] == "fleet" and r["period"] == "2025")
            assert fleet["hours_reported"] == expected and read.disagreeing == 0, (fleet, read.disagreeing)
            log(f"fleet report {elapsed:.2f} s ({read.samples} samples, {read.revised} revised hours)")
            return n / elapsed

        def export() -> float:
            form = {"match[]": f'{{__name__=~"{KILN_HOUR_REV}_(co2_t|clinker_t|valid)"}}'}
            t0 = time.perf_counter()
            httpx.post(f"{url}/api/v1/export", data=form, timeout=120).raise_for_status()
            return n / (time.perf_counter() - t0)

        value, _ = repeat_median(report)
        baseline, _ = repeat_median(export)
        result_line("fleet_report", value, "kiln_hours/s", baseline, value / baseline)


if __name__ == "__main__":
    main()
