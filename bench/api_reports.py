"""Time and memory of a 3-year ``/hourly`` request, JSON and CSV.

The store holds 26 304 hours (2023-01-01 to 2026-01-01) of one demo kiln: hours the engine computed
from the simulator's model, repeated with shifted times. Each case runs in a fresh interpreter
with the app in-process (httpx over ASGI), so the process's peak RSS (``ru_maxrss``) growth is the
requests'. JSON is followed page by page (``Link: rel="next"``) until the last page; with
``--one-page`` only the first page is asked for. ``--clients N`` runs N such clients at once
(with the default report concurrency of 4, a fifth waits or gets 503 and is counted as refused).

    RESULT api_hourly_<format> value=<s> unit=s baseline=<peak RSS growth MiB> ratio=<rows/s>
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import log, result_line

START = "2023-01-01T00:00:00Z"
END = "2026-01-01T00:00:00Z"
START_NS = 1_672_531_200 * 10**9
N_HOURS = 26_304


def build(path: Path) -> None:
    from tests.unit.report_store import demo_runtime, fill_store

    started = time.perf_counter()
    fill_store(path, demo_runtime(), START_NS, N_HOURS)
    log(f"{N_HOURS} hours written in {time.perf_counter() - started:.1f} s ({path.stat().st_size >> 20} MiB)")


async def measure(path: Path, fmt: str, one_page: bool, clients: int) -> dict[str, Any]:
    import httpx

    from api.app import create_app
    from tests.unit.report_store import demo_runtime, model_hours

    rt = demo_runtime()
    engine, _ = model_hours(rt, START_NS, hours=1)
    from tests.unit.report_store import context

    app = create_app(context(rt, engine, path))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    refused = 0

    async def client(c: httpx.AsyncClient) -> int:
        nonlocal refused
        rows = 0
        url: str | None = f"/api/v1/kilns/kiln1/hourly?start={START}&end={END}&format={fmt}"
        while url:
            r = await c.get(url)
            if r.status_code == 503:
                refused += 1
                return rows
            r.raise_for_status()
            rows += len(r.json()) if fmt == "json" else r.text.count("\n") - 1
            url = r.links.get("next", {}).get("url") if not one_page else None
        return rows

    started = time.perf_counter()
    cpu0 = time.process_time()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=600) as c:
        rows = sum(await asyncio.gather(*(client(c) for _ in range(clients))))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    import api

    return {
        "code": str(Path(api.__file__).parent),
        "s": elapsed,
        "cpu_s": cpu,
        "rss_mib": (peak - rss0) / 1024,
        "rows": rows,
        "peak_mib": peak / 1024,
        "refused": refused,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, help="reuse (or create) the store at this path")
    parser.add_argument("--one-page", action="store_true", help="JSON: the first page only")
    parser.add_argument("--clients", type=int, default=1, help="clients at once")
    parser.add_argument("--child", nargs=2, metavar=("STORE", "FORMAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(
            json.dumps(asyncio.run(measure(Path(args.child[0]), args.child[1], args.one_page, args.clients)))
        )
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = args.store or Path(tmp) / "store.sqlite3"
        if not path.exists():
            build(path)
        for fmt in ("json", "csv"):
            cmd = [sys.executable, __file__, "--child", str(path), fmt, "--clients", str(args.clients)]
            cmd += ["--one-page"] if args.one_page else []
            out = json.loads(
                subprocess.run(
                    cmd, check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]
                ).stdout
            )
            log(
                f"{out['code']} {fmt}: {out['rows']} rows in {out['s']:.2f} s "
                f"(CPU {out['cpu_s']:.2f} s), "
                f"peak RSS +{out['rss_mib']:.0f} MiB "
                f"(process peak {out['peak_mib']:.0f} MiB), {out['refused']} refused"
            )
            result_line(f"api_hourly_{fmt}", out["s"], "s", out["rss_mib"], out["rows"] / out["s"])


if __name__ == "__main__":
    main()
