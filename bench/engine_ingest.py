"""Figure 5: readings/s through the event-time engine, and how the cost per reading grows with the plant.

For 200, 2 000 and 20 000 signals (demo kilns of 13 signals each: 15, 154 and 1 538 kilns) the
engine of the demo plant's rules ingests readings at 1 Hz per signal, one batch per event
second (every signal once), and is advanced after every batch, as the service does. The run
covers ``--minutes`` of event time that span an hour boundary, so it includes the grid
sampling, the minute accumulators and stuck check, the closing of every minute and one hour
close per kiln (with half-hours and substitution). Values come from the kiln simulator's model,
conditioned to canonical units before timing; only ``ingest`` + ``advance`` are timed.

Each size: a warm-up run, then 3 runs on a fresh engine each; the median is reported. The
figure is the cost per reading at the largest size against the smallest:

    RESULT engine_ingest value=<us/reading at 20000> unit=us/reading baseline=<us/reading at 200>
        ratio=<cost(20000)/cost(200)>          (goal: ratio <= 1.5)
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
from common import kiln_ids, log, repeat_median, result_line

from analytics.batch import NS_PER_S, ReadingBatch
from analytics.engine import EmissionsEngine
from kilnwatch.config import parse_plant
from kilnwatch.demo import demo_plant
from kilnwatch.plant import Runtime, build_runtime
from simulators.model import KilnModel

GOAL_COST_RATIO = 1.5
#: 2 minutes before a full hour [s since the epoch], so the run closes minutes and one hour.
START_S = 1_767_225_600 - 120


@dataclass
class Workload:
    runtime: Runtime
    batches: list[ReadingBatch]

    @property
    def readings(self) -> int:
        return sum(len(b) for b in self.batches)


def workload(n_signals: int, minutes: int) -> Workload:
    kilns = kiln_ids(n_signals)
    plant = parse_plant(demo_plant(opcua_port=4840, mqtt_port=None, kilns=kilns), "bench plant")
    runtime = build_runtime(plant)
    table = runtime.table
    seconds = minutes * 60
    t_ns = (START_S + np.arange(seconds, dtype=np.int64)) * NS_PER_S
    # One model for all kilns: every kiln carries the same physically consistent values.
    sample = KilnModel("kiln1", seed=1).sample(t_ns)
    keys = [s.id.split(".", 1)[1] for s in table.signals]
    values = np.stack([sample[k] for k in keys])  # [signals, seconds], configured units
    signal = np.arange(len(table), dtype=np.int32)
    quality = np.zeros(len(table), dtype=np.uint8)
    batches = []
    for i in range(seconds):
        raw = ReadingBatch(signal, np.full(len(table), t_ns[i], dtype=np.int64), values[:, i], quality)
        batches.append(runtime.conditioner.apply(raw)[0])
    return Workload(runtime, batches)


def run_once(w: Workload) -> tuple[float, int, int]:
    """CPU seconds spent in ingest + advance (this process's CPU time, so that other load on
    the machine does not count), minutes and hours closed."""
    engine = EmissionsEngine(w.runtime.table, w.runtime.kilns, w.runtime.engine_params)
    n_minutes = n_hours = 0
    started = time.process_time()
    for i, batch in enumerate(w.batches):
        now = float(i)  # the arrival clock keeps pace with event time: no source is idle
        engine.ingest(batch, now)
        out = engine.advance_all(now)  # as the service does: slice by slice until none is due
        n_minutes += len(out.minutes)
        n_hours += len(out.hours)
    return time.process_time() - started, n_minutes, n_hours


def measure(n_signals: int, minutes: int, repeats: int) -> float:
    """Median cost [us/reading] at this plant size."""
    w = workload(n_signals, minutes)
    closed: list[tuple[int, int]] = []

    def one() -> float:
        elapsed, n_min, n_hours = run_once(w)
        closed.append((n_min, n_hours))
        return elapsed / w.readings * 1e6

    cost, runs = repeat_median(one, repeats)
    n_min, n_hours = closed[-1]
    log(
        f"engine_ingest {len(w.runtime.table):>6} signals ({len(w.runtime.kilns)} kilns): "
        f"{w.readings:,} readings, {n_min} minutes and {n_hours} hours closed per run; "
        f"cost {', '.join(f'{c:.3f}' for c in runs)} us/reading -> median {cost:.3f} us/reading "
        f"= {1e6 / cost:,.0f} readings/s"
    )
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="200,2000,20000", help="signal counts, smallest first")
    parser.add_argument("--minutes", type=int, default=4, help="event minutes per run (>= 3)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    costs = {n: measure(n, max(3, args.minutes), args.repeats) for n in sizes}
    small, large = costs[sizes[0]], costs[sizes[-1]]
    for n in sizes:
        log(f"  cost({n}) / cost({sizes[0]}) = {costs[n] / small:.2f}")
    result_line("engine_ingest", large, "us/reading", small, large / small)


if __name__ == "__main__":
    main()
