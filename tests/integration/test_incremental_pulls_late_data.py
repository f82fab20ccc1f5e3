"""Incremental pulls through the running service: a reporting client pulls ``/hourly`` with
``changed_since``; a gap of the analysers filled later (late data through the pipeline) revises one
hour, and the next pull returns exactly that hour; ``ETag`` answers 304 until then, 200 after."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from api.changes import CHANGE_SEQ_HEADER
from kilnwatch.service import Service
from tests.fixtures.loop_thread import LoopThread
from tests.fixtures.service import wait_for
from tests.integration.test_late_data import HOUR, HOURS, T0, model_readings, service, split_gap

pytestmark = pytest.mark.integration
__all__ = ["service"]  # the fixture: the service on the late-data test plant, fed through its pipeline

NS = 10**9
HOURLY = "/api/v1/kilns/kiln1/hourly"
DAY = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}


def pull(http: httpx.Client, base: str, since: int, **extra: str) -> httpx.Response:
    r = http.get(base + HOURLY, params={"changed_since": str(since), "envelope": "true", **extra})
    assert r.status_code == 200, r.text
    return r


def test_changed_since_returns_exactly_the_hour_late_data_revised(
    service: tuple[Service, str, LoopThread],
) -> None:
    svc, base, loop = service
    everything = model_readings(svc.runtime, T0, T0 + HOURS * HOUR + 120 * NS)
    on_time, late = split_gap(svc.runtime, everything)
    on_time = on_time.take(np.argsort(on_time.ts, kind="stable"))
    for part in np.array_split(np.arange(len(on_time)), 24):
        loop.run(svc.pipeline.put(on_time.take(part)))
    with httpx.Client(timeout=10) as http:

        def first_pull() -> httpx.Response | None:
            r = pull(http, base, 0)
            return r if len(r.json()["rows"]) >= HOURS else None

        first = wait_for(first_pull, 60)
        body: dict[str, Any] = first.json()
        seq = int(first.headers[CHANGE_SEQ_HEADER])
        assert body["change_seq"] == seq > 0 and body["next"] is None
        by_hour = {row["hour"]: row for row in body["rows"]}
        gap_hour = "2026-01-01T09:00:00Z"
        assert by_hour[gap_hour]["revision"] == 0 and not by_hour[gap_hour]["valid"]
        assert pull(http, base, seq).json()["rows"] == []  # nothing changed since

        report = http.get(base + HOURLY, params=DAY)
        tag = report.headers["etag"]
        assert http.get(base + HOURLY, params=DAY, headers={"If-None-Match": tag}).status_code == 304

        loop.run(svc.pipeline.put(late))  # the gateway's buffer: 40 minutes of analyser readings

        def revised() -> httpx.Response | None:
            r = pull(http, base, seq)
            return r if r.json()["rows"] else None

        after = wait_for(revised, 60)
        rows = after.json()["rows"]
        assert [(r["hour"], r["revision"]) for r in rows] == [(gap_hour, 1)]
        assert rows[0]["valid"] and rows[0]["co2_t"] != pytest.approx(by_hour[gap_hour]["co2_t"], rel=1e-4)
        newer = int(after.headers[CHANGE_SEQ_HEADER])
        assert newer > seq
        # the revision shows in the full report under a new validator
        again = http.get(base + HOURLY, params=DAY, headers={"If-None-Match": tag})
        assert again.status_code == 200 and again.headers["etag"] != tag
        assert {r["hour"]: r["revision"] for r in again.json()}[gap_hour] == 1
        # the day of the revised hour, and only it, for a report derived from hours
        days = http.get(
            base + "/api/v1/kilns/kiln1/crosscheck",
            params={"day": "2025-12-31", "days": "3", "tz": "UTC", "changed_since": str(seq)},
        ).json()
        assert [d["day"] for d in days["rows"]] == ["2026-01-01"]
        assert pull(http, base, newer).json()["rows"] == []
