"""Recomputing a month of hourly aggregates for two kilns from minute data.

The minute aggregates are the engine's own: two demo kilns run through the engine for
``--hours`` of simulated data (the simulator's model at 1 Hz, with analyser faults and flow
dropouts so that some hours need substitution), then repeated with shifted times to fill 30 days
(43 200 minutes per kiln). With ``--store`` they also go through the local store and back, as a
reprocessing after a rules change would read them (that round trip is printed, not timed).

Timed (median of 3, CPU time): ``EmissionsEngine.rebuild_hours`` for both kilns from the minutes
held as columns (:class:`analytics.minute_columns.MinuteColumns`, one vectorised pass per kiln),
i.e. hours with their ledger, half-hours, reporting convention and the C_mean + 2 sigma /
mass-balance substitution in time order. Baseline: a plain numpy pass over the same minute arrays
(valid-point sums and counts per parameter, reshaped to hours) that gives the hourly means,
availabilities and CO2 without any of the rest.

Also measured in the same run: the per-hour path (``KilnAccounting.hour`` per hour, as
``rebuild_hours`` worked before; the hours must come out equal, field for field), the turning of
the minute objects into columns, and the largest event-loop lag while the columnar rebuild runs on
a worker thread (a 10 ms sleep loop on the event loop, as in backfill_loop_lag.py).

    RESULT recompute_month value=<s> unit=s baseline=<s> ratio=<value/baseline>
    RESULT recompute_month_speedup value=<per-hour s / value> unit=x baseline=<per-hour s> ratio=<same>
    RESULT recompute_month_loop_lag value=<max lag ms> unit=ms baseline=<max lag ms, idle> ratio=...
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import log, repeat_median, result_line

from analytics.aggregates import HourAggregate, MinuteAggregate
from analytics.batch import NS_PER_S, ReadingBatch
from analytics.emissions import CO2_DENSITY_KG_PER_NM3
from analytics.engine import EmissionsEngine
from analytics.hours import HOUR_NS
from analytics.minute_columns import MinuteColumns
from collector.store.local import LocalStore
from collector.store.reader import StoreReader
from kilnwatch.config import parse_plant
from kilnwatch.demo import demo_plant
from kilnwatch.plant import Runtime, build_runtime
from simulators.model import SIGNAL_KEYS, KilnModel

KILNS = ("kiln1", "kiln2")
DAYS = 30
START_S = 1_767_225_600  # 2026-01-01T00:00Z
PARAMS = ("flow_n_dry", "co2_dry", "co_dry", "clinker_rate")


def runtime() -> Runtime:
    plant = demo_plant(opcua_port=4840, mqtt_port=None, kilns=KILNS)
    for k in plant["plants"][0]["kilns"]:
        k["accounting"] = {
            "fuels": [
                {"name": "coal", "signal": f"{k['id']}.fuel.rate", "ncv_gj_per_t": 25.8, "ef_t_per_tj": 94.6}
            ]
        }
    return build_runtime(parse_plant(plant, "bench plant"))


def simulated_minutes(rt: Runtime, hours: int) -> dict[str, list[MinuteAggregate]]:
    """``hours`` of 1-Hz model data through the engine; every 5th hour a 20-min analyser fault,
    every 7th a 15-min flow dropout."""
    engine = EmissionsEngine(rt.table, rt.kilns, rt.engine_params)
    out: dict[str, list[MinuteAggregate]] = {k: [] for k in KILNS}
    for h in range(hours):
        t = (START_S + h * 3600 + np.arange(3600 + (120 if h == hours - 1 else 0), dtype=np.int64)) * NS_PER_S
        parts = []
        for kiln in KILNS:
            values = KilnModel(kiln, seed=7).sample(t)
            for key in SIGNAL_KEYS:
                quality = np.zeros(len(t), np.uint8)
                if h % 5 == 2 and key in ("stack.co2", "stack.co", "stack.h2o", "stack.o2", "stack.nox"):
                    quality[600:1800] = 2 | 16  # bad, fault
                if h % 7 == 3 and key == "stack.flow":
                    quality[300:1200] = 2 | 128  # bad, comm loss
                sig = np.full(len(t), rt.table.index(f"{kiln}.{key}"), np.int32)
                parts.append(ReadingBatch(sig, t, values[key], quality))
        engine.ingest(rt.conditioner.apply(ReadingBatch.concat(parts))[0])
        for m in engine.advance_all().minutes:
            out[m.kiln].append(m)
    return out


def month(minutes: list[MinuteAggregate], hours: int) -> list[MinuteAggregate]:
    """The simulated block repeated to 30 days with shifted start times (parameters shared)."""
    block = [m for m in minutes if m.start_ns < (START_S + hours * 3600) * NS_PER_S]
    span = hours * 3600 * NS_PER_S
    return [
        dataclasses.replace(m, start_ns=m.start_ns + i * span)
        for i in range(DAYS * 24 // hours)
        for m in block
    ]


def numpy_baseline(arrays: dict[str, tuple[np.ndarray, np.ndarray]], expected: int) -> np.ndarray:
    """Hourly means, availability and CO2 [t] from per-minute valid counts and sums."""
    n_valid = {p: a[0].reshape(-1, 60).sum(axis=1) for p, a in arrays.items()}
    sums = {p: a[1].reshape(-1, 60).sum(axis=1) for p, a in arrays.items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        means = {p: sums[p] / n_valid[p] for p in arrays}
    available = {p: n_valid[p] / expected for p in arrays}
    valid = (available["flow_n_dry"] >= 0.8) & (available["co2_dry"] >= 0.8)
    co2 = means["flow_n_dry"] * means["co2_dry"] / 100 * CO2_DENSITY_KG_PER_NM3 / 1000
    co2 += means["flow_n_dry"] * means["co_dry"] * 44.0095 / 28.0101 * 1e-9
    return np.where(valid, co2, np.nan)


def minute_arrays(minutes: list[MinuteAggregate]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for p in PARAMS:
        n = np.array([m.params[p].n_valid for m in minutes], dtype=float)
        s = np.array([(m.params[p].mean or 0.0) * m.params[p].n_valid for m in minutes])
        out[p] = (n, s)
    return out


def through_store(
    rt: Runtime, per_kiln: dict[str, list[MinuteAggregate]]
) -> dict[str, list[MinuteAggregate]]:
    """Write the minutes to a local store and read them back, as a reprocessing would."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.sqlite3"
        store = LocalStore(path, rt.table.ids)
        started = time.perf_counter()
        for minutes in per_kiln.values():
            store.write_aggregates(minutes, [])
        store.close()
        written_s = time.perf_counter() - started
        reader = StoreReader(path)
        end = (START_S + DAYS * 86400) * NS_PER_S
        started = time.perf_counter()
        loaded = {k: reader.minutes(k, START_S * NS_PER_S, end) for k in KILNS}
        load_s = time.perf_counter() - started
    n = sum(len(v) for v in loaded.values())
    log(f"{n} minute aggregates: written to the store in {written_s:.1f} s, read back in {load_s:.1f} s")
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--hours", type=int, default=6, help="simulated hours repeated to a month (divides 720)"
    )
    parser.add_argument(
        "--store",
        action="store_true",
        help="also write the minutes to a local store and read them back (slow)",
    )
    args = parser.parse_args()
    rt = runtime()
    log(f"simulating {args.hours} h of 2 kilns through the engine ...")
    simulated = simulated_minutes(rt, args.hours)
    per_kiln = {k: month(v, args.hours) for k, v in simulated.items()}
    loaded = through_store(rt, per_kiln) if args.store else per_kiln

    columns = {}
    started = time.process_time()
    for k in KILNS:
        got = MinuteColumns.from_minutes(loaded[k])
        assert got is not None, "the month's minutes do not fit columns"
        columns[k] = got
    log(f"minute objects to columns: {time.process_time() - started:.2f} s CPU (not timed below)")

    def rebuild() -> float:
        engine = EmissionsEngine(rt.table, rt.kilns, rt.engine_params)
        t = time.process_time()
        hours = {k: engine.rebuild_hours(k, columns[k]) for k in KILNS}
        spent = time.process_time() - t
        assert all(len(h) == DAYS * 24 for h in hours.values())
        return spent

    def per_hour() -> float:
        engine = EmissionsEngine(rt.table, rt.kilns, rt.engine_params)
        t = time.process_time()
        for k in KILNS:
            per_hour_rebuild(engine, k, loaded[k])
        return time.process_time() - t

    arrays = {k: minute_arrays(loaded[k]) for k in KILNS}
    expected = rt.engine_params.points_per_minute * 60

    def baseline() -> float:
        t = time.process_time()
        for _ in range(100):
            for k in KILNS:
                numpy_baseline(arrays[k], expected)
        return (time.process_time() - t) / 100

    check_equal(rt, loaded, columns)
    value, runs = repeat_median(rebuild)
    base, _ = repeat_median(baseline)
    old = per_hour()  # one run: it is the slow one (and the equality check warmed it up)
    engine = EmissionsEngine(rt.table, rt.kilns, rt.engine_params)
    hours = engine.rebuild_hours("kiln1", columns["kiln1"])
    substituted = sum(h.co2_t_substituted for h in hours)
    log(
        f"rebuild runs {[round(r, 3) for r in runs]} s; {substituted} of {len(hours)} kiln1 hours substituted"
    )
    log(f"per-hour path (as before): {old:.2f} s; speed-up {old / value:.1f}x")
    per_hour_ms = value / (2 * DAYS * 24) * 1e3
    log(f"per hour: {per_hour_ms:.3f} ms; numpy pass over the same arrays: {base * 1e3:.2f} ms in all")
    lag, idle_lag = asyncio.run(loop_lag_during(rt, columns))
    log(f"largest event-loop lag: {lag:.1f} ms with the rebuild on a worker thread, {idle_lag:.1f} ms idle")
    result_line("recompute_month", value, "s", base, value / base)
    result_line("recompute_month_speedup", old / value, "x", old, old / value)
    result_line("recompute_month_loop_lag", lag, "ms", idle_lag, lag / idle_lag if idle_lag else 0.0)


