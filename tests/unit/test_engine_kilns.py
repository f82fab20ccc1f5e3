"""Batches that mix kilns: each kiln gets its own rows, watermark, late data and minutes."""

from __future__ import annotations

import numpy as np

from analytics.batch import ReadingBatch
from analytics.engine import EmissionsEngine, EngineParams
from analytics.signals import KilnSpec, Quantity, SignalInfo, SignalTable

T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00Z
S = 10**9
MIN = 60 * S


def _table() -> SignalTable:
    signals = []
    for kiln in ("a", "b", "c"):
        signals += [
            SignalInfo(f"{kiln}.flow", "p", kiln, Quantity.FLOW, "Nm3/h", "dry", "standard"),
            SignalInfo(f"{kiln}.co2", "p", kiln, Quantity.CO2, "vol %", "dry"),
            SignalInfo(f"{kiln}.clinker", "p", kiln, Quantity.CLINKER_RATE, "t/h"),
        ]
    return SignalTable(signals)


def _engine(table: SignalTable) -> EmissionsEngine:
    # kiln c is in the table but not run by this engine: its rows must be ignored
    kilns = [KilnSpec.from_table(table, k, k, "p") for k in ("a", "b")]
    return EmissionsEngine(table, kilns, EngineParams(lateness_s=0))


def _readings(table: SignalTable, kiln: str, start: int, seconds: int, co2: float) -> ReadingBatch:
    ids = [table.index(f"{kiln}.{q}") for q in ("flow", "co2", "clinker")]
    values = {ids[0]: 400_000.0, ids[1]: co2, ids[2]: 200.0}
    sig = np.repeat(ids, seconds)
    ts = np.tile(start + np.arange(seconds) * S, len(ids))
    return ReadingBatch.from_columns(sig, ts, [values[i] for i in sig], np.zeros(len(sig)))


def _co2_by_minute(out: list) -> dict[tuple[str, int], float]:
    return {(m.kiln, m.start_ns): m.co2_t_per_h for m in out}


def test_a_mixed_shuffled_batch_gives_what_separate_batches_give() -> None:
    table = _table()
    a = _readings(table, "a", T0, 180, 20.0)
    b = _readings(table, "b", T0, 180, 25.0)
    c = _readings(table, "c", T0, 180, 30.0)
    mixed = ReadingBatch.concat([a, b, c])
    mixed = mixed.take(np.random.default_rng(3).permutation(len(mixed)))

    together = _engine(table)
    together.ingest(mixed, 0.0)
    separate = _engine(table)
    separate.ingest(a, 0.0)
    separate.ingest(b, 0.0)

    got = _co2_by_minute(together.advance(0.0).minutes)
    assert got == _co2_by_minute(separate.advance(0.0).minutes)
    assert sorted(got) == [(k, T0 + i * MIN) for k in ("a", "b") for i in range(2)]
    assert got[("b", T0)] > got[("a", T0)]


def test_late_rows_and_a_lagging_kiln_stay_with_their_kiln() -> None:
    table = _table()
    eng = _engine(table)
    eng.ingest(ReadingBatch.concat([_readings(table, k, T0, 150, 20.0) for k in ("a", "b")]), 0.0)
    eng.advance(0.0)
    # one batch: kiln a late (a closed minute) and current, kiln b only current but lagging
    late_a = _readings(table, "a", T0 + 10 * S, 1, 21.0)
    now_a = _readings(table, "a", T0 + 150 * S, 60, 20.0)
    now_b = _readings(table, "b", T0 + 150 * S, 5, 20.0)
    eng.ingest(ReadingBatch.concat([now_b, late_a, now_a]), 1.0)

    assert eng.late_ranges() == [("a", T0, T0 + MIN)]
    closed = {(m.kiln, m.start_ns) for m in eng.advance(1.0).minutes}
    assert closed == {("a", T0 + 2 * MIN)}  # b's watermark is still in minute 2
    assert eng.watermark("b") == T0 + 154 * S
