"""``kilnwatch report`` as a user runs it: through ``kilnwatch.cli.main`` and the installed script, on a
store that the running service wrote from readings it took in through its pipeline.

The service runs the demo plant (one kiln, analysers over OPC UA; its OPC UA source finds no server and
keeps retrying, which changes nothing here); the readings come from the kiln simulator's model.
"""

from __future__ import annotations

import asyncio
import csv
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest

from analytics.batch import ReadingBatch
from kilnwatch import cli
from kilnwatch.config import parse_plant
from kilnwatch.demo import demo_plant
from kilnwatch.service import Service
from kilnwatch.settings import Settings
from simulators.model import SIGNAL_KEYS, KilnModel
from tests.fixtures.loop_thread import LoopThread
from tests.fixtures.ports import free_port
from tests.fixtures.service import wait_for

pytestmark = pytest.mark.integration

NS = 10**9
HOUR = 3600 * NS
T0 = 1_767_254_400 * NS  # 2026-01-01T08:00Z
HOURS = 2
T = TypeVar("T")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    """(data dir, the API's hourly rows): two hours of the model fed through the service's pipeline."""
    data_dir = tmp_path_factory.mktemp("report-store")
    data = demo_plant(opcua_port=free_port(), mqtt_port=None, kilns=("kiln1",))
    data["plausibility"] = {"max_reading_age_days": 3650}  # the readings are of 2026-01-01
    data["engine"] = {"idle_after_s": 3600}  # fed in bursts: the kiln must not count as silent
    plant = parse_plant(data, "test plant")
    loop = LoopThread("kilnwatch-report")
    settings = Settings(data_dir=data_dir, port=free_port())

    async def make() -> Service:
        return Service(plant, settings)

    svc = loop.run(make())
    asyncio.run_coroutine_threadsafe(svc.run(), loop.loop)
    try:
        loop.run(svc.started(), timeout=30)
        t = np.arange(T0, T0 + HOURS * HOUR + 120 * NS, NS, dtype=np.int64)
        values = KilnModel("kiln1", seed=5).sample(t)
        index = svc.runtime.table.index
        batch = ReadingBatch.concat(
            [
                ReadingBatch.from_columns(
                    np.full(len(t), index(f"kiln1.{k}")), t, values[k], np.zeros(len(t))
                )
                for k in SIGNAL_KEYS
            ]
        )
        batch = batch.take(np.argsort(batch.ts, kind="stable"))
        for part in np.array_split(np.arange(len(batch)), 12):
            loop.run(svc.pipeline.put(batch.take(part)))
        base = f"http://127.0.0.1:{svc.bound_port}/api/v1/kilns/kiln1/hourly"
        params = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02"}
        with httpx.Client(timeout=10) as http:

            def closed_hours() -> list[dict[str, Any]] | None:
                rows: list[dict[str, Any]] = http.get(base, params=params).json()
                return rows if len(rows) >= HOURS else None

            rows = wait_for(closed_hours)
    finally:
        loop.loop.call_soon_threadsafe(svc.stop)
        loop.close()
    yield data_dir, rows


def report_argv(data_dir: Path, output: Path) -> list[str]:
    return [
        "report",
        "--kiln",
        "kiln1",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-01",
        "--format",
        "csv",
        "--output",
        str(output),
        "--data-dir",
        str(data_dir),
    ]


def test_report_through_cli_main_writes_the_apis_hours(
    store: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    data_dir, api_rows = store
    out = tmp_path / "x.csv"
    assert cli.main(report_argv(data_dir, out)) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["hour"] for r in rows] == ["2026-01-01T08:00:00Z", "2026-01-01T09:00:00Z"]
    assert [r["hour"] for r in rows] == [r["hour"] for r in api_rows]
    for got, want in zip(rows, api_rows, strict=True):
        assert got["valid"] == "True" and want["valid"] is True
        assert float(got["co2_t"]) == pytest.approx(want["co2_t"], rel=1e-12)
        assert float(got["clinker_t"]) == pytest.approx(want["clinker_t"], rel=1e-12)
        assert float(got["intensity_kg_per_t"]) == pytest.approx(want["intensity_kg_per_t"], rel=1e-12)
        assert 700 < float(got["intensity_kg_per_t"]) < 950  # a 5000 t/d kiln on coal
    method = json.loads(out.with_name("x.csv.method.json").read_text())
    assert method["kiln"]["stuck_s"] == 900


def test_report_through_the_installed_script(
    store: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    data_dir, _ = store
    script = shutil.which("kilnwatch", path=str(Path(sys.executable).parent))
    assert script, "the kilnwatch script is not installed beside this interpreter"
    in_process, by_script = tmp_path / "a.csv", tmp_path / "b.csv"
    assert cli.main(report_argv(data_dir, in_process)) == 0
    done = subprocess.run(
        [script, *report_argv(data_dir, by_script)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert by_script.read_text() == in_process.read_text()
    assert len(by_script.read_text().splitlines()) == 1 + HOURS


def test_report_of_an_unknown_kiln_is_a_clear_error(
    store: tuple[Path, list[dict[str, Any]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, _ = store
    argv = report_argv(data_dir, tmp_path / "x.csv")
    argv[argv.index("kiln1")] = "kiln9"
    assert cli.main(argv) == 2
    assert "no kiln 'kiln9'" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