def per_hour_rebuild(
    engine: EmissionsEngine, kiln: str, minutes: list[MinuteAggregate]
) -> list[HourAggregate]:
    """The hours one by one through ``KilnAccounting.hour``, as ``rebuild_hours`` did before."""
    acct = engine.kilns[kiln].acct
    by_hour: dict[int, list[MinuteAggregate]] = {}
    for m in minutes:
        by_hour.setdefault(m.start_ns // HOUR_NS * HOUR_NS, []).append(m)
    return [acct.hour(h, sorted(by_hour[h], key=lambda m: m.start_ns), 0) for h in sorted(by_hour)]


def check_equal(
    rt: Runtime, loaded: dict[str, list[MinuteAggregate]], columns: dict[str, MinuteColumns]
) -> None:
    """The columnar hours are the per-hour path's, field for field (and key order)."""
    old_engine = EmissionsEngine(rt.table, rt.kilns, rt.engine_params)
    new_engine = EmissionsEngine(rt.table, rt.kilns, rt.engine_params)
    for k in KILNS:
        old = [h.to_dict() for h in per_hour_rebuild(old_engine, k, loaded[k])]
        new = [h.to_dict() for h in new_engine.rebuild_hours(k, columns[k])]
        if repr(old) != repr(new):
            bad = sum(repr(a) != repr(b) for a, b in zip(old, new, strict=True))
            raise SystemExit(f"{k}: {bad} of {len(old)} hours differ from the per-hour path")
    log("columnar hours equal the per-hour path's (both kilns, every field)")


async def loop_lag_during(rt: Runtime, columns: dict[str, MinuteColumns]) -> tuple[float, float]:
    """Largest lag [ms] of a 10 ms sleep loop while the rebuild runs on a worker thread, and
    over the same time with nothing else running."""
    engine = EmissionsEngine(rt.table, rt.kilns, rt.engine_params)
    loop = asyncio.get_running_loop()

    async def probe(done: Callable[[], bool]) -> float:
        worst = 0.0
        while not done():
            t = loop.time()
            await asyncio.sleep(0.01)
            worst = max(worst, loop.time() - t - 0.01)
        return worst * 1e3

    started = loop.time()
    job = asyncio.ensure_future(
        asyncio.to_thread(lambda: [engine.rebuild_hours(k, columns[k]) for k in KILNS])
    )
    lag = await probe(job.done)
    await job
    idle_until = loop.time() + max(loop.time() - started, 0.2)
    idle = await probe(lambda: loop.time() >= idle_until)
    return lag, idle


if __name__ == "__main__":
    main()
