"""Reports in the plant's time zone through the real app and ``kilnwatch report`` on a real store: the
same stored hours make different local days in Asia/Baku and in UTC, every row says its period in UTC
and in local time, ``?tz=`` asks for another zone; the excel-comma CSV holds the same numbers."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from analytics.aggregates import HourAggregate
from api.app import create_app
from api.limits import ApiLimits
from collector.store.local import LocalStore
from kilnwatch import cli
from kilnwatch.settings import Settings

from .report_store import HOUR_NS, context, demo_runtime, model_hours, shifted

T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00Z
N_HOURS = 72  # three UTC days
MONTH_END = 1_769_882_400 * 10**9  # 2026-01-31T18:00Z
WINDOW = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-04T00:00:00Z"}


def varied(h: HourAggregate, i: int) -> HourAggregate:
    """Hour ``i`` with every pollutant half-hour raised by i mg/Nm3, so that each day's mean differs."""
    halves = []
    for hh in h.half_hours:
        ps = {
            n: dataclasses.replace(
                p,
                mean_ref=None if p.mean_ref is None else p.mean_ref + i,
                validated=None if p.validated is None else p.validated + i,
            )
            for n, p in hh.pollutants.items()
        }
        halves.append(dataclasses.replace(hh, pollutants=ps))
    return dataclasses.replace(h, half_hours=halves)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """(engine, data dir): 72 stored hours of the demo kiln from 2026-01-01T00:00Z."""
    rt = demo_runtime()
    data_dir = tmp_path_factory.mktemp("tz")
    path = Settings(data_dir=data_dir).store_path
    engine, template = model_hours(rt, T0)
    db = LocalStore(path, rt.table.ids)
    db.write_aggregates(
        hours=[varied(shifted(template[i % 2], T0 + i * HOUR_NS, 0), i) for i in range(N_HOURS)]
    )
    # and the 6 hours from 2026-01-31T18:00Z: Baku's February starts at 20:00Z, within them
    db.write_aggregates(hours=[shifted(template[i % 2], MONTH_END + i * HOUR_NS, 1) for i in range(6)])
    db.close()
    return engine, data_dir


def client(store: tuple[Any, Path], timezone: str) -> TestClient:
    engine, data_dir = store
    rt = demo_runtime(timezone)
    return TestClient(create_app(context(rt, engine, Settings(data_dir=data_dir).store_path)))


def daily(c: TestClient, **extra: str) -> list[dict[str, Any]]:
    r = c.get("/api/v1/kilns/kiln1/daily", params={**WINDOW, **extra})
    assert r.status_code == 200, r.text
    return [row for row in r.json()["rows"] if row["pollutant"] == "nox"]


def half_hour_mean(c: TestClient, start: str, end: str) -> tuple[float, int]:
    """Mean and count of the valid NOx half-hours of [start, end), from the half-hourly report."""
    r = c.get("/api/v1/kilns/kiln1/halfhourly", params={"start": start, "end": end, "pollutant": "nox"})
    valid = [h["concentration_ref_mg_per_nm3"] for h in r.json()["rows"] if h["valid"] and h["operating"]]
    return sum(valid) / len(valid), len(valid)


