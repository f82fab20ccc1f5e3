"""The local store keeps, for audit, each reading's raw value beside the value kilnwatch computed
from it, and the QAL2 functions in force (docs/method.md § 3.3, EN 14181)."""

from __future__ import annotations

import asyncio
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from analytics import quality as q
from analytics.batch import ReadingBatch
from collector.conditioning import Conditioner, ValueCorrections
from collector.metrics import Metrics
from collector.pipeline import Pipeline
from collector.store.local import LocalStore
from collector.store.reader import StoreReader

NAMES = ("k.co2", "k.pressure", "k.flow")
NS = 1_000_000_000
T0 = 1_790_000_000 * NS


def _conditioner() -> Conditioner:
    """co2: QAL2 y = 0.4 + 0.95 x in vol %; pressure: hPa -> kPa; flow: as it comes."""
    corr = ValueCorrections.none(len(NAMES))
    corr.has_qal2[0] = True
    corr.qal2_a[0], corr.qal2_b[0] = 0.4, 0.95
    corr.qal2_min[0], corr.qal2_max[0] = 0.0, 30.0
    corr.qal2_from_ns[0] = T0
    return Conditioner([1.0, 0.1, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [30.0, 200.0, 2e6], corr)


def test_each_reading_keeps_its_raw_value_beside_the_computed_one(tmp_path: Path) -> None:
    path = tmp_path / "kw.sqlite3"
    pipeline = Pipeline(LocalStore(path, NAMES), _conditioner(), NAMES, Metrics())
    raw_co2 = np.array([20.0, 22.5, 40.0])  # the last one is outside the valid calibration range
    raw_p = np.array([1013.0, 1009.5, math.nan])
    raw_flow = np.array([400_000.0, 410_000.0, 405_000.0])
    ts = T0 + np.arange(3) * NS
    batch = ReadingBatch.concat(
        [
            ReadingBatch.from_columns(np.full(3, i), ts, v, np.zeros(3))
            for i, v in enumerate((raw_co2, raw_p, raw_flow))
        ]
    )

    async def commit() -> None:
        task = asyncio.create_task(pipeline.run())
        await pipeline.put(batch)
        await pipeline.drain()
        task.cancel()

    asyncio.run(commit())
    pipeline.close()
    pipeline.store.close()
    reader = StoreReader(path)

    co2 = reader.audit("k.co2")
    assert [r.ts_ns for r in co2] == ts.tolist()
    assert [r.raw for r in co2] == raw_co2.tolist()
    np.testing.assert_allclose([r.value for r in co2], 0.4 + 0.95 * raw_co2, rtol=1e-12)
    assert co2[2].quality & q.OUT_OF_RANGE  # 38.4 vol %: flagged, both numbers kept
    pressure = reader.audit("k.pressure")
    np.testing.assert_allclose([r.raw for r in pressure[:2]], raw_p[:2])
    np.testing.assert_allclose([r.value for r in pressure[:2]], raw_p[:2] / 10)
    assert pressure[2].raw is None and pressure[2].value is None  # NaN stored as NULL, quality bad
    assert pressure[2].quality & q.CLASS_MASK == q.BAD
    flow = reader.audit("k.flow", start_ns=T0 + NS, end_ns=T0 + 2 * NS)
    assert [(r.ts_ns, r.raw, r.value) for r in flow] == [(T0 + NS, 410_000.0, 410_000.0)]


def test_qal2_functions_are_recorded_once_per_version(tmp_path: Path) -> None:
    path = tmp_path / "kw.sqlite3"
    corr = _conditioner().corrections
    assert corr is not None
    for _ in range(2):  # a restart with the same plant file adds nothing
        store = LocalStore(path, NAMES)
        store.record_calibrations(NAMES, corr)
        store.close()
    [first] = StoreReader(path).calibrations()
    assert first.signal == "k.co2" and (first.a, first.b) == (0.4, 0.95)
    assert (first.valid_min, first.valid_max) == (0.0, 30.0)
    assert first.in_force_from_ns == T0 and first.in_force_to_ns is None
    assert first.recorded_ns > 0

    corr.qal2_a[0], corr.qal2_b[0] = 0.1, 1.02  # a new QAL2: both versions stay on record
    store = LocalStore(path, NAMES)
    store.record_calibrations(NAMES, corr)
    store.close()
    assert [(c.a, c.b) for c in StoreReader(path).calibrations()] == [(0.4, 0.95), (0.1, 1.02)]


def test_a_store_of_an_earlier_version_gains_the_raw_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE signal (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        CREATE TABLE reading (
            signal INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL, quality INTEGER NOT NULL,
            PRIMARY KEY (signal, ts)
        ) WITHOUT ROWID;
        INSERT INTO signal(name) VALUES ('k.co2');
        INSERT INTO reading VALUES (1, 5, 21.0, 0);
        """
    )
    conn.close()
    store = LocalStore(path, NAMES)
    store.write(ReadingBatch.from_columns([0], [6], [22.0], [0]), raw_value=np.array([21.5]))
    store.close()
    rows = StoreReader(path).audit("k.co2")
    assert [(r.ts_ns, r.raw, r.value) for r in rows] == [(5, None, 21.0), (6, 21.5, 22.0)]


def test_raw_values_must_match_the_batch(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "kw.sqlite3", NAMES)
    with pytest.raises(ValueError, match="raw values"):
        store.write(ReadingBatch.from_columns([0, 1], [1, 1], [1.0, 2.0], [0, 0]), raw_value=np.array([1.0]))
    store.close()
