"""Figure 7: seconds from the end of a minute (event time) to its value in /api/v1/kilns/{id}/live.

Real time, 200 signals at 1 Hz: the kiln simulator (15 demo kilns: 6 signals each over OPC UA,
7 analyser channels each over MQTT through mosquitto) and ``kilnwatch run`` with the demo
plant's layout, each in its own process. The simulated clock is the wall clock, so a reading's
event time is when the simulator produced it.

A poller asks every kiln's live endpoint every 50 ms from ``lateness - 2 s`` after a minute's
end until every kiln shows that minute (every second otherwise); a minute's latency is the
first time it is seen minus its end. The first minute closed is the warm-up; then each of
``--minutes`` minutes (default 3) is one run over the 15 kilns: p50 and p99 per run, median
over runs. Goal: below the configured lateness + 1 s; ratio = value / goal.

    RESULT live_latency_p50 value=<s> unit=s baseline=<goal s> ratio=<value/goal>
    RESULT live_latency_p99 value=<s> unit=s baseline=<goal s> ratio=<value/goal>
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from common import (
    free_port,
    kiln_ids,
    kilnwatch_service,
    log,
    mosquitto,
    percentile,
    plant_file,
    result_line,
    simulator,
)

LATENESS_S = 10.0  # the engine's default (kilnwatch.config.EngineConfig.lateness_s)
FAST_POLL_S = 0.05
SLOW_POLL_S = 1.0
MINUTE_S = 60


def minute_start(body: dict[str, object]) -> int | None:
    t = body.get("time")
    return None if not isinstance(t, str) else round(datetime.fromisoformat(t).timestamp())


async def observe(
    base_url: str, kilns: tuple[str, ...], minutes: int, lateness_s: float
) -> list[list[float]]:
    """Latencies [s] per measured minute, one per kiln."""
    seen: dict[tuple[str, int], float] = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:

        async def poll(kiln: str) -> None:
            r = await client.get(f"/api/v1/kilns/{kiln}/live")
            start = minute_start(r.raise_for_status().json())
            if start is not None and (kiln, start) not in seen:
                seen[(kiln, start)] = time.time()

        first: int | None = None
        deadline = time.time() + (minutes + 3) * MINUTE_S
        while time.time() < deadline:
            await asyncio.gather(*(poll(k) for k in kilns))
            starts = sorted({s for (_, s) in seen})
            if first is None and starts:
                first = starts[0]  # the warm-up minute: partial, while the service starts
                log(f"live_latency: first minute closed, measuring {minutes} more")
            measured = [s for s in starts if first is not None and s > first]
            complete = [s for s in measured if all((k, s) in seen for k in kilns)]
            if len(complete) >= minutes:
                return [[seen[(k, s)] - (s + MINUTE_S) for k in kilns] for s in complete[:minutes]]
            # poll fast from shortly before the last ended minute is due until every kiln shows it
            now = time.time()
            ended = int(now // MINUTE_S) * MINUTE_S
            due = now >= ended + lateness_s - 2
            fast = due and not all((k, ended - MINUTE_S) in seen for k in kilns)
            await asyncio.sleep(FAST_POLL_S if fast else SLOW_POLL_S)
    raise TimeoutError(f"fewer than {minutes} minutes closed on every kiln within the time allowed")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--signals", type=int, default=200, help="signals (13 per kiln)")
    parser.add_argument("--minutes", type=int, default=3, help="measured minutes (runs)")
    args = parser.parse_args()
    kilns = kiln_ids(args.signals)
    goal = LATENESS_S + 1.0
    with tempfile.TemporaryDirectory(prefix="kw-bench-latency-") as tmp:
        work = Path(tmp)
        opcua_port, api_port = free_port(), free_port()
        with mosquitto(work) as broker:
            plant = plant_file(work, kilns, opcua_port, broker.port, {"lateness_s": LATENESS_S})
            with (
                simulator(work, kilns, opcua_port, mqtt_port=broker.port, speed=1.0, backfill_h=0.0),
                kilnwatch_service(work, plant, api_port),
            ):
                url = f"http://127.0.0.1:{api_port}"
                runs = asyncio.run(observe(url, kilns, args.minutes, LATENESS_S))
    p50 = [percentile(r, 50) for r in runs]
    p99 = [percentile(r, 99) for r in runs]
    for i, r in enumerate(runs):
        log(
            f"live_latency minute {i + 1}: {len(r)} kilns, min {min(r):.2f} s, p50 {p50[i]:.2f} s, "
            f"p99 {p99[i]:.2f} s, max {max(r):.2f} s"
        )
    v50, v99 = statistics.median(p50), statistics.median(p99)
    result_line("live_latency_p50", v50, "s", goal, v50 / goal)
    result_line("live_latency_p99", v99, "s", goal, v99 / goal)


if __name__ == "__main__":
    main()
