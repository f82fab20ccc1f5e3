"""``kilnwatch report``: the API's reports, written from the local store (CSV or JSON).

    kilnwatch report --kiln kiln1 --from 2026-01-01 --to 2026-01-31 --format csv --output jan.csv

Dates are local dates of the kiln's plant (its ``timezone``, or ``--tz``): ``--from 2026-03-01`` is
the plant's local midnight, a plain date in ``--to`` includes that day; an ISO 8601 time is exclusive
(without an offset it is a local time too). Days in the daily tables are local days. ``--dialect
excel-comma`` writes CSV for decimal-comma spreadsheets (semicolon, decimal comma, UTF-8 with BOM).
Ranges longer than a week show a progress bar (rich) on stderr while the store is read day by day.
JSON carries the method block; a CSV written to ``--output F`` gets it beside, as ``F.method.json``.

    kilnwatch report --table kpi --level company --period month --from 2026-01-01 --to 2026-12-31

writes the fleet KPI report of every kiln in the plant file (``GET /api/v1/kpi``); ``--format xlsx
--output kpi.xlsx`` writes the workbook with one sheet per level and the method.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from analytics import kpi, tables
from analytics.aggregates import HourAggregate
from analytics.hours import HOUR_NS
from analytics.kpi import LEVELS
from analytics.periods import DAY_NS
from analytics.plant_time import PlantClock, zone
from analytics.reporting import daily_crosscheck, daily_from_hours
from api import kpi_report
from api.csv_dialect import DIALECTS, csv_text
from collector.store.reader import StoreReader

from .config import ConfigError, PlantFile, load_plant_file, parse_plant
from .demo import demo_plant
from .kpi_setup import kpi_setup
from .plant import Runtime, build_runtime
from .settings import Settings

TABLES = ("hourly", "halfhourly", "daily", "crosscheck", "ledger")
_PROGRESS_AFTER_DAYS = 7


def add_report_parser(
    subparsers: Any, formatter_class: type[argparse.HelpFormatter] = argparse.HelpFormatter
) -> argparse.ArgumentParser:
    """Add ``report`` to the ``kilnwatch`` sub-commands."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="write hourly, half-hourly, daily or cross-check reports from the local store",
        description="Write the API's reports for one kiln from the local store, as CSV or JSON. A CSV "
        "written to --output F gets the method block beside it, as F.method.json.",
        formatter_class=formatter_class,
    )
    p.add_argument("--kiln", help="kiln id (every table but kpi)")
    p.add_argument(
        "--from", dest="start", required=True, help="YYYY-MM-DD (local midnight) or ISO 8601 (naive = local)"
    )
    p.add_argument("--to", dest="end", required=True, help="YYYY-MM-DD (included) or ISO 8601 (excluded)")
    p.add_argument(
        "--format",
        choices=("csv", "json", "xlsx"),
        default="csv",
        help="CSV (one table), JSON; xlsx: kpi only",
    )
    p.add_argument(
        "--dialect",
        choices=DIALECTS,
        default="rfc4180",
        help="CSV: rfc4180 (comma, decimal point) or excel-comma (semicolon, decimal comma, UTF-8 BOM)",
    )
    p.add_argument("--tz", help="IANA time zone of the dates and days (default: the plant's timezone)")
    p.add_argument(
        "--table",
        choices=(*TABLES, "all", "kpi"),
        default="hourly",
        help="which report; 'all': JSON only; 'kpi': the fleet KPI report (--level, --period)",
    )
    p.add_argument("--level", choices=LEVELS, default="plant", help="kpi: kiln, plant, company or fleet")
    p.add_argument("--period", choices=("month", "year", "range"), default="month", help="kpi: periods")
    p.add_argument("--output", type=Path, help="file to write (default: stdout)")
    p.add_argument("--config", type=Path, help="plant file (default: the demo plant)")
    p.add_argument(
        "--data-dir",
        type=Path,
        help="where the SQLite store lives (default: KILNWATCH_DATA_DIR, else per user)",
    )
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (shown for ranges over a week)"
    )
    p.set_defaults(func=cmd_report)
    return p


