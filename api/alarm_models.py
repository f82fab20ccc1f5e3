"""What ``/api/v1/alarms`` and its actions answer: alarms with their lifecycle state, each kiln's
status, the bodies of the operator's actions and the events of the history."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .alarm_lifecycle import SHELVED, Occurrence
from .alarms import Alarm
from .timeparse import iso


class AlarmOut(BaseModel):
    id: str
    kind: str = Field(
        description="stale, maintenance, calibration, fault, source, intensity, co2, completeness"
    )
    severity: str = Field(description="alarm or warning")
    kiln: str | None
    message: str = Field(description="in English")
    code: str = Field(description="stable message code; with params, the message in any language")
    params: dict[str, float | str] = Field(description="values the message names, by name")
    start: str = Field(description="wall-clock time the alarm was raised, ISO 8601 UTC")
    end: str | None = Field(description="wall-clock time it cleared itself; null while active")
    active: bool
    data_time: str | None = Field(description="the minute or hour (event time) the alarm refers to")
    subjects: list[str]
    state: str = Field(
        default="normal",
        description="active_unacknowledged, active_acknowledged, cleared_unacknowledged, shelved, "
        "suppressed (by design: the kiln is not operating), normal (over)",
    )
    acknowledged_by: str | None = None
    acknowledged_at: str | None = None
    shelved_by: str | None = None
    shelved_until: str | None = None
    shelve_reason: str | None = None


class KilnStatusOut(BaseModel):
    status: str = Field(description="valid, stale, maintenance, fault, catching_up, invalid, no_data")
    detail: str
    lag_s: float | None = Field(description="wall clock minus the end of the newest minute [s]")
    minute_age_s: float | None = Field(description="since a new minute arrived [s]")
    valid_age_s: float | None = Field(description="since a new valid minute arrived [s]")


class AlarmsResponse(BaseModel):
    time: str
    stale_after_s: float
    catch_up_lag_s: float
    kilns: dict[str, KilnStatusOut]
    active: list[AlarmOut] = Field(description="annunciated: active, acknowledged or not")
    cleared: list[AlarmOut] = Field(
        description="cleared before anybody acknowledged them (first), then recently cleared ones, "
        "newest first"
    )
    shelved: list[AlarmOut] = Field(default_factory=list)
    suppressed: list[AlarmOut] = Field(default_factory=list, description="by design: the kiln is stopped")
    version: int


class ActionBody(BaseModel):
    reason: str = Field(default="", max_length=500)


class ShelveBody(BaseModel):
    duration_s: float = Field(gt=0, description="how long the alarm stays shelved [s]")
    reason: str = Field(min_length=1, max_length=500, description="why (kept in the history and audit)")


class AlarmEventOut(BaseModel):
    time: str
    id: str
    kind: str
    kiln: str | None
    event: str = Field(description="raised, cleared, acknowledged, shelved, unshelved, suppressed, released")
    actor: str | None = Field(description="the token's name; null for the system")
    state: str | None = Field(description="the alarm's state after the event")
    detail: dict[str, Any]


def _common(x: Alarm | Occurrence) -> dict[str, Any]:
    """What an alarm and a stored occurrence of it both say."""
    return {
        "id": x.key,
        "kind": x.kind,
        "severity": x.severity,
        "kiln": x.kiln,
        "message": x.message,
        "code": x.code,
        "params": x.params,
        "start": iso(x.start_ns),
        "end": None if x.end_ns is None else iso(x.end_ns),
        "active": x.active,
    }


def alarm_out(a: Alarm) -> AlarmOut:
    data_time = None if a.data_time_ns is None else iso(a.data_time_ns)
    return AlarmOut(**_common(a), data_time=data_time, subjects=list(a.subjects))


def occurrence_out(occ: Occurrence, alarm: Alarm | None, now_ns: int) -> AlarmOut:
    """The alarm as the book has it (or, restored after a restart, as stored) with its lifecycle state."""
    base = alarm_out(alarm) if alarm is not None else AlarmOut(**_common(occ), data_time=None, subjects=[])
    state = occ.state(now_ns)
    shelved = state == SHELVED  # an expired shelve the watch has not yet ended is over
    return base.model_copy(
        update={
            "state": state,
            "acknowledged_by": occ.acked_by,
            "acknowledged_at": None if occ.acked_ns is None else iso(occ.acked_ns),
            "shelved_by": occ.shelved_by if shelved else None,
            "shelved_until": iso(occ.shelved_until_ns) if shelved and occ.shelved_until_ns else None,
            "shelve_reason": occ.shelve_reason if shelved else None,
        }
    )
