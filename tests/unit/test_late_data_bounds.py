"""The late-data component counts late readings per kiln and keeps substitution history bounded."""

from __future__ import annotations

import numpy as np

from collector.metrics import Metrics
from kilnwatch.late_data import LateData
from tests.unit.engine_helpers import HOUR, T0, engine, series

DAY = 24 * HOUR


def late_data(max_age_days: int = 7) -> tuple[LateData, Metrics]:
    eng, table = engine()
    metrics = Metrics()
    # reader, pipeline and emit are not used by count() and forget()
    component = LateData(eng, table, None, None, lambda out: None, metrics, max_age_days * DAY)  # type: ignore[arg-type]
    return component, metrics


def test_late_readings_are_counted_once_each() -> None:
    component, metrics = late_data()
    eng, table = component.engine, component.table
    on_time = series(table, "flow", T0, np.full(20 * 60, 400_000.0))
    eng.ingest(on_time, 0.0)
    assert eng.advance_all().minutes
    component.count()
    assert metrics.registry.get_sample_value("kilnwatch_late_readings_total", {"kiln": "k"}) is None
    eng.ingest(series(table, "co2", T0, np.full(120, 20.0)), 1.0)  # minutes already closed
    component.count()
    component.count()
    assert metrics.registry.get_sample_value("kilnwatch_late_readings_total", {"kiln": "k"}) == 120


def test_history_out_of_the_windows_reach_is_forgotten() -> None:
    component, _ = late_data(max_age_days=7)
    state = component.engine.kilns["k"]
    last_year, this_year = T0 - 30 * DAY, T0 + 30 * DAY  # T0 is 1 January
    state.hour_revision.update({last_year: 2, this_year: 1})
    component.forget(now_ns=T0 + 3 * DAY)  # the window still reaches last year: kept
    assert set(state.hour_revision) == {last_year, this_year}
    component.forget(now_ns=T0 + 60 * DAY)
    assert set(state.hour_revision) == {this_year}