def cmd_report(args: argparse.Namespace) -> int:
    try:
        plant: PlantFile = (
            load_plant_file(args.config) if args.config else parse_plant(demo_plant(), "demo plant")
        )
    except ConfigError as err:
        print(f"kilnwatch report: {err}", file=sys.stderr)
        return 2
    runtime = build_runtime(plant)
    if args.table == "kpi":
        return cmd_kpi(args, plant, runtime)
    if args.format == "xlsx":
        print("kilnwatch report: --format xlsx is for --table kpi", file=sys.stderr)
        return 2
    if args.kiln is None:
        print("kilnwatch report: --kiln is needed (except for --table kpi)", file=sys.stderr)
        return 2
    if args.kiln not in runtime.engine_params.rules:
        print(
            f"kilnwatch report: no kiln {args.kiln!r} in the plant file; known: {sorted(runtime.kiln_names)}",
            file=sys.stderr,
        )
        return 2
    try:
        clock = PlantClock(zone(args.tz or runtime.engine_params.rules[args.kiln].timezone).key)
        start_ns, end_ns = parse_range(args.start, args.end, clock)
    except ValueError as err:
        print(f"kilnwatch report: {err}", file=sys.stderr)
        return 2
    if args.table == "all" and args.format == "csv":
        print("kilnwatch report: --table all needs --format json", file=sys.stderr)
        return 2
    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    if not settings.store_path.exists():
        print(f"kilnwatch report: no local store at {settings.store_path}", file=sys.stderr)
        return 2
    bounds = clock.days_over(start_ns, end_ns)
    reader = StoreReader(settings.store_path)
    hours = read_hours(reader, args.kiln, int(bounds[0]), int(bounds[-1]), not args.no_progress)
    report = build_report(runtime, args.kiln, hours, start_ns, end_ns, clock)
    text = render(report, args.table, args.format, args.dialect)
    if args.output:
        args.output.write_text(text, encoding="utf-8", newline="")
        if args.format == "csv":  # the rules used travel beside the table
            method = args.output.with_name(args.output.name + ".method.json")
            method.write_text(json.dumps(report["method"], indent=1) + "\n", encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_kpi(args: argparse.Namespace, plant: PlantFile, runtime: Runtime) -> int:
    """``--table kpi``: the KPI report of every kiln in the plant file, as ``GET /api/v1/kpi`` gives it."""
    first_kiln = next(iter(runtime.engine_params.rules))  # the first plant's zone
    try:
        clock = PlantClock(zone(args.tz or runtime.engine_params.rules[first_kiln].timezone).key)
        first, last = date.fromisoformat(args.start), date.fromisoformat(args.end)
    except ValueError as err:
        print(f"kilnwatch report: --table kpi takes local dates (2026-01-01): {err}", file=sys.stderr)
        return 2
    if last < first:
        print(f"kilnwatch report: --from {first} must not be after --to {last}", file=sys.stderr)
        return 2
    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    if not settings.store_path.exists():
        print(f"kilnwatch report: no local store at {settings.store_path}", file=sys.stderr)
        return 2
    if args.format == "xlsx" and args.output is None:
        print("kilnwatch report: --format xlsx needs --output", file=sys.stderr)
        return 2
    setup = kpi_setup(plant)
    periods = kpi.periods(clock, args.period, first, last)
    reader = StoreReader(settings.store_path)
    levels = LEVELS if args.format == "xlsx" else (args.level,)
    reports = {lv: kpi_report.build(setup, reader.hours, lv, periods, clock) for lv in levels}
    report = reports[args.level]
    if args.format == "xlsx":
        args.output.write_bytes(kpi_report.workbook(reports))
        return 0
    if args.format == "json":
        text = json.dumps(report, indent=1) + "\n"
    else:
        text = kpi_report.csv_of(report, args.dialect)
    if args.output:
        args.output.write_text(text, encoding="utf-8", newline="")
        if args.format == "csv":
            method = args.output.with_name(args.output.name + ".method.json")
            method.write_text(json.dumps(report["method"], indent=1) + "\n", encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def parse_range(start: str, end: str, clock: PlantClock | None = None) -> tuple[int, int]:
    """[start, end) [ns] in ``clock``'s zone (default UTC); a plain date as ``end`` means the end of
    that local day."""
    clock = clock or PlantClock()
    lo = _parse(start, False, clock)
    hi = _parse(end, True, clock)
    if lo >= hi:
        raise ValueError(f"--from {start} must be before --to {end}")
    return lo, hi


def _parse(text: str, end: bool, clock: PlantClock) -> int:
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return clock.midnight_ns(d + timedelta(days=1) if end else d)
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError) as err:
        raise ValueError(f"{text!r} is not a date (2026-01-31) or an ISO 8601 time") from err
    t = t if t.tzinfo else t.replace(tzinfo=clock.tz)
    return int(t.timestamp() * 1_000_000) * 1000


def _days(start_ns: int, end_ns: int) -> Iterator[tuple[int, int]]:
    t = start_ns
    while t < end_ns:
        nxt = min((t // DAY_NS + 1) * DAY_NS, end_ns)
        yield t, nxt
        t = nxt


def read_hours(
    reader: StoreReader, kiln: str, start_ns: int, end_ns: int, progress: bool
) -> list[HourAggregate]:
    """The kiln's stored hours of [start, end) (whole local days: the caller's bounds), read a day at a
    time."""
    days = list(_days(start_ns, end_ns))
    out: list[HourAggregate] = []
    if not progress or len(days) <= _PROGRESS_AFTER_DAYS:
        for a, b in days:
            out += reader.hours(kiln, a, b)
        return out
    columns = (
        TextColumn("reading {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} days"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(kiln, total=len(days))
        for a, b in days:
            out += reader.hours(kiln, a, b)
            bar.advance(task)
    return out


def build_report(
    runtime: Runtime,
    kiln: str,
    hours: list[HourAggregate],
    start_ns: int,
    end_ns: int,
    clock: PlantClock | None = None,
) -> dict[str, Any]:
    """Every table of the range, as the API gives them, with the kiln's method block; the daily
    tables hold the local days (``clock``, default UTC) that overlap the range."""
    clock = clock or PlantClock()
    rules = runtime.engine_params.rules[kiln]
    method = {k: v for k, v in runtime.method().items() if k != "kilns"}
    method["kiln"] = runtime.method()["kilns"].get(kiln, {})
    in_range = [h for h in hours if start_ns <= h.start_ns < end_ns]
    closed_until = max((h.start_ns + HOUR_NS for h in hours), default=start_ns)
    bounds = [int(b) for b in clock.days_over(start_ns, end_ns)]
    days = list(itertools.pairwise(bounds))
    daily = [
        d
        for a, b in days
        for d in daily_from_hours(a, hours, closed_until, rules.max_discarded_half_hours, b)
    ]
    return {
        "kiln": kiln,
        "method": method,
        "hourly": [tables.hourly_row(h, clock=clock) for h in in_range],
        "halfhourly": tables.halfhourly_rows(in_range, None, start_ns, end_ns, clock),
        "daily": tables.daily_rows(daily, clock),
        "crosscheck": [
            tables.crosscheck_row(daily_crosscheck(kiln, a, hours, rules.deviation_threshold_pct, b), clock)
            for a, b in days
        ],
        "ledger": [r for h in in_range for r in tables.ledger_rows(h, clock=clock)],
    }


def render(report: dict[str, Any], table: str, fmt: str, dialect: str = "rfc4180") -> str:
    if fmt == "json":
        body = (
            report
            if table == "all"
            else {"kiln": report["kiln"], "method": report["method"], "rows": report[table]}
        )
        return json.dumps(body, indent=1) + "\n"
    return csv_text(report[table], tables.SCHEMAS[table].csv_header, dialect)
