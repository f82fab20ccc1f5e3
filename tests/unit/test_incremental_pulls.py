"""The stored report rows and change numbers on a real store through the real app: ``/hourly`` from
the stored rows is the row the schema makes (JSON byte for byte, CSV cell for cell, any time zone and
dialect); ``changed_since`` returns exactly what a revision touched; ``ETag`` gives 304 until a change;
an older store is migrated (numbers in time order)."""

from __future__ import annotations

import dataclasses
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from analytics import tables
from analytics.plant_time import PlantClock
from api.app import create_app
from api.changes import CHANGE_SEQ_HEADER
from api.csv_dialect import csv_text
from api.limits import ApiLimits
from collector.store.local import LocalStore
from collector.store.reader import StoreReader
from kilnwatch.plant import Runtime

from .report_store import HOUR_NS, context, demo_runtime, fill_store

T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00Z
N_HOURS = 72
SPAN = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-04T00:00:00Z"}
HOURLY = "/api/v1/kilns/kiln1/hourly"


@pytest.fixture
def store(tmp_path: Path) -> tuple[Runtime, Any, Path]:
    rt = demo_runtime("Europe/Berlin")
    path = tmp_path / "store.sqlite3"
    engine = fill_store(path, rt, T0, N_HOURS)
    return rt, engine, path


def client(store: tuple[Runtime, Any, Path], **limits: Any) -> TestClient:
    rt, engine, path = store
    ctx = context(rt, engine, path)
    ctx.limits = ApiLimits(**limits)
    return TestClient(create_app(ctx))


def revise(path: Path, rt: Runtime, start_ns: int, co2_t: float) -> None:
    """Write the stored hour at ``start_ns`` again, revised (as late data does)."""
    (hour,) = StoreReader(path).hours("kiln1", start_ns, start_ns + 1)
    store = LocalStore(path, rt.table.ids)
    store.write_aggregates(hours=[dataclasses.replace(hour, co2_t=co2_t, revision=hour.revision + 1)])
    store.close()


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/St_Johns"])
def test_stored_rows_are_the_rows_the_schema_makes(store: tuple[Runtime, Any, Path], tz: str) -> None:
    c = client(store)
    hours = StoreReader(store[2]).hours("kiln1", T0, T0 + N_HOURS * HOUR_NS)
    clock = PlantClock(tz)
    made = [tables.hourly_row(h, ledger=False, clock=clock) for h in hours]
    r = c.get(HOURLY, params={**SPAN, "tz": tz})
    assert r.status_code == 200
    assert r.content == orjson.dumps(made)  # byte for byte what the general path writes
    for dialect in ("rfc4180", "excel-comma"):
        text = c.get(HOURLY, params={**SPAN, "tz": tz, "format": "csv", "dialect": dialect}).text
        assert text == csv_text(made, tables.HOURLY.csv_header, dialect), dialect
    # with the ledger the general path answers: the same rows besides their ledger
    with_ledger = c.get(HOURLY, params={**SPAN, "tz": tz, "ledger": "true"}).json()
    assert [{**r, "ledger": None} for r in with_ledger] == json.loads(r.content)
    assert all(r["ledger"] for r in with_ledger)


def test_changed_since_returns_exactly_the_revised_hours(store: tuple[Runtime, Any, Path]) -> None:
    rt, _, path = store
    c = client(store)
    first = c.get(HOURLY, params={"changed_since": "0"})  # no start/end: of any time
    assert len(first.json()) == N_HOURS
    seq = int(first.headers[CHANGE_SEQ_HEADER])
    assert seq == N_HOURS
    assert c.get(HOURLY, params={"changed_since": str(seq)}).json() == []

    revise(path, rt, T0 + 5 * HOUR_NS, 1.5)
    revise(path, rt, T0 + 50 * HOUR_NS, 2.5)
    r = c.get(HOURLY, params={"changed_since": str(seq), "envelope": "true"})
    body = r.json()
    assert [(row["hour"], row["co2_t"]) for row in body["rows"]] == [
        ("2026-01-01T05:00:00Z", 1.5),
        ("2026-01-03T02:00:00Z", 2.5),
    ]
    assert int(r.headers[CHANGE_SEQ_HEADER]) == body["change_seq"] == seq + 2
    # the same filter as CSV, and with the ledger (general path)
    csv_rows = c.get(HOURLY, params={"changed_since": str(seq), "format": "csv"}).text.splitlines()
    assert [line[:20] for line in csv_rows[1:]] == ["2026-01-01T05:00:00Z", "2026-01-03T02:00:00Z"]
    ledger = c.get(HOURLY, params={"changed_since": str(seq), "ledger": "true"}).json()
    assert [row["hour"] for row in ledger] == ["2026-01-01T05:00:00Z", "2026-01-03T02:00:00Z"]
    # only the later one after the first revision's number; a range narrows it
    assert [row["hour"] for row in c.get(HOURLY, params={"changed_since": str(seq + 1)}).json()] == [
        "2026-01-03T02:00:00Z"
    ]
    assert [
        row["hour"]
        for row in c.get(HOURLY, params={"changed_since": str(seq), **SPAN, "end": "2026-01-02"}).json()
    ] == ["2026-01-01T05:00:00Z"]

    # an hour written again unchanged is no revision
    (same,) = StoreReader(path).hours("kiln1", T0, T0 + 1)
    writer = LocalStore(path, rt.table.ids)
    writer.write_aggregates(hours=[same])
    writer.close()
    assert c.get(HOURLY, params={"changed_since": str(seq + 2)}).json() == []


