"""Fault injection as data: timed events in simulated time, applied to a batch of ticks with numpy.

An `Event` says what happens to which kiln's channels, from when, for how long. `Scenario.apply` takes
the clean model values of a batch of ticks and returns what the instruments report (`Applied`): values,
a per-signal analyser state (0 ok, 1 maintenance, 2 calibration, 3 fault, as on the `cems.status` node),
a per-signal OPC UA status code, which values are not sent at all, and the MQTT-only effects (malformed
payload forms and late release after a gateway reconnect). Presets and seeded random scenarios live in
`simulators.scenario_presets`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

import numpy as np
from asyncua import ua

from simulators.model import ANALYSER_CHANNELS, SIGNAL_KEYS, KilnModel

_NS = 1_000_000_000


class Kind(StrEnum):
    CALIBRATION = "calibration"  # analyser CAL: zero gas for the first half, span gas for the second
    MAINTENANCE = "maintenance"  # analyser MAINT: the probe sees ambient air
    FAULT = "fault"  # analyser FLT: frozen output, Bad status
    DROPOUT = "dropout"  # nothing sent for the channels (MQTT: whole message if all analyser channels)
    STUCK = "stuck"  # value frozen at the event start, status still OK
    SPIKE = "spike"  # value × factor, status OK
    NAN = "nan"  # value NaN, status OK
    MALFORMED = "malformed"  # MQTT only: payload of the given form
    BURST = "burst"  # MQTT only: messages held by the gateway and published at the end of the window
    FLOW_DROPOUT = "flow_dropout"  # OPC UA: stack.flow BadNoCommunication
    BAD_STATUS = "bad_status"  # OPC UA: the channels carry the status code named in `form`


class State(IntEnum):
    """Analyser state, as on the `<kiln>.cems.status` node and in the MQTT `status` fields."""

    OK = 0
    MAINTENANCE = 1
    CALIBRATION = 2
    FAULT = 3


MQTT_STATUS: dict[int, str] = {
    State.OK: "OK",
    State.MAINTENANCE: "MAINT",
    State.CALIBRATION: "CAL",
    State.FAULT: "FLT",
}
MALFORMED_FORMS = ("invalid_json", "missing_value", "string_value", "bad_ts", "future_ts")
_ANALYSER_KEYS = tuple(ANALYSER_CHANNELS.values())
_DEFAULT_CHANNELS: dict[Kind, tuple[str, ...]] = {
    Kind.CALIBRATION: _ANALYSER_KEYS,
    Kind.MAINTENANCE: _ANALYSER_KEYS,
    Kind.FAULT: _ANALYSER_KEYS,
    Kind.DROPOUT: _ANALYSER_KEYS,
    Kind.STUCK: ("stack.co2",),
    Kind.SPIKE: ("stack.co",),
    Kind.NAN: ("stack.co2",),
    Kind.MALFORMED: ("stack.co2",),
    Kind.BURST: _ANALYSER_KEYS,
    Kind.FLOW_DROPOUT: ("stack.flow",),
    Kind.BAD_STATUS: ("stack.flow",),
}
_STATE_OF_KIND = {
    Kind.CALIBRATION: State.CALIBRATION,
    Kind.MAINTENANCE: State.MAINTENANCE,
    Kind.FAULT: State.FAULT,
}
_STATUS_OF_STATE = {
    State.OK: ua.StatusCodes.Good,
    State.MAINTENANCE: ua.StatusCodes.BadOutOfService,
    State.CALIBRATION: ua.StatusCodes.UncertainSensorCalibration,
    State.FAULT: ua.StatusCodes.BadSensorFailure,
}
ZERO_GAS = dict.fromkeys(_ANALYSER_KEYS, 0.0)
"""Reading on zero gas (N2) [channel units]."""
SPAN_GAS = {
    "stack.co2": 18.0,
    "stack.o2": 20.9,
    "stack.h2o": 0.0,
    "stack.co": 800.0,
    "stack.nox": 400.0,
    "stack.so2": 150.0,
    "stack.dust": 40.0,
}
"""Reading on span gas / reference point [channel units]."""
AMBIENT_AIR = {
    "stack.co2": 0.04,
    "stack.o2": 20.9,
    "stack.h2o": 1.0,
    "stack.co": 0.0,
    "stack.nox": 0.0,
    "stack.so2": 0.0,
    "stack.dust": 0.0,
}
"""Reading when the sample line draws ambient air (maintenance, filter change) [channel units]."""


@dataclass(frozen=True)
class Event:
    """One fault in simulated time. `channels` are signal keys; empty means the kind's default."""

    kind: Kind
    kiln: str
    start_ns: int
    duration_s: float
    channels: tuple[str, ...] = ()
    form: str = ""
    """MALFORMED: one of `MALFORMED_FORMS`; BAD_STATUS: an OPC UA status code name."""
    factor: float = 3.0
    """SPIKE: multiplier."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", Kind(self.kind))
        unknown = set(self.channels) - set(SIGNAL_KEYS)
        if unknown:
            raise ValueError(f"unknown channels {sorted(unknown)}")
        if self.kind is Kind.MALFORMED and self.form not in MALFORMED_FORMS:
            raise ValueError(f"malformed form must be one of {MALFORMED_FORMS}, got {self.form!r}")
        if self.kind is Kind.BAD_STATUS and self.form and not hasattr(ua.StatusCodes, self.form):
            raise ValueError(f"unknown OPC UA status code {self.form!r}")

    @property
    def end_ns(self) -> int:
        return self.start_ns + round(self.duration_s * _NS)

    @property
    def keys(self) -> tuple[str, ...]:
        return self.channels or _DEFAULT_CHANNELS[self.kind]


@dataclass
class Applied:
    """What the instruments of one kiln report for a batch of ticks."""

    t_ns: np.ndarray
    values: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    """Per signal: `State` per tick (int8)."""
    status_code: dict[str, np.ndarray]
    """Per signal: OPC UA status code per tick (uint32)."""
    send: dict[str, np.ndarray]
    """Per signal: False where nothing is sent (dropout)."""
    rack_state: np.ndarray
    """Analyser rack state per tick (the most severe active CAL/MAINT/FLT event)."""
    malformed: list[tuple[np.ndarray, Event]] = field(default_factory=list)
    """MQTT: (tick mask, event) per malformed-payload event."""
    release_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """MQTT: simulated time at which the gateway publishes each tick (later than t_ns during a burst)."""


class Scenario:
    """An immutable list of events."""

    def __init__(self, events: Iterable[Event] = ()) -> None:
        self.events: tuple[Event, ...] = tuple(sorted(events, key=lambda e: e.start_ns))

    def __len__(self) -> int:
        return len(self.events)

    def __add__(self, other: Scenario) -> Scenario:
        return Scenario(self.events + other.events)

    def for_kiln(self, kiln: str, start_ns: int, end_ns: int) -> list[Event]:
        """Events of `kiln` that overlap [start_ns, end_ns)."""
        return [e for e in self.events if e.kiln == kiln and e.start_ns < end_ns and e.end_ns > start_ns]

    def apply(self, model: KilnModel, t_ns: np.ndarray, clean: Mapping[str, np.ndarray]) -> Applied:
        """Inject the events active at `t_ns` into the model values `clean` (not modified)."""
        n = t_ns.shape[0]
        values = {k: np.array(clean[k], dtype=np.float64) for k in SIGNAL_KEYS}
        state = {k: np.zeros(n, np.int8) for k in SIGNAL_KEYS}
        bad_code = {k: np.zeros(n, np.uint32) for k in SIGNAL_KEYS}
        send = {k: np.ones(n, bool) for k in SIGNAL_KEYS}
        out = Applied(t_ns, values, state, {}, send, np.zeros(n, np.int8), release_ns=t_ns.copy())
        if n == 0:
            out.status_code = bad_code
            return out
        for ev in self.for_kiln(model.kiln_id, int(t_ns[0]), int(t_ns[-1]) + 1):
            mask = (t_ns >= ev.start_ns) & (t_ns < ev.end_ns)
            if mask.any():
                self._apply_one(model, ev, mask, out, bad_code)
        out.status_code = {k: self._status_codes(state[k], bad_code[k]) for k in SIGNAL_KEYS}
        return out

    @staticmethod
    def _status_codes(state: np.ndarray, bad_code: np.ndarray) -> np.ndarray:
        codes = np.zeros(state.shape, np.uint32)
        for st, code in _STATUS_OF_STATE.items():
            codes[state == st] = code
        return np.where(bad_code != 0, bad_code, codes)

    @staticmethod
    def _apply_one(model: KilnModel, ev: Event, mask: np.ndarray, out: Applied, bad_code: dict) -> None:
        kind = ev.kind
        if kind in _STATE_OF_KIND:
            st = _STATE_OF_KIND[kind]
            out.rack_state[mask] = np.maximum(out.rack_state[mask], st)
        if kind is Kind.BURST:
            out.release_ns[mask] = np.maximum(out.release_ns[mask], ev.end_ns)
            return
        if kind is Kind.MALFORMED:
            out.malformed.append((mask, ev))
            return
        held = model.sample(np.array([ev.start_ns], np.int64)) if kind in (Kind.STUCK, Kind.FAULT) else {}
        mid_ns = ev.start_ns + (ev.end_ns - ev.start_ns) // 2
        for key in ev.keys:
            v = out.values[key]
            if kind is Kind.CALIBRATION:
                zero_half = mask & (out.t_ns < mid_ns)
                v[zero_half] = ZERO_GAS.get(key, v[zero_half])
                v[mask & ~zero_half] = SPAN_GAS.get(key, v[mask & ~zero_half])
            elif kind is Kind.MAINTENANCE:
                v[mask] = AMBIENT_AIR.get(key, v[mask])
            elif kind in (Kind.FAULT, Kind.STUCK):
                v[mask] = held[key][0]
            elif kind is Kind.SPIKE:
                v[mask] *= ev.factor
            elif kind is Kind.NAN:
                v[mask] = np.nan
            elif kind is Kind.DROPOUT:
                out.send[key][mask] = False
            elif kind is Kind.FLOW_DROPOUT:
                bad_code[key][mask] = ua.StatusCodes.BadNoCommunication
            elif kind is Kind.BAD_STATUS:
                bad_code[key][mask] = getattr(ua.StatusCodes, ev.form or "BadSensorFailure")
            if kind in _STATE_OF_KIND:
                out.state[key][mask] = np.maximum(out.state[key][mask], _STATE_OF_KIND[kind])
