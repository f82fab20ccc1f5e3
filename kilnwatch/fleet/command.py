"""``kilnwatch fleet``: the fleet report from the shared historian, as JSON or CSV.

    kilnwatch fleet --config plant-a.yaml --config plant-b.yaml --historian http://vm:8428 \
        --from 2026-01-01 --to 2026-12-31 --format csv --output fleet.csv

The plant files say which kilns belong to which plant and company (``plants[].company``) and each
plant's time zone; the historian holds their hours. Dates are UTC dates (``--to`` included) or ISO
8601 times (exclusive); hours not ended yet are not expected.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from analytics.hours import HOUR_NS
from api.csv_dialect import DIALECTS, csv_text

from ..config import ConfigError, load_plant_file
from ..report import parse_range
from .grouping import Grouping
from .totals import CSV_FIELDS, fleet_totals
from .victoria import read_hours


def add_fleet_parser(
    subparsers: Any, formatter_class: type[argparse.HelpFormatter] = argparse.HelpFormatter
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "fleet",
        help="CO2 and clinker of many plants per kiln, plant, company and fleet, from the shared historian",
        description="Sum the hours the plants' kilnwatch instances wrote to one historian "
        "(VictoriaMetrics export API) per kiln, plant, company and fleet, per month and year. Each "
        "kiln hour counts once (its newest revision); hours a kiln has not written are reported missing.",
        formatter_class=formatter_class,
    )
    p.add_argument("--config", type=Path, action="append", required=True, help="a plant file, repeatable")
    p.add_argument("--historian", required=True, help="historian URL, e.g. http://127.0.0.1:8428")
    p.add_argument("--from", dest="start", required=True, help="YYYY-MM-DD (UTC midnight) or ISO 8601")
    p.add_argument("--to", dest="end", required=True, help="YYYY-MM-DD (included) or ISO 8601 (excluded)")
    p.add_argument("--format", choices=("json", "csv"), default="json", help="JSON (all) or CSV (rows)")
    p.add_argument("--dialect", choices=DIALECTS, default="rfc4180", help="CSV dialect")
    p.add_argument("--output", type=Path, help="file to write (default: stdout)")
    p.set_defaults(func=cmd_fleet)
    return p


def fleet_report(grouping: Grouping, historian_url: str, start_ns: int, end_ns: int) -> dict[str, Any]:
    """Read the historian and sum; hours that have not ended by now are not expected."""
    t0 = time.perf_counter()
    end_ns = min(end_ns, time.time_ns() // HOUR_NS * HOUR_NS)
    read = read_hours(historian_url, start_ns, end_ns)
    report = fleet_totals(read.hours, grouping, start_ns, end_ns)
    report["historian"] = {
        "url": historian_url,
        "samples_read": read.samples,
        "kiln_hours": len(read.hours),
        "revised_kiln_hours": read.revised,
        "disagreeing_resent_samples": read.disagreeing,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return report


def cmd_fleet(args: argparse.Namespace) -> int:
    try:
        grouping = Grouping.from_plant_files(load_plant_file(p) for p in args.config)
        start_ns, end_ns = parse_range(args.start, args.end)
    except (ConfigError, ValueError) as err:
        print(f"kilnwatch fleet: {err}", file=sys.stderr)
        return 2
    try:
        report = fleet_report(grouping, args.historian, start_ns, end_ns)
    except httpx.HTTPError as err:
        print(f"kilnwatch fleet: cannot read the historian {args.historian}: {err}", file=sys.stderr)
        return 1
    if args.format == "json":
        text = json.dumps(report, indent=1) + "\n"
    else:
        text = csv_text(report["rows"], CSV_FIELDS, args.dialect)
    if args.output:
        args.output.write_text(text, encoding="utf-8", newline="")
    else:
        sys.stdout.write(text)
    missing = sum(len(v) for v in report["missing_hours"].values())
    if missing:
        print(f"kilnwatch fleet: {missing} kiln hours missing in the historian", file=sys.stderr)
    return 0