def test_the_same_hours_make_different_local_days_in_baku_and_utc(store: tuple[Any, Path]) -> None:
    in_utc, in_baku = daily(client(store, "UTC")), daily(client(store, "Asia/Baku"))
    assert [(r["day"], r["start"], r["end"]) for r in in_utc] == [
        ("2026-01-01", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
        ("2026-01-02", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"),
        ("2026-01-03", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"),
    ]
    assert [r["start_local"] for r in in_utc][:1] == ["2026-01-01T00:00:00+00:00"]
    # Baku (+04:00): the local days that overlap the window, each from local midnight to local midnight
    assert [(r["day"], r["start"], r["start_local"], r["end_local"]) for r in in_baku] == [
        ("2026-01-01", "2025-12-31T20:00:00Z", "2026-01-01T00:00:00+04:00", "2026-01-02T00:00:00+04:00"),
        ("2026-01-02", "2026-01-01T20:00:00Z", "2026-01-02T00:00:00+04:00", "2026-01-03T00:00:00+04:00"),
        ("2026-01-03", "2026-01-02T20:00:00Z", "2026-01-03T00:00:00+04:00", "2026-01-04T00:00:00+04:00"),
        ("2026-01-04", "2026-01-03T20:00:00Z", "2026-01-04T00:00:00+04:00", "2026-01-05T00:00:00+04:00"),
    ]
    assert all(r["n_half_hours"] == 48 for r in in_utc + in_baku)
    # 2026-01-01 in Baku lacks its first 4 hours (before the store's first hour): 8 half-hours discarded
    assert in_baku[0]["n_discarded"] >= 8 and not in_baku[0]["valid"]
    assert in_utc[0]["n_discarded"] == 0 and in_utc[0]["valid"]
    assert in_baku[3]["n_pending"] == 40 and not in_baku[3]["complete"]  # only 4 of its hours are closed
    for rows, c in ((in_utc, client(store, "UTC")), (in_baku[1:3], client(store, "UTC"))):
        for row in rows:  # each daily mean is that of the half-hours within its UTC bounds
            mean, n = half_hour_mean(c, row["start"], row["end"])
            assert row["n_valid"] == n and row["mean_ref_mg_per_nm3"] == pytest.approx(mean, rel=1e-12)
    assert in_baku[1]["mean_ref_mg_per_nm3"] == pytest.approx(in_utc[1]["mean_ref_mg_per_nm3"] - 4.0)


def test_tz_asks_for_another_zone_and_an_unknown_one_is_422(store: tuple[Any, Path]) -> None:
    baku = client(store, "Asia/Baku")
    assert daily(baku, tz="UTC") == daily(client(store, "UTC"))
    berlin = daily(baku, tz="Europe/Berlin")
    assert berlin[0]["start"] == "2025-12-31T23:00:00Z" and berlin[0]["start_local"].endswith("+01:00")
    r = baku.get("/api/v1/kilns/kiln1/daily", params={**WINDOW, "tz": "Europe/Berlim"})
    assert r.status_code == 422 and "unknown time zone 'Europe/Berlim'" in r.text
    cc = baku.get("/api/v1/kilns/kiln1/crosscheck", params={"day": "2026-01-02", "days": "2"}).json()
    assert [(r["day"], r["start"], r["end_local"], r["n_hours"]) for r in cc["rows"]] == [
        ("2026-01-02", "2026-01-01T20:00:00Z", "2026-01-03T00:00:00+04:00", 24),
        ("2026-01-03", "2026-01-02T20:00:00Z", "2026-01-04T00:00:00+04:00", 24),
    ]
    assert "Asia/Kolkata" in cc["method"]["calendar"] and cc["method"]["kiln"]["timezone"] == "Asia/Baku"
    for path, key in (("hourly", "hour"), ("halfhourly", "half_hour"), ("ledger", "hour")):
        rows = baku.get(f"/api/v1/kilns/kiln1/{path}", params=WINDOW).json()
        rows = rows if isinstance(rows, list) else rows["rows"]
        assert rows[0][key] == "2026-01-01T00:00:00Z"
        assert rows[0][f"{key}_local"] == "2026-01-01T04:00:00+04:00"  # hours stay clock hours
    plant = baku.get("/api/v1/plants/demo/hourly", params={**WINDOW, "tz": "Europe/Berlin"}).json()
    assert plant["rows"][-1]["hour"] == "2026-01-03T23:00:00Z"
    assert plant["rows"][-1]["hour_local"] == "2026-01-04T00:00:00+01:00"


def same_numbers(plain: str, excel: bytes) -> None:
    """The excel-comma file opens with ``csv`` (delimiter ';') into the cells of the plain CSV."""
    assert excel.startswith(b"\xef\xbb\xbf") and not plain.startswith("\ufeff")
    a = list(csv.reader(io.StringIO(plain)))
    b = list(csv.reader(io.StringIO(excel.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert len(a) == len(b) > 1 and a[0] == b[0]
    floats = 0
    for row_a, row_b in zip(a[1:], b[1:], strict=True):
        for x, y in zip(row_a, row_b, strict=True):
            try:
                value = float(x)
            except ValueError:
                assert x == y
                continue
            if "." in x:
                floats += 1
                assert "." not in y and "," in y
            assert float(y.replace(",", ".")) == value
    assert floats > len(a)  # decimal numbers were there to compare


@pytest.mark.parametrize("path", ["hourly", "daily", "halfhourly"])
def test_excel_comma_csv_from_the_api_holds_the_same_numbers(store: tuple[Any, Path], path: str) -> None:
    c = client(store, "Asia/Baku")
    url = f"/api/v1/kilns/kiln1/{path}"
    plain = c.get(url, params={**WINDOW, "format": "csv"})
    excel = c.get(url, params={**WINDOW, "format": "csv", "dialect": "excel-comma"})
    assert plain.status_code == excel.status_code == 200
    same_numbers(plain.text, excel.content)
    assert c.get(url, params={**WINDOW, "format": "csv", "dialect": "excel"}).status_code == 422


def test_cli_report_takes_local_dates_and_writes_excel_comma(store: tuple[Any, Path], tmp_path: Path) -> None:
    _, data_dir = store
    base = ["report", "--kiln", "kiln1", "--data-dir", str(data_dir), "--tz", "Asia/Baku"]
    days = ["--from", "2026-01-02", "--to", "2026-01-03"]
    out = tmp_path / "daily.json"
    assert cli.main([*base, *days, "--table", "daily", "--format", "json", "--output", str(out)]) == 0
    rows = [r for r in json.loads(out.read_text())["rows"] if r["pollutant"] == "nox"]
    assert [(r["day"], r["start"], r["end"]) for r in rows] == [
        ("2026-01-02", "2026-01-01T20:00:00Z", "2026-01-02T20:00:00Z"),
        ("2026-01-03", "2026-01-02T20:00:00Z", "2026-01-03T20:00:00Z"),
    ]
    api = daily(client(store, "Asia/Baku"))
    assert rows == [{k: v for k, v in r.items()} for r in api[1:3]]  # the API's rows
    for table in ("hourly", "daily", "crosscheck"):
        plain, excel = tmp_path / f"{table}.csv", tmp_path / f"{table}-excel.csv"
        assert cli.main([*base, *days, "--table", table, "--output", str(plain)]) == 0
        argv = [*base, *days, "--table", table, "--dialect", "excel-comma", "--output", str(excel)]
        assert cli.main(argv) == 0
        same_numbers(plain.read_text(encoding="utf-8"), excel.read_bytes())
    hourly = list(csv.DictReader((tmp_path / "hourly.csv").open()))
    assert hourly[0]["hour"] == "2026-01-01T20:00:00Z" and len(hourly) == 48  # Baku's 2 and 3 January
    assert hourly[0]["hour_local"] == "2026-01-02T00:00:00+04:00"


def test_monthly_and_yearly_totals_follow_the_local_calendar(store: tuple[Any, Path]) -> None:
    baku, utc = client(store, "Asia/Baku"), client(store, "UTC")
    everything = {"start": "2025-12-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}
    hours = utc.get("/api/v1/kilns/kiln1/hourly", params=everything).json()
    assert len(hours) == N_HOURS + 6

    def co2(lo: str, hi: str) -> float:
        return sum(h["co2_t"] for h in hours if lo <= h["hour"] < hi)

    months = baku.get("/api/v1/kilns/kiln1/monthly", params={"month": "2026-01", "months": "2"}).json()
    jan, feb = months["rows"]
    assert (jan["period"], jan["start"], jan["end"]) == (
        "2026-01",
        "2025-12-31T20:00:00Z",
        "2026-01-31T20:00:00Z",
    )
    assert (feb["start_local"], feb["end_local"]) == (
        "2026-02-01T00:00:00+04:00",
        "2026-03-01T00:00:00+04:00",
    )
    assert (jan["n_hours"], feb["n_hours"]) == (N_HOURS + 2, 4)
    assert jan["co2_t"] == pytest.approx(co2(jan["start"], jan["end"]), rel=1e-12)
    assert feb["co2_t"] == pytest.approx(co2(feb["start"], feb["end"]), rel=1e-12)
    assert feb["intensity_kg_per_t"] == pytest.approx(1000 * feb["co2_t"] / feb["clinker_t"])
    in_utc = utc.get("/api/v1/kilns/kiln1/monthly", params={"month": "2026-01", "months": "2"}).json()
    assert [r["n_hours"] for r in in_utc["rows"]] == [N_HOURS + 6, 0]
    (year,) = baku.get("/api/v1/kilns/kiln1/yearly", params={"year": "2026"}).json()["rows"]
    assert (year["period"], year["start"], year["n_hours"]) == ("2026", "2025-12-31T20:00:00Z", N_HOURS + 6)
    assert year["co2_t"] == pytest.approx(jan["co2_t"] + feb["co2_t"], rel=1e-12)
    plain = baku.get(
        "/api/v1/kilns/kiln1/monthly", params={"month": "2026-01", "months": "2", "format": "csv"}
    )
    excel = baku.get(
        "/api/v1/kilns/kiln1/monthly",
        params={"month": "2026-01", "months": "2", "format": "csv", "dialect": "excel-comma"},
    )
    same_numbers(plain.text, excel.content)
    assert baku.get("/api/v1/kilns/kiln1/monthly", params={"month": "2026-13"}).status_code == 422


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("daily", WINDOW),
        ("crosscheck", {"day": "2026-01-01", "days": "4"}),
        ("monthly", {"month": "2025-12", "months": "3"}),
    ],
)
def test_local_days_page_without_loss(store: tuple[Any, Path], path: str, params: dict[str, str]) -> None:
    engine, data_dir = store
    ctx = context(demo_runtime("Asia/Baku"), engine, Settings(data_dir=data_dir).store_path)
    whole = TestClient(create_app(ctx)).get(f"/api/v1/kilns/kiln1/{path}", params=params).json()["rows"]
    ctx.limits = ApiLimits(max_rows=1)
    c = TestClient(create_app(ctx))
    r, rows, pages = c.get(f"/api/v1/kilns/kiln1/{path}", params=params), [], 0
    while True:
        rows += r.json()["rows"]
        pages += 1
        if r.json()["next"] is None:
            break
        r = c.get(r.json()["next"])
    assert rows == whole and pages == len({row["start"] for row in whole}) > 2
