"""JSON payloads of a CEMS analyser gateway, one message per kiln per tick.

    {"ts": "2026-11-28T12:00:00.000Z", "status": "OK",
     "channels": {"co2": {"value": 22.01, "unit": "vol%", "status": "OK"}, "o2": {...}, ...}}

`ts` is the analyser's timestamp (simulated time, ISO 8601 UTC with ms); statuses use the gateway
vocabulary OK / MAINT / CAL / FLT. Scenario effects that only exist on this path (dropped channels,
malformed payloads, late release after a reconnect) are applied here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from simulators.model import ANALYSER_CHANNELS, SIGNAL_UNITS
from simulators.scenarios import MQTT_STATUS, Applied

FUTURE_TS_OFFSET_S = 3600
"""How far ahead a `future_ts` payload claims to be [s]."""


@dataclass(frozen=True)
class Message:
    t_ns: int
    """Simulated time the reading belongs to [ns]."""
    release_ns: int
    """Simulated time the gateway sends it [ns]."""
    payload: bytes


def iso_ms(t_ns: np.ndarray) -> list[str]:
    """ISO 8601 UTC strings with milliseconds and `Z`, e.g. `2026-11-28T12:00:00.000Z`."""
    stamps = np.datetime_as_string(
        np.asarray(t_ns, np.int64).astype("datetime64[ns]").astype("datetime64[ms]"), unit="ms"
    )
    return [f"{s}Z" for s in stamps]


def build_messages(applied: Applied, decimals: int | None = None) -> list[Message]:
    """One message per tick of `applied`; ticks whose analyser channels are all dropped give none."""
    t_ns = applied.t_ns
    n = t_ns.shape[0]
    ts = iso_ms(t_ns)
    future = iso_ms(t_ns + FUTURE_TS_OFFSET_S * 1_000_000_000)
    cols = []
    for name, key in ANALYSER_CHANNELS.items():
        values = applied.values[key]
        if decimals is not None:
            values = np.round(values, decimals)
        cols.append(
            (
                name,
                SIGNAL_UNITS[key],
                values.tolist(),
                applied.state[key].tolist(),
                applied.send[key].tolist(),
            )
        )
    rack = applied.rack_state.tolist()
    forms: list[list[tuple[str, tuple[str, ...]]]] = [[] for _ in range(n)]
    for mask, ev in applied.malformed:
        names = tuple(c for c, k in ANALYSER_CHANNELS.items() if k in ev.keys) or ("co2",)
        for i in np.flatnonzero(mask).tolist():
            forms[i].append((ev.form, names))
    release = applied.release_ns.tolist()
    out = []
    for i in range(n):
        channels = {
            name: {"value": vals[i], "unit": unit, "status": MQTT_STATUS[states[i]]}
            for name, unit, vals, states, send in cols
            if send[i]
        }
        if not channels:
            continue
        doc: dict[str, object] = {"ts": ts[i], "status": MQTT_STATUS[rack[i]], "channels": channels}
        raw = None
        for form, names in forms[i]:
            raw = _malform(doc, form, names, future[i]) or raw
        payload = raw if raw is not None else json.dumps(doc, separators=(",", ":")).encode()
        out.append(Message(int(t_ns[i]), int(release[i]), payload))
    return out


def _malform(doc: dict[str, object], form: str, names: tuple[str, ...], future_ts: str) -> bytes | None:
    """Alter `doc` in place for dict-level forms; return raw bytes for forms that are not JSON at all."""
    channels = doc["channels"]
    assert isinstance(channels, dict)
    if form == "invalid_json":
        text = json.dumps(doc, separators=(",", ":")).encode()
        return text[: len(text) // 2]
    if form == "bad_ts":
        doc["ts"] = "28/11/2026 25:61"
    elif form == "future_ts":
        doc["ts"] = future_ts
    for name in names:
        if name not in channels:
            continue
        if form == "missing_value":
            channels[name].pop("value", None)
        elif form == "string_value":
            channels[name]["value"] = "n/a"
    return None
