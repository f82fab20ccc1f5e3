"""``make bench``: figures 1-7, 9 and 14, each script in its own process, one after the other.

RESULT lines pass through to stdout as they come, everything else a script prints goes to
stderr; a script that fails or is missing is reported and the others still run. At the end, a
table of every figure against its goal (issue 7). Exit status 1 when a script failed, 0
otherwise: a figure below its goal is a finding, not an error.

    python bench/run_all.py              # figures 1-7, 9 and 14 (a few minutes)
    python bench/run_all.py --only 4,5   # some of them
"""

from __future__ import annotations

import argparse
import operator
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common import ROOT, bench_env

HERE = Path(__file__).resolve().parent
RESULT = re.compile(r"^RESULT (\S+) value=(\S+) unit=(\S+) baseline=(\S+) ratio=(\S+)$")
SCRIPT_TIMEOUT_S = 20 * 60

#: (figure, script) in the order of issue 7
FIGURES: list[tuple[int, str]] = [
    (1, "mqtt_ingest.py"),
    (2, "opcua_ingest.py"),
    (3, "influx_write.py"),
    (4, "analytics_kernel.py"),
    (5, "engine_ingest.py"),
    (6, "api_live.py"),
    (7, "live_latency.py"),
    (9, "backfill_loop_lag.py"),
    (14, "peer_mqtt_to_historian.py"),
    (15, "sparkplug_ingest.py"),  # issue 14: against a bare protobuf decode of the same messages; no goal set
    (16, "fleet_report.py"),  # issue 17 item 5: a year of 8 kilns vs the bare export; no goal
    (17, "hourly_year.py"),  # issue 16 item 2: a year of /hourly, JSON and CSV, against sqlite3 + orjson
    (18, "live_provisional_latency.py"),  # issue 16: p99 s to the running minute; goal < 1.5 s
    (19, "recompute_month.py"),  # issue 16 item 3: columnar hours against the per-hour path
]

Compare = Callable[[float, float], bool]
#: RESULT name -> (comparison of the ratio, goal): the goals of issue 7
GOALS: dict[str, tuple[str, Compare, float]] = {
    "mqtt_ingest": (">=", operator.ge, 0.7),
    "opcua_ingest": (">=", operator.ge, 0.8),
    "influx_write": (">=", operator.ge, 0.8),  # issue 16 item 7 (was 0.5)
    "analytics_kernel": (">=", operator.ge, 0.5),
    "engine_ingest": ("<=", operator.le, 1.5),
    "api_live": (">=", operator.ge, 0.6),
    "live_latency_p50": ("<", operator.lt, 1.0),
    "live_latency_p99": ("<", operator.lt, 1.0),
    "soak_memory": ("<", operator.lt, 1.05),
    # issue 16: kilnwatch against a Node-RED flow doing the same plumbing
    "peer_mqtt_to_historian": (">=", operator.ge, 1.0),
    "peer_mqtt_to_historian_mqtt311": (">=", operator.ge, 1.0),  # both ends on MQTT 3.1.1
}
#: RESULT name -> goal on the value itself (its baseline is a reference, not a ceiling)
VALUE_GOALS: dict[str, tuple[str, Compare, float]] = {
    "backfill_loop_lag": ("<", operator.lt, 100.0),
    "live_provisional_latency": ("<", operator.lt, 1.5),
    "recompute_month_speedup": (">=", operator.ge, 10.0),  # issue 16 item 3: against the per-hour path
}


@dataclass
class Outcome:
    figure: int
    script: str
    status: str = "ok"
    seconds: float = 0.0
    results: list[tuple[str, ...]] = field(default_factory=list)


def run(figure: int, script: str) -> Outcome:
    outcome = Outcome(figure, script)
    path = HERE / script
    if not path.exists():
        outcome.status = "missing"
        print(f"== figure {figure}: {script} is missing", file=sys.stderr, flush=True)
        return outcome
    print(f"== figure {figure}: {script}", file=sys.stderr, flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(path)], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=bench_env()
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            match = RESULT.match(line.strip())
            if match:
                outcome.results.append(match.groups())
                print(line.strip(), flush=True)
            else:
                print(line.rstrip("\n"), file=sys.stderr, flush=True)
        proc.wait(timeout=max(1.0, SCRIPT_TIMEOUT_S - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        outcome.status = "timed out"
    outcome.seconds = time.monotonic() - started
    if outcome.status == "ok" and proc.returncode != 0:
        outcome.status = f"failed ({proc.returncode})"
    elif outcome.status == "ok" and not outcome.results:
        outcome.status = "no RESULT"
    return outcome


def verdict(name: str, value: str, ratio: str) -> tuple[str, str]:
    goal, measured = GOALS.get(name), ratio
    if name in VALUE_GOALS:
        goal, measured = VALUE_GOALS[name], value
    if goal is None:
        return "", ""
    sign, compare, threshold = goal
    try:
        met = compare(float(measured), threshold)
    except ValueError:
        return f"{sign} {threshold:g}", "?"
    return f"{sign} {threshold:g}", "yes" if met else "NO"


def summary(outcomes: list[Outcome]) -> str:
    header = ("fig", "name", "value", "unit", "baseline", "ratio", "goal", "met", "run s")
    rows = []
    for o in outcomes:
        if not o.results:
            rows.append((str(o.figure), o.script, "-", "-", "-", "-", "-", o.status, f"{o.seconds:.0f}"))
        for name, value, unit, baseline, ratio in o.results:
            goal, met = verdict(name, value, ratio)
            rows.append((str(o.figure), name, value, unit, baseline, ratio, goal, met, f"{o.seconds:.0f}"))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help="comma-separated figure numbers (default: 1-7, 9, 14)")
    args = parser.parse_args()
    wanted = {int(f) for f in args.only.split(",")} if args.only else {f for f, _ in FIGURES}
    outcomes = [run(figure, script) for figure, script in FIGURES if figure in wanted]
    print("\n" + summary(outcomes), flush=True)
    return 0 if all(o.status == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
