"""The fleet reader against a real victoria-metrics: an hour sent twice and an hour revised count once,
with the newest revision's numbers, although victoria-metrics keeps every sample it was sent."""

from __future__ import annotations

import uuid

import httpx
import pytest

from analytics.aggregates import HourAggregate
from collector.outputs.historian.line_protocol import aggregate_outbox_rows
from kilnwatch.fleet.grouping import Grouping, KilnRef
from kilnwatch.fleet.totals import fleet_totals
from kilnwatch.fleet.victoria import read_hours
from tests.fixtures.victoria import Victoria, count_samples, hour_start

pytestmark = pytest.mark.integration
H = 3600 * 10**9


def _write(vm: Victoria, hours: list[HourAggregate], companies: dict[str, str]) -> None:
    [(_, _, body)] = aggregate_outbox_rows([], hours, companies)
    r = httpx.post(f"{vm.url}/api/v2/write", params={"org": "o", "bucket": "b"}, content=body, timeout=10)
    r.raise_for_status()


def test_resent_and_revised_hours_count_once_with_the_newest_revision(victoria: Victoria) -> None:
    plant = f"fleet{uuid.uuid4().hex[:8]}"
    companies = {plant: "acme"}
    t0 = hour_start(hours_ago=5)

    def hour(i: int, co2: float | None, revision: int = 0) -> HourAggregate:
        valid = co2 is not None
        return HourAggregate("k1", plant, t0 + i * H, co2, 200.0 + i, None, valid, 1.0, {}, revision)

    _write(victoria, [hour(0, 100.0), hour(1, 110.0), hour(2, None)], companies)
    _write(victoria, [hour(0, 100.0)], companies)  # re-sent after a restart: same point again
    _write(victoria, [hour(1, 111.5, revision=2)], companies)  # late data: the newest revision
    _write(victoria, [hour(1, 110.5, revision=1)], companies)  # an older revision arriving last
    _write(victoria, [hour(3, 120.0)], companies)
    _write(victoria, [hour(3, 121.0, revision=1)], {plant: "newco"})  # revised after a company change
    # Every sample kept: 8 points of (co2, clinker, completeness, valid), one without co2.
    got = victoria.wait_for_count(f'{{__name__=~"kiln_hour_rev_.*",plant="{plant}"}}', 31)
    assert count_samples(got) == 31

    read = read_hours(victoria.url, t0, t0 + 4 * H)
    mine = [h for h in read.hours if h.kiln.plant == plant]
    assert [(h.start_ns, h.co2_t, h.clinker_t, h.revision) for h in mine] == [
        (t0, 100.0, 200.0, 0),
        (t0 + H, 111.5, 201.0, 2),
        (t0 + 2 * H, None, 202.0, 0),
        (t0 + 3 * H, 121.0, 203.0, 1),
    ]

    grouping = Grouping((KilnRef("acme", plant, "k1"),), {plant: "UTC"})
    report = fleet_totals(mine, grouping, t0, t0 + 4 * H)
    fleet = next(r for r in report["rows"] if r["level"] == "fleet" and len(r["period"]) == 4)
    assert (fleet["co2_t"], fleet["clinker_t"]) == (332.5, 806.0)
    assert (fleet["hours_reported"], fleet["hours_missing"], fleet["hours_without_co2"]) == (4, 0, 1)
    assert report["missing_hours"] == {}
