"""Seeded random scenarios and named presets (`none`, `demo`, `chaos`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from simulators.scenarios import MALFORMED_FORMS, Event, Kind, Scenario
from simulators.variation import stream_key

_NS = 1_000_000_000
_DAY_NS = 86_400 * _NS

DURATION_S: dict[Kind, tuple[float, float]] = {
    Kind.MAINTENANCE: (1200.0, 3600.0),
    Kind.FAULT: (300.0, 1800.0),
    Kind.DROPOUT: (10.0, 300.0),
    Kind.STUCK: (600.0, 1800.0),
    Kind.SPIKE: (5.0, 30.0),
    Kind.NAN: (1.0, 10.0),
    Kind.MALFORMED: (1.0, 5.0),
    Kind.BURST: (120.0, 600.0),
    Kind.FLOW_DROPOUT: (10.0, 60.0),
    Kind.BAD_STATUS: (10.0, 60.0),
}
"""Range of event durations per kind [s]."""

PRESET_RATES: dict[str, dict[Kind, float]] = {
    "none": {},
    "demo": {Kind.SPIKE: 2.0, Kind.STUCK: 0.5, Kind.DROPOUT: 1.0, Kind.BURST: 1.0, Kind.NAN: 2.0},
    "chaos": {
        Kind.MAINTENANCE: 1.0,
        Kind.FAULT: 2.0,
        Kind.DROPOUT: 12.0,
        Kind.STUCK: 4.0,
        Kind.SPIKE: 24.0,
        Kind.NAN: 24.0,
        Kind.MALFORMED: 48.0,
        Kind.BURST: 6.0,
        Kind.FLOW_DROPOUT: 6.0,
        Kind.BAD_STATUS: 6.0,
    },
}
"""Events per kiln per simulated day, by preset."""
PRESET_CALIBRATION_H: dict[str, float] = {"none": 0.0, "demo": 24.0, "chaos": 6.0}
"""Interval of automatic zero/span checks (QAL3) per preset [h]; 0 = none."""


def daily_calibrations(
    kiln: str, start_ns: int, end_ns: int, seed: int, interval_h: float = 24.0, minutes: float = 10.0
) -> list[Event]:
    """Automatic zero/span checks every `interval_h` at a seeded time of the cycle, `minutes` long."""
    if interval_h <= 0:
        return []
    rng = np.random.default_rng(stream_key(seed, "calibration", kiln))
    interval_ns = round(interval_h * 3600 * _NS)
    phase_ns = int(rng.integers(0, interval_ns))
    first = (start_ns - phase_ns) // interval_ns * interval_ns + phase_ns
    return [
        Event(Kind.CALIBRATION, kiln, t, minutes * 60.0)
        for t in range(first, end_ns, interval_ns)
        if t + round(minutes * 60 * _NS) > start_ns
    ]


def random_scenario(
    kilns: Iterable[str],
    start_ns: int,
    end_ns: int,
    seed: int,
    rates_per_day: Mapping[Kind, float],
    calibration_interval_h: float = 24.0,
    calibration_minutes: float = 10.0,
) -> Scenario:
    """Poisson-distributed events of each kind in [start_ns, end_ns), reproducible from `seed`."""
    events: list[Event] = []
    days = max(end_ns - start_ns, 0) / _DAY_NS
    for kiln in kilns:
        events += daily_calibrations(
            kiln, start_ns, end_ns, seed, calibration_interval_h, calibration_minutes
        )
        for kind, rate in rates_per_day.items():
            rng = np.random.default_rng(stream_key(seed, "events", kiln, kind.value))
            count = int(rng.poisson(rate * days))
            starts = rng.integers(start_ns, max(end_ns, start_ns + 1), count)
            lo, hi = DURATION_S[kind]
            durations = rng.uniform(lo, hi, count)
            forms = rng.choice(MALFORMED_FORMS, count) if kind is Kind.MALFORMED else [""] * count
            events += [
                Event(kind, kiln, int(s), float(d), form=str(f))
                for s, d, f in zip(starts, durations, forms, strict=True)
            ]
    return Scenario(events)


def preset(name: str, kilns: Iterable[str], start_ns: int, end_ns: int, seed: int) -> Scenario:
    """A named preset over [start_ns, end_ns)."""
    if name not in PRESET_RATES:
        raise ValueError(f"unknown scenario preset {name!r}; known: {sorted(PRESET_RATES)}")
    return random_scenario(
        kilns, start_ns, end_ns, seed, PRESET_RATES[name], calibration_interval_h=PRESET_CALIBRATION_H[name]
    )
