"""Every row kind is declared once (analytics.tables): its schema, the API's response model, the
OpenAPI docs, the JSON rows and the CSV header of the API and of ``kilnwatch report`` agree."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from analytics import tables
from analytics.schema import Nested
from api import models
from api.alarm_watch import AlarmWatch
from api.app import create_app
from api.routes_stream import _events
from kilnwatch import report

from .report_store import KILN, context, demo_runtime, model_hours

T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00Z
SPAN = "start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z"
#: row kind -> (its response model, the route that gives its rows)
KINDS: dict[str, tuple[Any, str]] = {
    "hourly": (models.HourlyRow, f"/api/v1/kilns/{KILN}/hourly?{SPAN}&ledger=true"),
    "halfhourly": (models.HalfHourRow, f"/api/v1/kilns/{KILN}/halfhourly?{SPAN}"),
    "daily": (models.DailyRow, f"/api/v1/kilns/{KILN}/daily?{SPAN}"),
    "crosscheck": (models.CrossCheckRow, f"/api/v1/kilns/{KILN}/crosscheck?day=2026-01-01"),
    "ledger": (models.LedgerRow, f"/api/v1/kilns/{KILN}/ledger?{SPAN}"),
    "plant_hourly": (models.PlantHourRow, f"/api/v1/plants/demo/hourly?{SPAN}"),
    "period_totals": (models.PeriodTotalsRow, f"/api/v1/kilns/{KILN}/monthly?month=2026-01"),
    "minutes": (models.MinuteRow, f"/api/v1/kilns/{KILN}/minutes?{SPAN}"),
    "live": (models.LiveResponse, f"/api/v1/kilns/{KILN}/live"),
}
NESTED = {
    "parameters": models.ParameterSummary,
    "ledger": models.LedgerEntry,
    "signals": models.SignalValue,
    "running_minute": models.RunningMinuteRow,
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from collector.store.local import LocalStore

    rt = demo_runtime()
    engine, hours = model_hours(rt, T0)
    path = tmp_path_factory.mktemp("rows") / "store.sqlite3"
    store = LocalStore(path, rt.table.ids)
    store.write_aggregates(hours=hours)
    store.close()
    with TestClient(create_app(context(rt, engine, path))) as c:
        c.hours = hours  # type: ignore[attr-defined]
        c.runtime = rt  # type: ignore[attr-defined]
        c.fresh_context = lambda: context(rt, engine, path)  # type: ignore[attr-defined]
        yield c


def _rows(body: Any) -> list[dict[str, Any]]:
    rows = body["rows"] if isinstance(body, dict) and "rows" in body else body
    return rows if isinstance(rows, list) else [rows]


@pytest.mark.parametrize("kind", list(KINDS))
def test_schema_model_json_and_openapi_agree(client: TestClient, kind: str) -> None:
    schema = tables.SCHEMAS[kind]
    model, url = KINDS[kind]
    assert list(model.model_fields) == schema.names

    rows = _rows(client.get(url).json())
    assert rows, f"{url} gave no row to compare"
    for row in rows:
        assert list(row) == schema.names
        assert model.model_validate(row).model_dump(mode="json") == row  # the types agree too
    for f in schema.fields:  # nested rows: their keys are their schema's
        if isinstance(f.dtype, Nested) and rows[0][f.name]:
            inner = rows[0][f.name] if f.dtype.single else next(iter(rows[0][f.name].values()))
            assert list(inner) == f.dtype.schema.names == list(NESTED[f.name].model_fields)

    docs = client.get("/openapi.json").json()["components"]["schemas"][model.__name__]["properties"]
    assert list(docs) == schema.names
    for f in schema.fields:
        assert f.description in docs[f.name]["description"]
        if f.unit:
            assert docs[f.name]["description"].endswith(f"[{f.unit}]") and docs[f.name]["x-unit"] == f.unit


@pytest.mark.parametrize(
    "kind", ["hourly", "halfhourly", "daily", "crosscheck", "ledger", "plant_hourly", "period_totals"]
)
@pytest.mark.parametrize("dialect", ["rfc4180", "excel-comma"])
def test_csv_header_of_the_api_is_the_schemas(client: TestClient, kind: str, dialect: str) -> None:
    schema = tables.SCHEMAS[kind]
    url = KINDS[kind][1] + f"&format=csv&dialect={dialect}"
    text = client.get(url).content.decode("utf-8-sig")
    table = list(
        csv.reader(io.StringIO(text, newline=""), delimiter=";" if dialect == "excel-comma" else ",")
    )
    assert table[0] == schema.csv_header
    assert schema.csv_header == [f.name for f in schema.fields if not isinstance(f.dtype, Nested)]
    assert len(table) > 1 and all(len(line) == len(table[0]) for line in table)


@pytest.mark.parametrize("kind", report.TABLES)
def test_kilnwatch_report_writes_the_schemas_columns(client: TestClient, kind: str) -> None:
    built = report.build_report(client.runtime, KILN, client.hours, T0, T0 + 86_400 * 10**9)  # type: ignore[attr-defined]
    schema = tables.SCHEMAS[kind]
    assert built[kind] and all(list(r) == schema.names for r in built[kind])
    assert next(csv.reader(io.StringIO(report.render(built, kind, "csv")))) == schema.csv_header
    excel = report.render(built, kind, "csv", "excel-comma").removeprefix("\ufeff")
    assert next(csv.reader(io.StringIO(excel), delimiter=";")) == schema.csv_header
    assert json.loads(report.render(built, kind, "json"))["rows"] == built[kind]


def test_a_column_added_to_the_hourly_schema_shows_everywhere(tmp_path: Path) -> None:
    """One edit, the new Field in tables.HOURLY (made here before the API is imported, as an edit
    of the file would): the CSV header, the JSON rows, the OpenAPI model and the report follow."""
    script = textwrap.dedent(
        f"""
        import csv, io, json, sys
        sys.path.insert(0, {str(Path.cwd())!r})
        from analytics import schema, tables
        tables.HOURLY = schema.Schema((*tables.HOURLY.fields, schema.Field("plant", str, "", "plant id")))
        tables.SCHEMAS["hourly"] = tables.HOURLY  # type: ignore[index]

        from fastapi.testclient import TestClient
        from api.app import create_app
        from collector.store.local import LocalStore
        from kilnwatch import report
        from tests.unit.report_store import context, demo_runtime, model_hours

        rt = demo_runtime()
        engine, hours = model_hours(rt, {T0}, hours=1)
        store = LocalStore({str(tmp_path / "s.sqlite3")!r}, rt.table.ids)
        store.write_aggregates(hours=hours)
        store.close()
        c = TestClient(create_app(context(rt, engine, store.path)))
        url = "/api/v1/kilns/kiln1/hourly?{SPAN}"
        built = report.build_report(rt, "kiln1", hours, {T0}, {T0} + 3600 * 10**9)
        print(json.dumps({{
            "csv": next(csv.reader(io.StringIO(c.get(url + "&format=csv").text))),
            "json": c.get(url).json()[0],
            "docs": c.get("/openapi.json").json()["components"]["schemas"]["HourlyRow"]["properties"],
            "report_csv": report.render(built, "hourly", "csv").splitlines()[:2],
        }}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["csv"][-1] == "plant"
    assert seen["json"]["plant"] == "demo" and list(seen["json"])[-1] == "plant"
    assert seen["docs"]["plant"]["description"] == "plant id"
    assert seen["report_csv"][0].endswith(",plant") and seen["report_csv"][1].endswith(",demo")


def test_stream_hour_and_revised_events_are_their_schemas(client: TestClient) -> None:
    ctx = client.fresh_context()  # type: ignore[attr-defined]
    kiln = ctx.kilns[0]

    async def stream() -> dict[str, Any]:
        got: dict[str, Any] = {}
        events = _events(ctx, AlarmWatch(ctx), [kiln])
        try:
            async with asyncio.timeout(30):
                async for e in events:
                    got[e.event] = json.loads(str(e.data))
                    if e.event == "alarms" and "hour" not in got:  # the snapshot is out: now the news
                        ctx.events.publish({"type": "hour", "kiln": kiln.id, "start_ns": T0, "revision": 2})
                        ctx.events.publish({"type": "minute", "kiln": kiln.id, "start_ns": T0, "revision": 1})
                    if {"hour", "revised"} <= set(got):
                        return got
        finally:
            await events.aclose()
        return got

    got = asyncio.run(stream())
    assert got["hour"] == {"kiln": KILN, "hour": "2026-01-01T00:00:00Z", "revision": 2}
    assert list(got["hour"]) == tables.HOUR_EVENT.names
    assert got["revised"] == {"kiln": KILN, "minute": "2026-01-01T00:00:00Z", "revision": 1}
    assert list(got["revised"]) == tables.REVISED_EVENT.names
    assert list(got["minute"]) == tables.LIVE.names
