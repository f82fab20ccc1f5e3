"""Figure 6: requests/s of /api/v1/kilns/{id}/live with 50 concurrent connections.

Two servers, each in its own process with the same uvicorn settings (uvloop, httptools, no
access log, no lifespan, as the service runs its API):

- value: kilnwatch's app (``api.app.create_app``) over a demo-plant engine that has closed
  minutes and holds every signal's latest value, serving ``/api/v1/kilns/kiln1/live``;
- baseline: a bare FastAPI app whose one endpoint returns a constant ``{"status": "ok"}``.

The load comes from ``wrk`` (Debian package) with one thread and 50 connections; without
wrk, from an aiohttp client with 50 concurrent workers (itself then a limit on 2 cores).
Each server gets a warm-up, then 3 runs of ``--seconds``, alternating; medians.

    RESULT api_live value=<req/s> unit=req/s baseline=<req/s> ratio=<value/baseline>

``python bench/api_live.py --serve live|bare --port N`` runs one of the servers alone.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
import uvicorn
from common import HOST, accepting, cpu_seconds, free_port, log, process, python, result_line, wait_for
from fastapi import FastAPI

from analytics.batch import NS_PER_S, ReadingBatch
from analytics.engine import EmissionsEngine
from kilnwatch.config import parse_plant
from kilnwatch.demo import demo_plant
from kilnwatch.plant import build_runtime
from simulators.model import KilnModel

CONNECTIONS = 50
LIVE_PATH = "/api/v1/kilns/kiln1/live"
BARE_PATH = "/const"
UVICORN = {"loop": "uvloop", "http": "httptools", "lifespan": "off", "access_log": False}


def live_app(data_dir: Path) -> Any:
    """kilnwatch's API over an engine fed with 3 minutes of the demo kilns' readings."""
    from api.app import create_app
    from api.context import ApiContext
    from collector.health import HealthRegistry
    from collector.metrics import Metrics
    from collector.store.local import LocalStore
    from collector.store.reader import StoreReader

    runtime = build_runtime(parse_plant(demo_plant(), "demo plant"))
    engine = EmissionsEngine(runtime.table, runtime.kilns, runtime.engine_params)
    now_s = time.time_ns() // NS_PER_S
    t_ns = (now_s - 180 + np.arange(180, dtype=np.int64)) * NS_PER_S
    sample = KilnModel("kiln1").sample(t_ns)
    keys = [s.id.split(".", 1)[1] for s in runtime.table.signals]
    n = len(keys)
    for i, t in enumerate(t_ns.tolist()):
        raw = ReadingBatch.from_columns(
            np.arange(n), np.full(n, t), [sample[k][i] for k in keys], np.zeros(n)
        )
        engine.ingest(runtime.conditioner.apply(raw)[0], float(i))
        engine.advance(float(i))
    if engine.newest_minute("kiln1") is None:
        raise RuntimeError("the engine closed no minute")
    LocalStore(data_dir / "api.sqlite3", runtime.table.ids).close()
    metrics = Metrics()
    context = ApiContext(
        table=runtime.table,
        kilns=runtime.kilns,
        live=engine,
        history=StoreReader(data_dir / "api.sqlite3"),
        readiness=HealthRegistry(),
        registry=metrics.registry,
        method=runtime.method(),
        kiln_names=runtime.kiln_names,
    )
    return create_app(context)


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.get(BARE_PATH)
    async def const() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(kind: str, port: int) -> None:
    with tempfile.TemporaryDirectory(prefix="kw-bench-api-") as tmp:
        app = live_app(Path(tmp)) if kind == "live" else bare_app()
        uvicorn.run(app, host=HOST, port=port, log_level="warning", **UVICORN)  # type: ignore[arg-type]


def wrk_rate(url: str, seconds: float) -> tuple[float, int]:
    """Requests/s and requests done."""
    wrk = shutil.which("wrk")
    assert wrk is not None
    args = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", url]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"{url} answered with errors:\n{out}")
    rate = re.search(r"Requests/sec:\s*([\d.]+)", out)
    done = re.search(r"(\d+) requests in", out)
    if rate is None or done is None:
        raise RuntimeError(f"no rate in wrk's output:\n{out}")
    return float(rate.group(1)), int(done.group(1))


def aiohttp_rate(url: str, seconds: float) -> tuple[float, int]:
    """Requests/s and requests done."""

    async def run() -> tuple[float, int]:
        done = 0
        deadline = time.perf_counter() + seconds
        conn = aiohttp.TCPConnector(limit=CONNECTIONS)
        async with aiohttp.ClientSession(connector=conn) as session:

            async def worker() -> None:
                nonlocal done
                while time.perf_counter() < deadline:
                    async with session.get(url) as r:
                        await r.read()
                        r.raise_for_status()
                    done += 1

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
            return done / (time.perf_counter() - started), done

    return asyncio.run(run())


def measure(
    load: Callable[[str, float], tuple[float, int]], url: str, pid: int, seconds: float
) -> tuple[float, float]:
    """Requests/s, and the server's CPU time per request [us] (other load on the machine aside)."""
    cpu = cpu_seconds(pid)
    rate, done = load(url, seconds)
    return rate, (cpu_seconds(pid) - cpu) / max(done, 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--serve", choices=["live", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    load = wrk_rate if shutil.which("wrk") else aiohttp_rate
    log(f"api_live: load from {'wrk' if load is wrk_rate else 'aiohttp (wrk not installed)'}")
    with tempfile.TemporaryDirectory(prefix="kw-bench-api-") as tmp:
        ports = {"live": free_port(), "bare": free_port()}
        here = str(Path(__file__).resolve())
        with (
            process(
                [python(), here, "--serve", "live", "--port", str(ports["live"])],
                Path(tmp) / "live.log",
                lambda: accepting(ports["live"]),
                "live API server",
            ) as live,
            process(
                [python(), here, "--serve", "bare", "--port", str(ports["bare"])],
                Path(tmp) / "bare.log",
                lambda: accepting(ports["bare"]),
                "bare FastAPI server",
            ) as bare,
        ):
            live_url = f"http://{HOST}:{ports['live']}{LIVE_PATH}"
            bare_url = f"http://{HOST}:{ports['bare']}{BARE_PATH}"
            body = wait_for(lambda: httpx.get(live_url, timeout=5).json(), 30, "the live endpoint")
            if body.get("time") is None or not body.get("signals"):
                raise RuntimeError(f"the live endpoint has no closed minute: {body}")
            load(live_url, 2)  # warm-up
            load(bare_url, 2)
            value, base, cpu_live, cpu_bare = [], [], [], []
            for i in range(args.repeats):
                rate, cpu = measure(load, live_url, live.pid, args.seconds)
                value.append(rate)
                cpu_live.append(cpu)
                rate, cpu = measure(load, bare_url, bare.pid, args.seconds)
                base.append(rate)
                cpu_bare.append(cpu)
                log(
                    f"api_live run {i + 1}: live {value[-1]:,.0f} req/s ({cpu_live[-1]:.0f} us CPU/request), "
                    f"bare {base[-1]:,.0f} req/s ({cpu_bare[-1]:.0f} us CPU/request)"
                )
    c_live, c_bare = statistics.median(cpu_live), statistics.median(cpu_bare)
    log(f"api_live server CPU per request: live {c_live:.0f} us, bare {c_bare:.0f} us: {c_bare / c_live:.2f}")
    v, b = statistics.median(value), statistics.median(base)
    result_line("api_live", v, "req/s", b, v / b)


if __name__ == "__main__":
    main()
