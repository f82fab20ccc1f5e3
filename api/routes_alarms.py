"""``GET /api/v1/alarms``, the operator's actions on them (acknowledge, shelve, unshelve), their
history and ISA-18.2 figures; the alarms themselves are kept by :class:`api.alarm_watch.AlarmWatch`."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response

from .alarm_kpi import Raised, alarm_kpis
from .alarm_models import ActionBody, AlarmEventOut, AlarmOut, AlarmsResponse, ShelveBody
from .csv_dialect import csv_text
from .deps import Watch
from .security.auth import Operator
from .timeparse import iso, time_range

router = APIRouter(prefix="/api/v1")
_NS = 1_000_000_000


@router.get("/alarms", response_model=AlarmsResponse)
async def alarms(watch: Watch) -> AlarmsResponse:
    """Active alarms, recently cleared ones (newest first) and each kiln's status."""
    await watch.evaluate()
    return watch.response()


@router.post("/alarms/{alarm_id:path}/acknowledge", response_model=AlarmOut)
async def acknowledge(alarm_id: str, who: Operator, watch: Watch, body: ActionBody | None = None) -> AlarmOut:
    """Acknowledge an active or cleared alarm (operator): who and when go into the history and audit."""
    return await watch.act(who.name, "acknowledge", alarm_id, body or ActionBody())


@router.post("/alarms/{alarm_id:path}/shelve", response_model=AlarmOut)
async def shelve(alarm_id: str, body: ShelveBody, who: Operator, watch: Watch) -> AlarmOut:
    """Shelve an alarm for ``duration_s`` with a reason (operator). At the expiry it returns
    unacknowledged if still active; shelved, it is not annunciated nor notified."""
    return await watch.act(who.name, "shelve", alarm_id, body)


@router.post("/alarms/{alarm_id:path}/unshelve", response_model=AlarmOut)
async def unshelve(alarm_id: str, who: Operator, watch: Watch, body: ActionBody | None = None) -> AlarmOut:
    """End a shelve before its expiry (operator)."""
    return await watch.act(who.name, "unshelve", alarm_id, body or ActionBody())


_DAY_NS = 86_400 * _NS
_EVENT_FIELDS = ["time", "id", "kind", "kiln", "event", "actor", "state", "detail"]


@router.get("/alarms/history", response_model=list[AlarmEventOut])
async def history(
    watch: Watch,
    start: str | None = None,
    end: str | None = None,
    kiln: str | None = None,
    event: str | None = None,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> Response | list[AlarmEventOut]:
    """Every alarm event in [start, end) (default: the last day), oldest first, with who and when."""
    start_ns, end_ns = time_range(start, end, _DAY_NS, time.time_ns())
    await watch.settled()
    rows = await run_in_threadpool(watch.store.events, start_ns, end_ns, kiln, event, 100_000)
    out = [
        AlarmEventOut(
            time=iso(e.at_ns),
            id=e.key,
            kind=e.kind,
            kiln=e.kiln,
            event=e.event,
            actor=e.actor,
            state=e.detail.get("state"),
            detail={k: v for k, v in e.detail.items() if k != "state"},
        )
        for e in rows
    ]
    if format == "csv":
        text = csv_text((o.model_dump() for o in out), _EVENT_FIELDS)
        return PlainTextResponse(text, media_type="text/csv; charset=utf-8")
    return out


@router.get("/alarms/kpi")
async def kpi(watch: Watch, start: str | None = None, end: str | None = None) -> dict[str, Any]:
    """ISA-18.2 figures over [start, end) (default: the last day): annunciated alarms per operator
    position per 10 minutes and per hour, flood periods, stale and chattering alarms, the most frequent."""
    await watch.evaluate()
    now = time.time_ns()
    start_ns, end_ns = time_range(start, end, _DAY_NS, now)
    await watch.settled()
    events = await run_in_threadpool(watch.store.events, start_ns, end_ns, None, "raised", 1_000_000)
    raised = [Raised(e.at_ns, e.key, e.kiln) for e in events if e.detail.get("annunciated")]
    active = {o.key: o.start_ns for o in watch.lifecycle.occurrences.values() if o.active}
    body = alarm_kpis(
        raised, active, start_ns, end_ns, now, watch.ctx.alarms.lifecycle, [k.id for k in watch.ctx.kilns]
    )
    return {"start": iso(start_ns), "end": iso(end_ns), **body}
