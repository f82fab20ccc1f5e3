"""StoreReader.readings: the batch indexes the names as asked, timestamps stay exact to the ns."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from analytics.aggregates import MinuteAggregate, ParameterStats
from analytics.batch import ReadingBatch
from collector.store.local import LocalStore
from collector.store.reader import StoreReader

T0 = 1_790_000_000_123_456_789  # not representable in float64


def test_readings_come_back_under_the_names_asked_for_in_their_order(tmp_path: Path) -> None:
    names = ("a", "b", "c")
    store = LocalStore(tmp_path / "kw.sqlite3", names)
    store.write(
        ReadingBatch.from_columns(
            [0, 1, 2, 1], [T0, T0 + 1, T0 + 2, T0 + 3], [1.0, np.nan, 3.0, 4.0], [0, 2, 0, 0]
        )
    )
    got_names, batch = StoreReader(store.path).readings(["c", "b", "nope"], T0 + 1, None)
    assert got_names == ["c", "b", "nope"]
    rows = sorted(
        zip(
            batch.signal.tolist(),
            batch.ts.tolist(),
            batch.value.tolist(),
            batch.quality.tolist(),
            strict=True,
        )
    )
    assert rows[0] == (0, T0 + 2, 3.0, 0)
    assert rows[1][:2] == (1, T0 + 1) and np.isnan(rows[1][2]) and rows[1][3] == 2
    assert rows[2] == (1, T0 + 3, 4.0, 0)
    assert batch.ts.dtype == np.int64 and batch.signal.dtype == np.int32
    store.close()


def test_many_signals_are_looked_up_without_a_quadratic_cost(tmp_path: Path) -> None:
    names = tuple(f"s{i}" for i in range(20_000))
    store = LocalStore(tmp_path / "kw.sqlite3", names)
    n = len(names)
    store.write(
        ReadingBatch.from_columns(np.arange(n), np.full(n, T0), np.arange(n, dtype=float), np.zeros(n))
    )
    started = time.perf_counter()
    got_names, batch = StoreReader(store.path).readings(list(reversed(names)))
    elapsed = time.perf_counter() - started
    assert [got_names[i] for i in batch.signal] == [f"s{int(v)}" for v in batch.value]
    assert elapsed < 5.0  # the former list lookups took over a minute for 20 000 names
    store.close()


def test_a_closed_minute_comes_back_as_it_was_written_numpy_numbers_and_nested_stats_included(
    tmp_path: Path,
) -> None:
    stats = ParameterStats(
        mean=np.float64(12.5),
        n_valid=58,
        n_expected=60,
        min=1.0,
        max=np.float64(20.0),
        reasons={"missing": 2},
    )
    minute = MinuteAggregate(
        kiln="k1",
        plant="p",
        start_ns=int(np.int64(T0)),
        co2_t_per_h=np.float64(101.25),
        clinker_t_per_h=None,
        intensity_kg_per_t=None,
        valid=False,
        params={"co2": stats, "flow": ParameterStats(mean=None, n_valid=0, n_expected=60)},
        revision=2,
        n_running=np.int64(60),  # type: ignore[arg-type]
    )
    store = LocalStore(tmp_path / "kw.sqlite3", ("a",))
    store.write_aggregates(minutes=[minute])
    (back,) = StoreReader(store.path).minutes("k1", T0, T0 + 1)
    assert back == minute and back.params["co2"].reasons == {"missing": 2}
    assert type(back.co2_t_per_h) is float and type(back.n_running) is int
    store.close()
