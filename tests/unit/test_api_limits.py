"""The API's limits through the real app on a real store: JSON pages with a next cursor on every list
route, CSV streamed in bounded memory, at most N report requests at once, extreme dates as 422."""

from __future__ import annotations

import asyncio
import csv
import io
import threading
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.aggregates import HourAggregate
from api import hourly_rows, paging
from api.app import create_app
from api.context import ApiContext
from api.limits import ApiLimits
from kilnwatch.plant import Runtime

from .report_store import HOUR_NS, context, demo_runtime, fill_store

T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00Z
DAYS = 45
N_HOURS = DAYS * 24
START, END = "2026-01-01T00:00:00Z", "2026-02-15T00:00:00Z"  # the 45 stored days


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Runtime, Any, Path]:
    rt = demo_runtime()
    path = tmp_path_factory.mktemp("limits") / "store.sqlite3"
    engine = fill_store(path, rt, T0, N_HOURS)
    return rt, engine, path


def app_client(store: tuple[Runtime, Any, Path], **limits: Any) -> TestClient:
    rt, engine, path = store
    ctx = context(rt, engine, path)
    ctx.limits = ApiLimits(**limits)
    return TestClient(create_app(ctx), raise_server_exceptions=False)


# -- paging -------------------------------------------------------------------------------------------

#: (route, query, keys that identify a row, rows the full range holds)
LISTS = [
    ("/api/v1/kilns/kiln1/hourly", {"start": START, "end": END}, ("hour",), N_HOURS),
    ("/api/v1/kilns/kiln1/hourly", {"start": START, "end": END, "envelope": "true"}, ("hour",), N_HOURS),
    ("/api/v1/kilns/kiln1/halfhourly", {"start": START, "end": END}, ("half_hour", "pollutant"), N_HOURS * 8),
    ("/api/v1/kilns/kiln1/ledger", {"start": START, "end": END}, ("hour", "signal"), N_HOURS * 13),
    ("/api/v1/plants/demo/hourly", {"start": START, "end": END}, ("hour",), N_HOURS),
    ("/api/v1/kilns/kiln1/daily", {"start": START, "end": END}, ("day", "pollutant"), DAYS * 4),
    ("/api/v1/kilns/kiln1/crosscheck", {"day": "2026-01-01", "days": str(DAYS)}, ("day",), DAYS),
]


def rows_of(r: httpx.Response) -> list[dict[str, Any]]:
    body = r.json()
    return body if isinstance(body, list) else body["rows"]


def follow(client: TestClient, path: str, params: dict[str, str]) -> tuple[list[dict[str, Any]], list[int]]:
    """Every page from the first, following ``Link: rel=next``; the rows and the rows of each page."""
    r = client.get(path, params=params)
    rows: list[dict[str, Any]] = []
    pages: list[int] = []
    while True:
        assert r.status_code == 200, r.text
        rows += rows_of(r)
        pages.append(len(rows_of(r)))
        body = r.json()
        link = r.links.get("next", {}).get("url")
        if isinstance(body, dict):
            assert body["next"] == link  # the envelope carries the same cursor
        if link is None:
            return rows, pages
        assert len(pages) < 1000
        r = client.get(link)


@pytest.mark.parametrize(("path", "params", "keys", "total"), LISTS, ids=lambda x: str(x)[:40])
def test_pages_give_every_row_exactly_once(
    store: tuple[Runtime, Any, Path], path: str, params: dict[str, str], keys: tuple[str, ...], total: int
) -> None:
    whole = app_client(store, max_rows=10**6).get(path, params=params)
    assert whole.status_code == 200 and "next" not in whole.links
    reference = rows_of(whole)
    assert len(reference) == total
    limit = total // 6 + 3  # not a multiple of a group: pages end between whole groups
    paged, pages = follow(app_client(store, max_rows=limit), path, params)
    ids = [tuple(r[k] for k in keys) for r in paged]
    assert len(ids) == len(set(ids)), "a row came twice"
    assert paged == reference  # same rows, same order, same values
    assert len(pages) >= 5 and all(0 < n <= limit for n in pages)


def test_default_page_is_ten_thousand_rows_and_says_where_to_continue(
    store: tuple[Runtime, Any, Path],
) -> None:
    client = app_client(store)
    r = client.get("/api/v1/kilns/kiln1/ledger", params={"start": START, "end": END})
    assert len(r.json()["rows"]) == 10_000 // 13 * 13  # whole hours of 13 signals: 769 hours
    nxt = r.links["next"]["url"]
    assert "start=2026-02-02T01%3A00%3A00Z" in nxt and "end=2026-02-15T00%3A00%3A00Z" in nxt


