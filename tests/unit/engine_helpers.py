"""Small builders for engine tests: a one-kiln signal table on standard dry flow."""

from __future__ import annotations

import numpy as np

from analytics.batch import ReadingBatch
from analytics.engine import EmissionsEngine, EngineParams
from analytics.signals import KilnSpec, Quantity, SignalInfo, SignalTable

HOUR = 3600 * 10**9
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00Z, on an hour boundary

SIGNALS = {
    "flow": SignalInfo("k.flow", "p", "k", Quantity.FLOW, "Nm3/h", "dry", "standard"),
    "co2": SignalInfo("k.co2", "p", "k", Quantity.CO2, "vol %", "dry"),
    "clinker": SignalInfo("k.clinker", "p", "k", Quantity.CLINKER_RATE, "t/h"),
}


def engine(**params: float) -> tuple[EmissionsEngine, SignalTable]:
    table = SignalTable(list(SIGNALS.values()))
    kiln = KilnSpec.from_table(table, "k", "Kiln", "p")
    return EmissionsEngine(table, [kiln], EngineParams(**params)), table  # type: ignore[arg-type]


def series(
    table: SignalTable,
    name: str,
    start: int,
    values: np.ndarray,
    quality: np.ndarray | None = None,
    step_s: int = 1,
) -> ReadingBatch:
    n = len(values)
    q = np.zeros(n, np.uint8) if quality is None else quality
    return ReadingBatch.from_columns(
        np.full(n, table.index(SIGNALS[name].id)), start + np.arange(n) * step_s * 10**9, values, q
    )


def per_minute(values_per_minute: list[float]) -> np.ndarray:
    return np.repeat(np.asarray(values_per_minute, dtype=float), 60)
