"""Answers victoria-metrics never gives (429, 503, 400, 401/403/404), from a local InfluxDB-shaped server."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from collector.health import HealthRegistry
from collector.outputs.historian.metrics import InfluxMetrics
from collector.outputs.historian.writer import InfluxTarget, InfluxWriter, WriterPolicy
from collector.store.local import LocalStore
from collector.store.outbox import INFLUX_SOURCE, exact_depth
from collector.store.reader import StoreReader
from tests.fixtures.ports import free_port
from tests.fixtures.victoria import until

pytestmark = pytest.mark.integration

Reply = tuple[int, dict[str, str], dict[str, str] | None]  # status, headers, JSON body


@dataclass
class FakeInflux:
    """POST /api/v2/write: answers from ``script`` in turn, then 204; keeps the lines of 204s."""

    script: list[Reply] = field(default_factory=list)
    reject: bytes | None = None  # a batch with a line containing this gets 400, like InfluxDB's parser
    requests: list[tuple[float, bytes]] = field(default_factory=list)
    accepted: list[bytes] = field(default_factory=list)
    url: str = ""

    async def write(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((time.monotonic(), body))
        status, headers, payload = self.script.pop(0) if self.script else (204, {}, None)
        bad = [line for line in body.split(b"\n") if self.reject and self.reject in line]
        if status == 204 and bad:
            status = 400
            payload = {
                "code": "invalid",
                "message": f"unable to parse '{bad[0].decode()}': invalid field format",
            }
        if status == 204:
            self.accepted += [line for line in body.split(b"\n") if line]
            return web.Response(status=204)
        return web.Response(status=status, headers=headers, text=json.dumps(payload or {}))


@pytest.fixture
async def influx() -> AsyncIterator[FakeInflux]:
    fake = FakeInflux()
    app = web.Application()
    app.router.add_post("/api/v2/write", fake.write)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


@dataclass
class Rig:
    store: LocalStore
    writer: InfluxWriter
    health: HealthRegistry
    registry: CollectorRegistry
    lines: list[bytes]

    def rows(self) -> int:
        return exact_depth(self.store.connection).rows


@pytest.fixture
async def rig(influx: FakeInflux, tmp_path: Path) -> AsyncIterator[Callable[..., Rig]]:
    tasks: list[asyncio.Task[None]] = []

    def _rig(n_lines: int = 40, bad_at: tuple[int, ...] = (), **policy: float) -> Rig:
        store = LocalStore(tmp_path / "kw.sqlite3", [])
        lines = [
            b"reading,kiln=k1,plant=p,signal=s%d value=%d.5,quality=0i %d" % (i % 3, i, 1_700_000_000 + i)
            if i not in bad_at
            else b"reading,kiln=k1,plant=p,signal=s0 value=malformed %d" % i
            for i in range(n_lines)
        ]
        # Two outbox rows, so a batch spans rows.
        half = n_lines // 2
        rows = [
            (0, half, b"\n".join(lines[:half]) + b"\n"),
            (0, n_lines - half, b"\n".join(lines[half:]) + b"\n"),
        ]
        store.write_aggregates(outbox=rows)
        health, registry = HealthRegistry(), CollectorRegistry()
        settings = {"poll_s": 0.02, "depth_every_s": 0.05, "backoff_base_s": 0.2, **policy}
        writer = InfluxWriter(
            store.path,
            InfluxTarget(influx.url, "token", "org", "bucket", timeout_s=5),
            health,
            InfluxMetrics(registry),
            WriterPolicy(**settings),  # type: ignore[arg-type]
        )
        tasks.append(asyncio.create_task(writer.run()))
        return Rig(store, writer, health, registry, lines)

    yield _rig
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return (status, headers or {}, {"code": code, "message": message})


async def test_429_waits_as_long_as_retry_after_says(influx: FakeInflux, rig: Callable[..., Rig]) -> None:
    influx.script = [_error(429, "too many requests", "org exceeded its write limit", {"Retry-After": "1"})]
    r = rig()
    assert await until(lambda: r.rows() == 0, within_s=10)
    assert len(influx.requests) == 2
    assert influx.requests[1][0] - influx.requests[0][0] >= 1.0  # backoff alone would retry after 0.1-0.2 s
    assert influx.accepted == r.lines
    assert r.registry.get_sample_value("kilnwatch_influx_retries_total", {"reason": "http_429"}) == 1


async def test_503_is_retried_with_backoff_until_accepted(
    influx: FakeInflux, rig: Callable[..., Rig]
) -> None:
    influx.script = [_error(503, "unavailable", "service unavailable")] * 3
    r = rig(backoff_base_s=0.05, backoff_cap_s=0.1)
    assert await until(lambda: r.rows() == 0, within_s=10)
    assert len(influx.requests) == 4
    assert influx.accepted == r.lines
    assert r.registry.get_sample_value("kilnwatch_influx_retries_total", {"reason": "http_5xx"}) == 3
    assert "influx" not in r.health.problems  # the outage was reported and is over


async def test_400_splits_the_batch_and_dead_letters_only_the_bad_lines(
    influx: FakeInflux, rig: Callable[..., Rig]
) -> None:
    influx.reject = b"malformed"
    r = rig(n_lines=40, bad_at=(7, 30))
    assert await until(lambda: r.rows() == 0, within_s=10)
    good = [line for i, line in enumerate(r.lines) if i not in (7, 30)]
    assert sorted(influx.accepted) == sorted(good)  # each good line accepted exactly once
    letters = StoreReader(r.store.path).dead_letters(INFLUX_SOURCE)
    assert sorted(d.payload for d in letters) == sorted([r.lines[7], r.lines[30]])
    assert all(d.reason.startswith("HTTP 400: unable to parse") and "malformed" in d.reason for d in letters)
    assert r.registry.get_sample_value("kilnwatch_influx_dead_letter_points_total") == 2
    assert len(influx.requests) < 20  # bisection, not one request per line


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (401, "unauthorized", "InfluxDB rejected the token (401): unauthorized access"),
        (403, "forbidden", "InfluxDB denied the token permission to write to bucket 'bucket' (403)"),
        (404, "not found", "InfluxDB has no bucket 'bucket' in org 'org' (404)"),
    ],
)
async def test_config_errors_stop_writes_report_and_keep_the_data(
    influx: FakeInflux,
    rig: Callable[..., Rig],
    caplog: pytest.LogCaptureFixture,
    status: int,
    code: str,
    reason: str,
) -> None:
    influx.script = [_error(status, code, "unauthorized access" if status == 401 else code)] * 10
    caplog.set_level(logging.ERROR, logger="collector.outputs.historian.writer")
    r = rig(batch_points=1000, in_flight=4)
    assert await until(lambda: "influx" in r.health.problems, within_s=10)
    await asyncio.sleep(1.0)  # a retry loop would have sent several requests by now
    assert len(influx.requests) == 1
    assert r.rows() == 2  # the data stays in the outbox
    assert any(reason in text for text in r.health.not_ready_reasons())
    assert r.registry.get_sample_value("kilnwatch_influx_config_error") == 1
    assert len([rec for rec in caplog.records if reason in rec.getMessage()]) == 1  # logged once
