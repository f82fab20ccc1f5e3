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
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from analytics import kpi
from analytics.hours import HOUR_NS
from api.csv_dialect import DIALECTS, csv_text
from api.kpi_report import workbook

from ..config import ConfigError, load_plant_file
from ..report import parse_range
from .grouping import Grouping
from .instances import TOKEN_ENV, fleet_kpi_report, merged_setup
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
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--historian", help="historian URL, e.g. http://127.0.0.1:8428")
    src.add_argument(
        "--from-instances",
        nargs="+",
        metavar="URL",
        help="the plants' kilnwatch URLs: the full KPI report (analytics.kpi) from their kiln sums; "
        f"${TOKEN_ENV}, when set, is sent as a Bearer token",
    )
    p.add_argument("--from", dest="start", required=True, help="YYYY-MM-DD (UTC midnight) or ISO 8601")
    p.add_argument("--to", dest="end", required=True, help="YYYY-MM-DD (included) or ISO 8601 (excluded)")
    p.add_argument(
        "--format",
        choices=("json", "csv", "xlsx"),
        default="json",
        help="JSON (all) or CSV (rows); xlsx: --from-instances only",
    )
    p.add_argument(
        "--period",
        choices=("month", "year", "range"),
        default="month",
        help="--from-instances: KPI periods (local, of --tz)",
    )
    p.add_argument("--tz", help="--from-instances: time zone of the periods (default: the first plant's)")
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
    if args.from_instances:
        return cmd_fleet_instances(args)
    if args.format == "xlsx":
        print("kilnwatch fleet: --format xlsx needs --from-instances", file=sys.stderr)
        return 2
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


def cmd_fleet_instances(args: argparse.Namespace) -> int:
    """The KPI report from the instances; exit 1 only when none answered."""
    try:
        files = [load_plant_file(p) for p in args.config]
        setup = merged_setup(files)
        first, last = date.fromisoformat(args.start[:10]), date.fromisoformat(args.end[:10])
        if last < first:
            raise ValueError(f"--to {args.end} is before --from {args.start}")
        tz = args.tz or next((p.timezone for pf in files for p in pf.plants), "UTC")
    except (ConfigError, ValueError) as err:
        print(f"kilnwatch fleet: {err}", file=sys.stderr)
        return 2
    report = fleet_kpi_report(setup, args.from_instances, args.period, first, last, tz)
    failed = [i for i in report["instances"] if not i["ok"]]
    for i in failed:
        print(f"kilnwatch fleet: instance {i['url']} did not answer: {i['error']}", file=sys.stderr)
    if report["missing_kilns"]:
        print(f"kilnwatch fleet: kilns missing: {', '.join(report['missing_kilns'])}", file=sys.stderr)
    for d in report["duplicated_kilns"]:
        print(f"kilnwatch fleet: kiln reported by two instances: {d}", file=sys.stderr)
    if report["unknown_kilns"]:
        print(
            f"kilnwatch fleet: kilns not in the plant files, left out: {report['unknown_kilns']}",
            file=sys.stderr,
        )
    if len(failed) == len(report["instances"]):
        print("kilnwatch fleet: no instance answered", file=sys.stderr)
        return 1
    by_level = report.pop("by_level")
    data: bytes
    if args.format == "xlsx":
        data = workbook({lv: {"method": report["method"], "rows": rows} for lv, rows in by_level.items()})
    elif args.format == "csv":
        data = csv_text(report["rows"], list(kpi.COLUMNS), args.dialect).encode("utf-8")
    else:
        data = (json.dumps(report, indent=1) + "\n").encode("utf-8")
    if args.output:
        args.output.write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
    return 0