def test_daily_and_monthly_changed_since_hold_the_revised_hours(store: tuple[Runtime, Any, Path]) -> None:
    rt, _, path = store
    c = client(store)
    days = {"start": "2026-01-01", "end": "2026-01-04", "tz": "UTC"}
    seq = int(c.get("/api/v1/kilns/kiln1/daily", params=days).headers[CHANGE_SEQ_HEADER])
    revise(path, rt, T0 + 30 * HOUR_NS, 3.0)  # 2026-01-02T06:00Z
    changed = c.get("/api/v1/kilns/kiln1/daily", params={**days, "changed_since": str(seq)}).json()
    assert {row["day"] for row in changed["rows"]} == {"2026-01-02"}
    assert changed["change_seq"] == seq + 1
    cross = c.get("/api/v1/kilns/kiln1/crosscheck", params={"day": "2026-01-01", "days": "3", "tz": "UTC",
                                                            "changed_since": str(seq)}).json()  # fmt: skip
    assert [row["day"] for row in cross["rows"]] == ["2026-01-02"]
    month = {"month": "2026-01", "tz": "UTC"}
    assert (
        len(c.get("/api/v1/kilns/kiln1/monthly", params={**month, "changed_since": str(seq)}).json()["rows"])
        == 1
    )
    assert (
        c.get("/api/v1/kilns/kiln1/monthly", params={**month, "changed_since": str(seq + 1)}).json()["rows"]
        == []
    )
    halves = c.get("/api/v1/kilns/kiln1/halfhourly", params={**SPAN, "changed_since": str(seq)}).json()[
        "rows"
    ]
    assert {row["half_hour"][:13] for row in halves} == {"2026-01-02T06"}


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (HOURLY, SPAN),
        (HOURLY, {**SPAN, "format": "csv"}),
        ("/api/v1/kilns/kiln1/daily", {"start": "2026-01-01", "end": "2026-01-04"}),
        ("/api/v1/kilns/kiln1/monthly", {"month": "2026-01"}),
        ("/api/v1/plants/demo/hourly", SPAN),
    ],
)
def test_etag_gives_304_until_an_hour_changes(
    store: tuple[Runtime, Any, Path], path: str, params: dict[str, str]
) -> None:
    rt, _, store_path = store
    c = client(store)
    first = c.get(path, params=params)
    tag = first.headers["etag"]
    assert first.status_code == 200 and tag.startswith('W/"')
    again = c.get(path, params=params, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == tag
    other = c.get(path, params={**params, "tz": "Asia/Baku"}, headers={"If-None-Match": tag})
    assert other.status_code == 200  # another query, another validator
    revise(store_path, rt, T0 + 7 * HOUR_NS, 4.0)
    after = c.get(path, params=params, headers={"If-None-Match": tag})
    assert after.status_code == 200 and after.headers["etag"] != tag
    assert int(after.headers[CHANGE_SEQ_HEADER]) == int(first.headers[CHANGE_SEQ_HEADER]) + 1


def test_pages_of_a_pull_carry_the_number_of_the_first(store: tuple[Runtime, Any, Path]) -> None:
    rt, _, path = store
    c = client(store, max_rows=30)
    r = c.get(HOURLY, params={"changed_since": "0"})
    seq = int(r.headers[CHANGE_SEQ_HEADER])
    rows = r.json()
    revise(path, rt, T0, 5.0)  # between two pages: an hour of the first page changes
    while "next" in r.links:
        r = c.get(r.links["next"]["url"])
        assert int(r.headers[CHANGE_SEQ_HEADER]) == seq
        rows += r.json()
    assert len(rows) == N_HOURS
    # pulled again from the number the pull ended with: the revision is not missed
    assert [row["co2_t"] for row in c.get(HOURLY, params={"changed_since": str(seq)}).json()] == [5.0]


def test_an_older_store_is_numbered_in_time_order(store: tuple[Runtime, Any, Path]) -> None:
    rt, _, path = store
    before = client(store).get(HOURLY, params=SPAN).content
    with sqlite3.connect(path) as conn:  # as a store written before report rows were kept
        conn.execute("DROP TABLE hourly_report")
        conn.execute("DROP TABLE store_meta")
    reader = StoreReader(path)
    assert reader.hourly_rows("kiln1", T0, T0 + N_HOURS * HOUR_NS).newest_seq == 0  # read-only: computed
    assert client(store).get(HOURLY, params=SPAN).content == before
    LocalStore(path, rt.table.ids).close()
    rows = StoreReader(path).hourly_rows("kiln1", T0, T0 + N_HOURS * HOUR_NS)
    assert rows.change_seq == list(range(1, N_HOURS + 1)) and rows.newest_seq == N_HOURS
    assert client(store).get(HOURLY, params=SPAN).content == before
    LocalStore(path, rt.table.ids).close()  # idempotent
    assert StoreReader(path).newest_change_seq() == N_HOURS


def test_stored_cells_parse_as_the_csv_header(store: tuple[Runtime, Any, Path]) -> None:
    text = client(store).get(HOURLY, params={**SPAN, "format": "csv"}).text
    import csv

    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == N_HOURS and list(rows[0]) == tables.HOURLY.csv_header
    assert rows[0]["hour_local"] == "2026-01-01T01:00:00+01:00"  # the plant's zone


@pytest.mark.parametrize(
    "tz",
    ["Europe/Berlin", "America/St_Johns", "Australia/Lord_Howe", "Asia/Baku", "UTC", "Asia/Kathmandu"],
)
def test_local_times_of_many_hours_are_those_of_one(tz: str) -> None:
    """A year and a half of hours (both DST changes, Lord Howe's half-hour one), and odd times; as
    text and as the JSON strings the stored rows are completed with."""
    from analytics.plant_time import local_iso_json, local_isos

    clock = PlantClock(tz)
    starts = [T0 - 200 * 24 * HOUR_NS + i * HOUR_NS for i in range(13_000)]
    starts += [T0 + 1_800 * 10**9 + 7, 0, 2_000_000_000 * 10**9, 9_200_000_000 * 10**9]  # 2261
    expected = [clock.local_iso(t) for t in starts]
    assert local_isos(starts, clock) == expected
    assert local_iso_json(starts, clock) == [orjson.dumps(t) for t in expected]


def test_local_times_in_seconds_of_old_local_mean_time_are_written_too() -> None:
    from analytics.plant_time import local_iso_json, local_isos

    amsterdam = PlantClock("Europe/Amsterdam")  # +00:19:32 until 1937
    starts = [-1_300_000_000 * 10**9 + i * HOUR_NS for i in range(48)]
    expected = [amsterdam.local_iso(t) for t in starts]
    assert expected[0].endswith("+00:19:32")
    assert local_isos(starts, amsterdam) == expected
    assert local_iso_json(starts, amsterdam) == [orjson.dumps(t) for t in expected]


@pytest.mark.parametrize("dialect", ["rfc4180", "excel-comma"])
def test_csv_read_in_pieces_has_every_hour_once(
    store: tuple[Runtime, Any, Path], dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pieces of 5 hours: the stretch of 72 ends inside a piece; with ``changed_since`` too."""
    import api.hourly_rows

    rt, _, path = store
    whole = client(store).get(HOURLY, params={**SPAN, "format": "csv", "dialect": dialect}).text
    monkeypatch.setattr(api.hourly_rows, "CSV_PIECE_ROWS", 5)
    c = client(store)
    assert c.get(HOURLY, params={**SPAN, "format": "csv", "dialect": dialect}).text == whole
    seq = int(c.get(HOURLY, params=SPAN).headers[CHANGE_SEQ_HEADER])
    for i in (3, 4, 5, 11, 70):
        revise(path, rt, T0 + i * HOUR_NS, float(i))
    text = c.get(HOURLY, params={**SPAN, "format": "csv", "dialect": dialect, "changed_since": str(seq)}).text
    assert [line[:20] for line in text.splitlines()[1:]] == [
        f"2026-01-{1 + i // 24:02d}T{i % 24:02d}:00:00Z" for i in (3, 4, 5, 11, 70)
    ]


def test_rows_made_for_another_schema_are_made_again_with_new_numbers(
    store: tuple[Runtime, Any, Path],
) -> None:
    rt, _, path = store
    before = client(store).get(HOURLY, params=SPAN).content
    with sqlite3.connect(path) as conn:  # as if the rows were made by a version with other fields
        conn.execute("UPDATE store_meta SET value = 'other' WHERE key = 'hourly_form'")
        conn.execute("UPDATE hourly_report SET report = CAST('{}' AS BLOB)")
    LocalStore(path, rt.table.ids).close()
    rows = StoreReader(path).hourly_rows("kiln1", T0, T0 + N_HOURS * HOUR_NS)
    # content changed for a puller: every hour again, above the numbers it has seen
    assert rows.change_seq == list(range(N_HOURS + 1, 2 * N_HOURS + 1))
    assert client(store).get(HOURLY, params=SPAN).content == before
