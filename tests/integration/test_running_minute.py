"""The running minute on the whole service in real time: in ``/live`` and on the stream, provisional,
and never a minute aggregate (neither in ``/minutes`` nor in the store)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from analytics import tables
from api.page_config import StreamSettings

from .test_stream import collect, page_settings  # noqa: F401 - page_settings is a fixture

pytestmark = pytest.mark.integration


def _ns(iso: str) -> int:
    return round(datetime.fromisoformat(iso).timestamp()) * 10**9


def test_running_minute_is_live_provisional_and_never_stored(
    start_service: Callable[..., Any],
    page_settings: Callable[..., None],  # noqa: F811
) -> None:
    page_settings(stream=StreamSettings(ping_s=2))
    # 15 minutes of history in 15 seconds, then real time: closed minutes, then 1 Hz readings
    svc = start_service(speed=60, backfill_h=0.25)

    def three_seconds_of_kiln1(seen: list[Any]) -> bool:
        rows = [e.data for e in seen if e.event == "running_minute" and e.data["kiln"] == "kiln1"]
        return len({r["through"] for r in rows}) >= 3

    svc.wait_for(
        lambda: svc.sims.clock.caught_up and svc.get("/api/v1/kilns/kiln1/live").json()["time"], timeout=120
    )
    seen = collect(svc.base_url + "/api/v1/stream", three_seconds_of_kiln1, timeout=60)
    rows = [e.data for e in seen if e.event == "running_minute"]
    assert {r["kiln"] for r in rows} <= {"kiln1", "kiln2"}
    for row in rows:
        assert list(row) == tables.RUNNING_MINUTE.names
        assert row["provisional"] is True
        start, through = _ns(row["minute"]), _ns(row["through"])
        assert start % (60 * 10**9) == 0 and start <= through < start + 60 * 10**9
        assert row["points"] == (through - start) // 10**9 + 1
    kiln1 = [r for r in rows if r["kiln"] == "kiln1"]
    assert [r["through"] for r in kiln1] == sorted(r["through"] for r in kiln1)  # it moves on, in order
    assert any(r["co2_t_per_h"] is not None and r["intensity_kg_per_t"] is not None for r in kiln1)

    # /live carries it beside the closed minute, marked provisional
    live = svc.wait_for(lambda: (b := svc.get("/api/v1/kilns/kiln1/live").json())["running_minute"] and b)
    running = live["running_minute"]
    assert running["provisional"] is True and running["kiln"] == "kiln1"
    assert live["time"] < running["minute"]
    # ... and it is no minute: /minutes and the store know nothing of it, unless it has closed since
    span = {
        "start": running["minute"],
        "end": (datetime.fromisoformat(running["minute"]) + timedelta(minutes=1)).isoformat(),
    }
    listed = svc.get("/api/v1/kilns/kiln1/minutes", params=span).json()
    start = _ns(running["minute"])
    stored = svc.service.reader.minutes("kiln1", start, start + 60 * 10**9)
    closed_since = svc.get("/api/v1/kilns/kiln1/live").json()["time"]
    if closed_since is None or closed_since < running["minute"]:
        assert listed == [] and stored == []
    # Over every minute closed so far: the store holds no minute after the newest closed one,
    # although a running minute after it has been shown all along.
    newest = svc.get("/api/v1/kilns/kiln1/live").json()
    everything = svc.service.reader.minutes("kiln1", 0, 2**62)
    limit = _ns(newest["time"])
    assert everything  # (the newest closed minute may still be on its way to the store)
    assert all(m.start_ns <= limit for m in everything)
    assert newest["running_minute"] is not None and _ns(newest["running_minute"]["minute"]) > limit
