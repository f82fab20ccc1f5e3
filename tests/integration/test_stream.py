"""``/api/v1/stream`` and ``/api/v1/alarms`` on the whole service, fed by the accelerated simulators."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from api.page_config import AlarmSettings, StreamSettings
from kilnwatch.service import Service

pytestmark = pytest.mark.integration


@dataclass
class Event:
    event: str
    data: Any
    retry: int | None


def events(url: str, read_timeout: float = 10.0) -> Iterator[Event]:
    """Server-Sent Events of one connection, parsed per the WHATWG rules the page's EventSource uses."""
    with httpx.stream("GET", url, timeout=httpx.Timeout(10.0, read=read_timeout)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line == "":
                if "data" in fields:
                    retry = int(fields["retry"]) if "retry" in fields else None
                    yield Event(fields.get("event", "message"), json.loads(fields["data"]), retry)
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value


def collect(url: str, until: Callable[[list[Event]], bool], timeout: float) -> list[Event]:
    seen: list[Event] = []
    deadline = time.monotonic() + timeout
    for ev in events(url):
        seen.append(ev)
        if until(seen):
            return seen
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"stream condition not met within {timeout} s; got {[e.event for e in seen][:50]}")


@pytest.fixture
def page_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Alarm and stream settings for the next service, as the wiring passes them in ApiContext."""

    def apply(alarms: AlarmSettings | None = None, stream: StreamSettings | None = None) -> None:
        original = Service.api_context

        def api_context(self: Service) -> Any:
            ctx = original(self)
            ctx.alarms = alarms or ctx.alarms
            ctx.stream = stream or ctx.stream
            return ctx

        monkeypatch.setattr(Service, "api_context", api_context)

    return apply


def test_stream_starts_with_a_snapshot_then_pushes_each_kilns_minutes(
    start_service: Callable[..., Any],
) -> None:
    svc = start_service(speed=240, backfill_h=1.5)
    svc.wait_for(lambda: all(svc.get(f"/api/v1/kilns/{k}/live").json()["time"] for k in ("kiln1", "kiln2")))
    url = svc.base_url + "/api/v1/stream"

    def three_new_minutes_each(seen: list[Event]) -> bool:
        minutes = [e.data for e in seen if e.event == "minute"]
        return all(len({m["time"] for m in minutes if m["kiln"] == k}) >= 4 for k in ("kiln1", "kiln2"))

    seen = collect(url, three_new_minutes_each, timeout=30)
    hello = seen[0]
    assert hello.event == "hello"
    assert hello.retry == 2000
    assert hello.data["kilns"] == ["kiln1", "kiln2"]
    assert [e.event for e in seen[1:4]] == ["minute", "minute", "alarms"]  # the snapshot
    assert set(seen[3].data["kilns"]) == {"kiln1", "kiln2"}
    for kiln in ("kiln1", "kiln2"):
        times = [e.data["time"] for e in seen if e.event == "minute" and e.data["kiln"] == kiln]
        assert times == sorted(times), "minutes of a kiln arrive in order"
    # A pushed minute is the live payload: same fields and values as /live for that minute.
    newest = [e.data for e in seen if e.event == "minute" and e.data["kiln"] == "kiln1"][-1]
    live = svc.get("/api/v1/kilns/kiln1/live").json()
    assert set(newest) == set(live)
    start = datetime.fromisoformat(newest["time"])
    minutes = svc.get(
        "/api/v1/kilns/kiln1/minutes",
        params={"start": start.isoformat(), "end": (start + timedelta(minutes=1)).isoformat()},
    ).json()
    assert [m["minute"] for m in minutes] == [newest["time"]]
    assert minutes[0]["intensity_kg_per_t"] == newest["intensity_kg_per_t"]
    assert minutes[0]["co2_t_per_h"] == newest["co2_t_per_h"]


def test_closed_hours_are_announced(
    start_service: Callable[..., Any], page_settings: Callable[..., None]
) -> None:
    page_settings(stream=StreamSettings(ping_s=2))  # a quiet moment is no read timeout
    # Hours closed before the stream is opened are not announced to it: three hours of replay
    # (36 s at 300x, a boundary every 12 s) leave hours to close after it opens, also when the
    # machine is busy and the service starts slowly or replays slowly.
    svc = start_service(speed=300, backfill_h=3)
    seen = collect(svc.base_url + "/api/v1/stream", lambda s: s[-1].event == "hour", timeout=120)
    hour = seen[-1].data
    assert set(hour) == {"kiln", "hour", "revision"}
    rows = svc.wait_for(
        lambda: [
            r
            for r in svc.get(f"/api/v1/kilns/{hour['kiln']}/hourly", params={"start": hour["hour"]}).json()
            if r["hour"] == hour["hour"]
        ],
        timeout=10,
    )
    assert rows[0]["revision"] == hour["revision"]


def test_pings_keep_a_quiet_stream_alive_and_subscribers_leave(
    start_service: Callable[..., Any], page_settings: Callable[..., None]
) -> None:
    page_settings(stream=StreamSettings(ping_s=0.3, retry_ms=750))
    svc = start_service(speed=1, backfill_h=0.05)  # real time: a minute closes once a minute
    t0 = time.monotonic()
    seen = collect(
        svc.base_url + "/api/v1/stream?kiln=kiln2",
        lambda s: sum(e.event == "ping" for e in s) >= 3,
        timeout=10,
    )
    assert time.monotonic() - t0 < 5
    assert seen[0].retry == 750
    assert all(e.data["kiln"] == "kiln2" for e in seen if e.event == "minute")
    assert svc.wait_for(lambda: svc.service.events.subscribers == 0, timeout=5) is not None
    unknown = svc.get("/api/v1/stream", params={"kiln": "kiln9"})
    assert unknown.status_code == 404
    assert "kiln9" in unknown.json()["detail"]


def test_alarms_report_a_stopped_source_as_stale_and_disconnected(
    start_service: Callable[..., Any], page_settings: Callable[..., None]
) -> None:
    page_settings(alarms=AlarmSettings(stale_after_s=4, source_grace_s=1))
    svc = start_service(speed=120, backfill_h=2)
    svc.wait_for(lambda: svc.get("/api/v1/alarms").json()["kilns"]["kiln1"]["status"] == "catching_up", 30)
    svc.sims.stop_opcua()
    stopped = time.time()

    def stale() -> dict[str, Any] | None:
        body = svc.get("/api/v1/alarms").json()
        return (
            body
            if {"stale:kiln1", "stale:kiln2", "source:opcua:sim"} <= {a["id"] for a in body["active"]}
            else None
        )

    body = svc.wait_for(stale, timeout=20)
    assert time.time() - stopped < 4 + 8
    assert body["kilns"]["kiln1"]["status"] == "stale"
    alarm = next(a for a in body["active"] if a["id"] == "stale:kiln1")
    assert alarm["end"] is None and alarm["active"] is True

    svc.sims.start_opcua()

    def cleared() -> dict[str, Any] | None:
        body = svc.get("/api/v1/alarms").json()
        return body if "stale:kiln1" in {a["id"] for a in body["cleared"]} else None

    body = svc.wait_for(cleared, timeout=60)
    alarm = next(a for a in body["cleared"] if a["id"] == "stale:kiln1")
    assert alarm["end"] > alarm["start"]
    assert "stale:kiln1" not in {a["id"] for a in body["active"]}
