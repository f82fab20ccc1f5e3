"""Issue 16 item 2: a year of one kiln's hourly rows through the API, as JSON and as CSV.

The store holds 8 760 hours (2025) of one demo kiln: hours the engine computed from the simulator's
model, repeated with shifted times (``tests/unit/report_store.py``). The API runs in its own process
under uvicorn on 127.0.0.1 (the service's settings: uvloop, httptools, no access log); the client is
the standard library's ``http.client`` in this process, reading the whole body over one kept-alive
connection (httpx, which the tests use, adds 20-40 ms of its own per 10 MB body: the client's cost,
not the service's; curl measures the same as ``http.client``). A warm-up, then JSON, CSV and the
ceiling in turn 9 times; medians.

Ceiling, in this process: a plain sqlite3 read of the same hours' stored report rows and one orjson
dump of them as a JSON array (no HTTP, no framework): what the store and the JSON writer take.

Memory: one more request per format with tracemalloc on in the server (peak traced memory of the
request), and the server's peak RSS (VmHWM) growth over the run, as a cross-check.

    RESULT hourly_year value=<JSON ms> unit=ms baseline=<ceiling ms> ratio=<baseline/value>
    RESULT hourly_year_csv value=<CSV ms> unit=ms baseline=<ceiling ms> ratio=<baseline/value>
    RESULT hourly_year_peak value=<MiB> unit=MiB baseline=<ceiling's peak MiB> ratio=<baseline/value>

Goals: ratio >= 0.5, value < 200 ms, peak < 50 MiB.
``python bench/hourly_year.py --serve STORE --port N`` runs the server alone.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from common import HOST, accepting, free_port, log, process, python, result_line

START_NS = 1_735_689_600 * 10**9  # 2025-01-01T00:00Z
N_HOURS = 8760
QUERY = {"start": "2025-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}
PATH = "/api/v1/kilns/kiln1/hourly"
RUNS = 9
UVICORN = {"loop": "uvloop", "http": "httptools", "lifespan": "off", "access_log": False}
TRACE_HEADER = "x-bench-trace"
Scope = MutableMapping[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


def build(path: Path) -> None:
    from tests.unit.report_store import demo_runtime, fill_store

    started = time.perf_counter()
    fill_store(path, demo_runtime(), START_NS, N_HOURS)
    log(f"{N_HOURS} hours written in {time.perf_counter() - started:.1f} s ({path.stat().st_size >> 20} MiB)")


class Traced:
    """The app; a request with the trace header runs under tracemalloc, its peak at ``/_bench/peak``."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.peak = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/_bench/peak":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": str(self.peak).encode()})
            return
        traced = scope["type"] == "http" and any(k.decode() == TRACE_HEADER for k, _ in scope["headers"])
        if not traced:
            await self.app(scope, receive, send)
            return
        tracemalloc.start()
        try:
            await self.app(scope, receive, send)
            self.peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


def serve(store: Path, port: int) -> None:
    from api.app import create_app
    from tests.unit.report_store import context, demo_runtime, model_hours

    rt = demo_runtime()
    engine, _ = model_hours(rt, START_NS, hours=1)
    app = Traced(create_app(context(rt, engine, store)))
    uvicorn.run(app, host=HOST, port=port, log_level="warning", **UVICORN)  # type: ignore[arg-type]


class Ceiling:
    """The same rows read with sqlite3 and dumped with orjson, in this process."""

    def __init__(self, store: Path) -> None:
        self.conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)

    def once(self) -> bytes:
        q = "SELECT report FROM hourly_report WHERE kiln = ? AND ts >= ? AND ts < ? ORDER BY ts"
        rows = self.conn.execute(q, ("kiln1", START_NS, START_NS + N_HOURS * 3600 * 10**9)).fetchall()
        return orjson.dumps([orjson.Fragment(r) for (r,) in rows])

    def ms(self) -> float:
        t = time.perf_counter()
        body = self.once()
        elapsed = (time.perf_counter() - t) * 1e3
        assert body.count(b'"hour":') == N_HOURS
        return elapsed

    def peak(self) -> int:
        tracemalloc.start()
        self.once()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak


