"""At most ``stream_clients`` open ``/api/v1/stream`` connections, on a real uvicorn server: the next
one gets 503 with Retry-After, and a place frees when a client leaves."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.limits import ApiLimits
from tests.fixtures.loop_thread import LoopThread
from tests.fixtures.ports import free_port
from tests.unit.report_store import context, demo_runtime, fill_store

pytestmark = pytest.mark.integration
T0 = 1_767_225_600 * 10**9


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    rt = demo_runtime()
    engine = fill_store(tmp_path / "store.sqlite3", rt, T0, 2)
    ctx = context(rt, engine, tmp_path / "store.sqlite3")
    ctx.limits = ApiLimits(stream_clients=2, retry_after_s=3)
    port = free_port()
    config = uvicorn.Config(
        create_app(ctx), host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2
    )
    srv = uvicorn.Server(config)
    loop = LoopThread("api-limits-server")
    task = loop.spawn(srv.serve())
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline and not task.done(), "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", ctx
    finally:
        ctx.events.close()  # open streams end, so the server can stop
        srv.should_exit = True
        with contextlib.suppress(Exception):
            task.result(timeout=10)
        loop.close()


def first_event(response: httpx.Response, keep: list[Iterator[str]]) -> str:
    """The name of the stream's first event. The line iterator goes into ``keep``: httpx closes the
    response when an abandoned iterator is collected."""
    lines = response.iter_lines()
    keep.append(lines)
    for line in lines:
        if line.startswith("event:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("stream ended before its first event")


def test_stream_client_over_the_cap_gets_503_with_retry_after(server: tuple[str, Any]) -> None:
    base, _ = server
    url = base + "/api/v1/stream"
    timeout = httpx.Timeout(10.0)
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(httpx.Client(timeout=timeout)) for _ in range(4)]
        first = stack.enter_context(clients[0].stream("GET", url))
        second = stack.enter_context(clients[1].stream("GET", url))
        keep: list[Iterator[str]] = []
        assert first.status_code == second.status_code == 200
        assert first_event(first, keep) == first_event(second, keep) == "hello"

        refused = clients[2].get(url)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "3"
        assert "2 stream clients connected" in refused.json()["detail"]
        metrics = clients[2].get(base + "/metrics").text
        assert 'kilnwatch_api_rejected_total{limit="stream"} 1.0' in metrics
        assert "kilnwatch_api_stream_clients 2.0" in metrics
        assert clients[2].get(base + "/api/v1/kilns").status_code == 200  # other routes unaffected

        first.close()  # a client leaves: once the server has noticed, a new one is let in
        deadline = time.monotonic() + 10
        while True:
            with clients[3].stream("GET", url) as again:
                if again.status_code == 200:
                    assert first_event(again, keep) == "hello"
                    break
                assert again.status_code == 503
            assert time.monotonic() < deadline, "the place of the client that left was not freed"
            time.sleep(0.1)


def test_the_cap_counts_clients_not_requests(server: tuple[str, Any]) -> None:
    """Ten connect-and-leave cycles in a row with a cap of 2: each leaves its place free."""
    base, _ = server

    async def cycles() -> None:
        async with httpx.AsyncClient(timeout=10) as c:
            for _ in range(10):
                deadline = time.monotonic() + 10
                while True:
                    async with c.stream("GET", base + "/api/v1/stream") as r:
                        if r.status_code == 200:
                            async for line in r.aiter_lines():
                                if line.startswith("event:"):
                                    break
                            break
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)

    asyncio.run(cycles())
