"""The local store keeps the first value written for a signal and time: a repeat is a duplicate,
another value a conflict, recorded with both values; only accepted readings go on."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import orjson

from analytics import quality as q
from analytics.batch import ReadingBatch
from collector.conditioning import Conditioner
from collector.metrics import Metrics
from collector.pipeline import Pipeline
from collector.store.local import LocalStore
from collector.store.reader import StoreReader

NAMES = ("k.co2", "k.flow")
NS = 1_000_000_000
T0 = 1_790_000_000 * NS


def batch(rows: list[tuple[int, int, float, int]]) -> ReadingBatch:
    sig, ts, value, quality = zip(*rows, strict=True)
    return ReadingBatch.from_columns(sig, ts, value, quality)


def test_a_stored_reading_is_never_replaced(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "kw.sqlite3", NAMES)
    first = batch([(0, T0, 20.0, q.GOOD), (0, T0 + NS, math.nan, q.BAD), (1, T0, 5e5, q.GOOD)])
    r = store.write(first, sources=[("mqtt:cems", 3)])
    assert r.accepted.tolist() == [True, True, True]
    again = batch(
        [
            (0, T0, 20.0, q.GOOD),  # the same: duplicate
            (0, T0 + NS, math.nan, q.BAD),  # NaN again, same quality: duplicate
            (1, T0, 6e5, q.GOOD),  # another value: conflict
            (0, T0 + 2 * NS, 21.0, q.GOOD),  # new
            (0, T0 + 2 * NS, 21.0, q.GOOD),  # the new one twice in the batch: duplicate
            (0, T0 + 2 * NS, 23.0, q.GOOD),  # and once with another value: conflict
            (0, T0, 20.0, q.UNCERTAIN),  # same value, other quality: conflict
        ]
    )
    r = store.write(again, sources=[("opcua:sim", 3), ("mqtt:cems", 4)])
    assert r.accepted.tolist() == [False, False, False, True, False, False, False]
    assert r.duplicate.tolist() == [True, True, False, False, True, False, False]
    assert r.conflict.tolist() == [False, False, True, False, False, True, True]
    store.close()

    reader = StoreReader(tmp_path / "kw.sqlite3")
    assert [(a.ts_ns, a.value, a.quality) for a in reader.audit("k.co2")] == [
        (T0, 20.0, q.GOOD),
        (T0 + NS, None, q.BAD),
        (T0 + 2 * NS, 21.0, q.GOOD),
    ]
    assert reader.audit("k.flow")[0].value == 5e5
    conflicts = reader.conflicts()
    assert sorted((k.signal, k.ts_ns, k.stored_value, k.value, k.quality, k.source) for k in conflicts) == [
        ("k.co2", T0, 20.0, 20.0, q.UNCERTAIN, "mqtt:cems"),
        ("k.co2", T0 + 2 * NS, 21.0, 23.0, q.GOOD, "mqtt:cems"),
        ("k.flow", T0, 5e5, 6e5, q.GOOD, "opcua:sim"),
    ]
    assert reader.count_conflicts() == 3
    assert reader.count_conflicts(["k.co2"], T0 + NS, T0 + 3 * NS) == 1
    letters = reader.dead_letters()
    assert len(letters) == 3 and all(d.reason.startswith("conflict: ") for d in letters)
    flow = next(d for d in letters if d.signal == "k.flow")
    assert orjson.loads(flow.payload)["stored"]["value"] == 5e5
    assert orjson.loads(flow.payload)["offered"]["value"] == 6e5
    assert flow.source == "opcua:sim"


def test_only_accepted_readings_reach_the_outbox_and_the_consumers(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "kw.sqlite3", NAMES, outbox_formatter=lambda b: orjson.dumps(b.ts.tolist()))
    metrics = Metrics()
    pipeline = Pipeline(
        store, Conditioner([1.0] * 2, [0.0] * 2, [-math.inf] * 2, [math.inf] * 2), NAMES, metrics
    )
    consumed: list[ReadingBatch] = []
    pipeline.consumers.append(consumed.append)
    first = batch([(0, T0 + i * NS, 20.0 + i, q.GOOD) for i in range(3)])
    second = batch([(0, T0 + i * NS, 20.0 + i + (i == 1), q.GOOD) for i in range(5)])

    async def commit() -> None:
        task = asyncio.create_task(pipeline.run())
        await pipeline.put(first, source="mqtt:cems")
        await pipeline.drain()
        await pipeline.put(second, source="mqtt:cems")
        await pipeline.drain()
        task.cancel()

    asyncio.run(commit())
    pipeline.close()
    assert [c.ts.tolist() for c in consumed] == [[T0, T0 + NS, T0 + 2 * NS], [T0 + 3 * NS, T0 + 4 * NS]]
    assert pipeline.stored_readings == 5
    bodies = [orjson.loads(b) for (b,) in store.connection.execute("SELECT body FROM outbox ORDER BY id")]
    assert bodies == [[T0, T0 + NS, T0 + 2 * NS], [T0 + 3 * NS, T0 + 4 * NS]]
    labels = {"source": "mqtt:cems", "signal": "k.co2"}
    assert metrics.registry.get_sample_value("kilnwatch_duplicate_readings_total", labels) == 2
    assert metrics.registry.get_sample_value("kilnwatch_conflicting_readings_total", labels) == 1
    store.close()


def test_many_signals_and_late_rows_are_judged_exactly(tmp_path: Path) -> None:
    """Rows older than a signal's newest stored time are looked up one by one; newer ones are not."""
    names = tuple(f"s{i}" for i in range(50))
    store = LocalStore(tmp_path / "kw.sqlite3", names)
    rng = np.random.default_rng(7)
    ts = T0 + np.arange(0, 200, 2) * NS  # even seconds stored
    stored = ReadingBatch.from_columns(
        np.repeat(np.arange(50), 100), np.tile(ts, 50), rng.random(5000), np.zeros(5000)
    )
    store.write(stored)
    # odd seconds are new, even ones repeat: half of them with their value, half with another
    offered_ts = np.tile(T0 + np.arange(200) * NS, 50)
    sig = np.repeat(np.arange(50), 200)
    value = rng.random(len(sig))
    even = (offered_ts - T0) // NS % 2 == 0
    same = even & (rng.random(len(sig)) < 0.5)
    value[same] = stored.value[sig[same] * 100 + (offered_ts[same] - T0) // NS // 2]
    r = store.write(ReadingBatch.from_columns(sig, offered_ts, value, np.zeros(len(sig))))
    assert (r.accepted == ~even).all()
    assert (r.duplicate == same).all()
    assert (r.conflict == (even & ~same)).all()
    store.close()