def vm(pid: int, key: str) -> int:
    """A VmRSS/VmHWM line of /proc/<pid>/status [bytes]."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def api_ms(http: HTTPConnection, fmt: str, headers: dict[str, str] | None = None) -> tuple[float, int]:
    """One year's request [ms] and its rows."""
    target = f"{PATH}?{urllib.parse.urlencode({**QUERY, 'format': fmt})}"
    t = time.perf_counter()
    http.request("GET", target, headers=headers or {})
    r = http.getresponse()
    body = r.read()
    elapsed = (time.perf_counter() - t) * 1e3
    if r.status != 200:
        raise RuntimeError(f"{fmt}: HTTP {r.status}: {body[:200]!r}")
    return elapsed, len(orjson.loads(body)) if fmt == "json" else body.count(b"\n") - 1


def server_peak(http: HTTPConnection) -> int:
    http.request("GET", "/_bench/peak")
    return int(http.getresponse().read())


def measure(port: int, ceiling: Ceiling) -> dict[str, Any]:
    """JSON, CSV and the ceiling in turn, ``RUNS`` times after a warm-up: medians [ms]; then a traced
    request of each format: peaks [bytes]."""
    runs: dict[str, list[float]] = {"json": [], "csv": [], "ceiling": []}
    http = HTTPConnection(HOST, port, timeout=120)
    try:
        for fmt in ("json", "csv"):
            _, rows = api_ms(http, fmt)
            if rows != N_HOURS:
                raise RuntimeError(f"{fmt}: {rows} rows, not {N_HOURS}")
        ceiling.ms()
        for _ in range(RUNS):
            runs["json"].append(api_ms(http, "json")[0])
            runs["csv"].append(api_ms(http, "csv")[0])
            runs["ceiling"].append(ceiling.ms())
        peaks = {}
        for fmt in ("json", "csv"):
            api_ms(http, fmt, {TRACE_HEADER: "1"})
            peaks[fmt] = server_peak(http)
    finally:
        http.close()
    for name, values in runs.items():
        log(f"{name}: runs {', '.join(f'{x:.0f}' for x in values)} ms")
    return {**{k: statistics.median(v) for k, v in runs.items()}, "peaks": peaks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, help="reuse (or create) the store at this path")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or Path(tmp) / "store.sqlite3"
        if not store.exists():
            build(store)
        from collector.store.local import LocalStore

        LocalStore(store, []).close()  # a store from an earlier version: migrated before the clock runs
        port = free_port()
        cmd = [python(), __file__, "--serve", str(store), "--port", str(port)]
        ceiling = Ceiling(store)
        with process(cmd, Path(tmp) / "server.log", lambda: accepting(port), "API server") as proc:
            rss0 = vm(proc.pid, "VmRSS")
            got = measure(port, ceiling)
            hwm = vm(proc.pid, "VmHWM")
        ceiling_peak = ceiling.peak()
    mib = 2**20
    json_ms, csv_ms, ceiling_ms = got["json"], got["csv"], got["ceiling"]
    json_peak, csv_peak = got["peaks"]["json"], got["peaks"]["csv"]
    log(
        f"ceiling (sqlite3 + orjson, no HTTP): {ceiling_ms:.0f} ms, peak {ceiling_peak / mib:.1f} MiB; "
        f"server peak RSS growth over the run {(hwm - rss0) / mib:.0f} MiB; traced peak JSON "
        f"{json_peak / mib:.1f} MiB, CSV {csv_peak / mib:.1f} MiB"
    )
    result_line("hourly_year", json_ms, "ms", ceiling_ms, ceiling_ms / json_ms)
    result_line("hourly_year_csv", csv_ms, "ms", ceiling_ms, ceiling_ms / csv_ms)
    peak = max(json_peak, csv_peak) / mib
    result_line("hourly_year_peak", peak, "MiB", ceiling_peak / mib, ceiling_peak / mib / peak)


if __name__ == "__main__":
    sys.exit(main())
