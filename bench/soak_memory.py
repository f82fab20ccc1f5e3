"""Figure 8: resident memory of a running service at the start and after 20 minutes of load.

200 signals at 10 Hz, accelerated: the kiln simulator (15 demo kilns; OPC UA and MQTT through
mosquitto) runs 10x faster than real time from hours in the past, so every signal delivers 10
readings per wall second and the service closes 10 minutes per wall minute (hours included);
``kilnwatch run`` with the demo plant's layout serves them, each in its own process. The
service's RSS (``/proc/<pid>/status``, Linux), its MQTT worker process included, is read once
the service is in its steady state (the start) and after ``--minutes`` more (the end); the trend
goes to stderr every minute.

The steady state: the engine holds the last ``EngineParams.keep_minutes`` closed minutes of
every kiln in memory (360, the newest 60 with every parameter's statistics at about 7.6 KiB
each, the older ones as headlines at about 0.5 KiB), so RSS grows by design until that window
is full (36 wall minutes at 10x). The default
warm-up waits for it (``--warmup-s`` sets another); memory that still grows after it is a leak.

    RESULT soak_memory value=<end MiB> unit=MiB baseline=<start MiB> ratio=<end/start>  (goal < 1.05)

``--minutes 1`` checks the set-up quickly; the figure is the 20-minute run (``make soak``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
from common import (
    free_port,
    kiln_ids,
    kilnwatch_service,
    log,
    mosquitto,
    plant_file,
    result_line,
    simulator,
    wait_for,
)

from analytics.engine import EngineParams

SPEED = 10.0
GOAL_RATIO = 1.05


def rss_mib(pid: int) -> float:
    """RSS of a process and its child processes (kilnwatch's MQTT workers) [MiB]."""
    return sum(_own_rss_kib(p) for p in (pid, *_children(pid))) / 1024


def _own_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a process that ended meanwhile
        if ppid == pid:
            found.append(int(stat.parent.name))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=20.0, help="wall minutes between the two readings")
    parser.add_argument(
        "--warmup-s",
        type=float,
        default=None,
        help="wall seconds from the first closed minute to the start reading "
        "(default: until the engine's window of closed minutes is full)",
    )
    parser.add_argument("--signals", type=int, default=200, help="signals (13 per kiln)")
    args = parser.parse_args()
    kilns = kiln_ids(args.signals)
    window_s = EngineParams().keep_minutes * 60 / SPEED
    warmup_s = window_s + 60 if args.warmup_s is None else args.warmup_s
    total_s = warmup_s + args.minutes * 60
    # the simulated clock must stay behind the wall clock for the whole run (+10 % and 10 min)
    backfill_h = ((SPEED - 1) * total_s * 1.1 + 600) / 3600
    with tempfile.TemporaryDirectory(prefix="kw-bench-soak-") as tmp:
        work = Path(tmp)
        opcua_port, api_port = free_port(), free_port()
        with mosquitto(work) as broker:
            plant = plant_file(work, kilns, opcua_port, broker.port)
            with (
                simulator(work, kilns, opcua_port, mqtt_port=broker.port, speed=SPEED, backfill_h=backfill_h),
                kilnwatch_service(work, plant, api_port) as service,
            ):
                url = f"http://127.0.0.1:{api_port}/api/v1/kilns/{kilns[0]}/live"
                wait_for(lambda: httpx.get(url, timeout=5).json().get("time"), 180, "a first closed minute")
                log(f"soak_memory first minute: {rss_mib(service.pid):.1f} MiB; warm-up {warmup_s:.0f} s")
                time.sleep(warmup_s)
                start = rss_mib(service.pid)
                log(f"soak_memory start: {start:.1f} MiB ({len(kilns)} kilns, {SPEED:g}x)")
                began = time.monotonic()
                end_at = began + args.minutes * 60
                while (left := end_at - time.monotonic()) > 0:
                    time.sleep(min(60.0, left))
                    if service.poll() is not None:
                        raise RuntimeError(f"kilnwatch exited with {service.returncode}")
                    minute = httpx.get(url, timeout=5).json().get("time")
                    log(
                        f"soak_memory {(time.monotonic() - began) / 60:5.1f} min: "
                        f"{rss_mib(service.pid):.1f} MiB, newest minute {minute}"
                    )
                end = rss_mib(service.pid)
    result_line("soak_memory", end, "MiB", start, end / start)


if __name__ == "__main__":
    main()