def test_minutes_are_paged_too(store: tuple[Runtime, Any, Path]) -> None:
    params = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T02:00:00Z"}
    whole = app_client(store).get("/api/v1/kilns/kiln1/minutes", params=params).json()
    assert len(whole) == 120
    paged, pages = follow(app_client(store, max_rows=50), "/api/v1/kilns/kiln1/minutes", params)
    assert paged == whole and pages == [50, 50, 20]


# -- CSV streamed -------------------------------------------------------------------------------------


def csv_peak(client: TestClient, path: str, params: dict[str, str]) -> tuple[int, list[dict[str, str]]]:
    """Peak traced memory [bytes] while the app answers one CSV request, and its rows."""
    tracemalloc.start()
    try:
        with client.stream("GET", path, params={**params, "format": "csv"}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/csv")
            assert "x-kilnwatch-method" in r.headers
            text = "".join(r.iter_text())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize(
    ("path", "key", "per_hour"),
    [("/api/v1/kilns/kiln1/hourly", "hour", 1), ("/api/v1/kilns/kiln1/ledger", "hour", 13)],
)
def test_csv_is_streamed_in_bounded_memory(
    store: tuple[Runtime, Any, Path], monkeypatch: pytest.MonkeyPatch, path: str, key: str, per_hour: int
) -> None:
    monkeypatch.setattr(paging, "CHUNK_NS", 2 * 24 * HOUR_NS)  # 2 days per read: 15 reads for 30 days
    monkeypatch.setattr(hourly_rows, "CSV_PIECE_ROWS", 48)  # the same for the stored hourly rows
    client = app_client(store, max_rows=100)  # CSV is not paged: every row, whatever max_rows
    short_peak, short = csv_peak(client, path, {"start": START, "end": "2026-01-05T00:00:00Z"})
    long_peak, long = csv_peak(client, path, {"start": START, "end": "2026-01-31T00:00:00Z"})
    assert len(short) == 4 * 24 * per_hour and len(long) == 30 * 24 * per_hour
    assert long[0][key] == "2026-01-01T00:00:00Z" and long[-1][key] == "2026-01-30T23:00:00Z"
    assert len({tuple(r.values()) for r in long}) == len(long)
    # 7.5 times the rows, about the same peak: what a chunk holds, plus the text received so far
    text_bytes = sum(len(",".join(r.values())) for r in long)
    assert long_peak < short_peak + 2 * text_bytes, (short_peak, long_peak, text_bytes)
    assert long_peak < 40 * 2**20


# -- at most N report requests at once -------------------------------------------------------------------


class GatedHistory:
    """The real store behind a gate: reads wait until the test opens it, so requests stay in progress."""

    def __init__(self, history: Any) -> None:
        self.history = history
        self.open = threading.Event()
        self.waiting = 0
        self._lock = threading.Lock()

    def hours(self, kiln: str, start_ns: int, end_ns: int) -> list[HourAggregate]:
        with self._lock:
            self.waiting += 1
        self.open.wait(timeout=30)
        return self.history.hours(kiln, start_ns, end_ns)


async def until(condition: Any, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("first", ["json", "csv"])
def test_request_over_the_concurrency_limit_waits_then_gets_503(
    store: tuple[Runtime, Any, Path], first: str, caplog: pytest.LogCaptureFixture
) -> None:
    rt, engine, path = store
    ctx: ApiContext = context(rt, engine, path)
    gated = GatedHistory(ctx.history)
    ctx.history = gated
    ctx.limits = ApiLimits(report_concurrency=2, report_wait_s=1.0, retry_after_s=7)
    app = create_app(ctx)
    params = {"start": START, "end": "2026-01-02T00:00:00Z", "format": first}

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=30) as c:
            held = [asyncio.create_task(c.get("/api/v1/kilns/kiln1/hourly", params=params)) for _ in range(2)]
            await until(lambda: gated.waiting == 2)  # both inside, reading (a CSV: while streaming)
            started = time.monotonic()
            over = await c.get("/api/v1/kilns/kiln1/daily", params={"start": START, "end": "2026-01-02"})
            waited = time.monotonic() - started
            assert over.status_code == 503
            assert over.headers["retry-after"] == "7"
            assert "2 report requests in progress" in over.json()["detail"]
            assert 1.0 <= waited < 10
            metrics = (await c.get("/metrics")).text
            assert 'kilnwatch_api_rejected_total{limit="reports"} 1.0' in metrics
            assert "kilnwatch_api_reports_in_progress 2.0" in metrics
            # a request that comes while the others finish waits for a slot instead of failing
            late = asyncio.create_task(c.get("/api/v1/kilns/kiln1/ledger", params=params))
            await asyncio.sleep(0.05)
            gated.open.set()
            for r in [*(await asyncio.gather(*held)), await late]:
                assert r.status_code == 200, r.text
            assert (await c.get("/api/v1/kilns/kiln1/minutes")).status_code == 200  # not a report route

    asyncio.run(scenario())
    (refusal,) = [r for r in caplog.records if r.name == "api.limits"]
    assert "/api/v1/kilns/kiln1/daily refused (2 report requests in progress" in refusal.getMessage()
    assert refusal.getMessage().endswith("last from 127.0.0.1")


# -- extreme dates --------------------------------------------------------------------------------------

REPORTS = [
    "/api/v1/kilns/kiln1/hourly",
    "/api/v1/kilns/kiln1/halfhourly",
    "/api/v1/kilns/kiln1/daily",
    "/api/v1/kilns/kiln1/ledger",
    "/api/v1/plants/demo/hourly",
    "/api/v1/kilns/kiln1/minutes",
]


@pytest.fixture(scope="module")
def client(store: tuple[Runtime, Any, Path]) -> Iterator[TestClient]:
    with app_client(store) as c:
        yield c


@pytest.mark.parametrize("path", REPORTS)
@pytest.mark.parametrize(
    "params",
    [
        {"start": "9999-12-31T23:59:59-14:00"},
        {"end": "9999-12-31T23:59:59-14:00"},
        {"start": "0001-01-01T00:00:00+14:00"},
        {"start": "0001-01-01T00:00:00+14:00", "end": "2026-01-01T00:00:00Z"},
        {"start": "2262-04-12T00:00:00Z", "end": "2262-04-13T00:00:00Z"},
        {"start": "1969-12-31T00:00:00Z", "end": "1970-01-01T01:00:00Z"},
        {"start": "0001-01-01", "end": "9999-12-31"},
    ],
)
def test_extreme_dates_are_422_naming_the_supported_times(
    client: TestClient, path: str, params: dict[str, str]
) -> None:
    for fmt in ("json", "csv"):
        r = client.get(path, params={**params, "format": fmt} if "minutes" not in path else params)
        assert r.status_code == 422, r.text
        assert "is outside the supported times (from 1970-01-01T00:00:00Z to 2200-01-01T00:00:00Z)" in r.text


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1969-12-31", "2200-01-02"])
def test_extreme_days_are_422(client: TestClient, day: str) -> None:
    r = client.get("/api/v1/kilns/kiln1/crosscheck", params={"day": day, "days": "366"})
    assert r.status_code == 422
    assert f"day='{day}' is outside the supported times" in r.json()["detail"]


OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
TIMES = st.one_of(
    st.datetimes(timezones=st.one_of(st.none(), OFFSETS)).map(lambda t: t.isoformat()),
    st.datetimes(timezones=st.just(UTC)).map(lambda t: t.isoformat().replace("+00:00", "Z")),
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2200-01-01T00:00:00Z"]),
    st.text(max_size=30),
)


@pytest.mark.parametrize("path", REPORTS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.one_of(st.none(), TIMES), end=st.one_of(st.none(), TIMES), fmt=st.sampled_from(["json", "csv"])
)
def test_no_time_parameter_is_a_server_error(
    client: TestClient, path: str, start: str | None, end: str | None, fmt: str
) -> None:
    params = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    r = client.get(path, params={**params, "format": fmt} if "minutes" not in path else params)
    assert r.status_code in (200, 422), (params, r.status_code, r.text)
    if r.status_code == 422:
        assert r.json()["detail"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    day=st.one_of(st.dates().map(lambda d: d.isoformat()), st.text(max_size=12)),
    days=st.integers(-5, 400),
)
def test_no_crosscheck_day_is_a_server_error(client: TestClient, day: str, days: int) -> None:
    r = client.get("/api/v1/kilns/kiln1/crosscheck", params={"day": day, "days": str(days)})
    assert r.status_code in (200, 422), (day, days, r.status_code, r.text)


def test_latest_supported_time_still_answers(client: TestClient) -> None:
    latest = datetime(2200, 1, 1, tzinfo=UTC).isoformat()
    r = client.get("/api/v1/kilns/kiln1/hourly", params={"start": "2199-12-31T00:00:00Z", "end": latest})
    assert r.status_code == 200 and r.json() == []
