"""Annotations of a kiln's timeline: operators create, end and cancel them; viewers read them.

Nothing is deleted: ending or cancelling appends a revision (collector.store.annotations), and
every change is one row of the audit trail. A change to a ``kiln_stopped`` annotation hands the
kiln's stopped ranges to the engine, which recomputes the hours they cover (revision + 1).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import AwareDatetime, BaseModel, Field, model_validator

from .context import ApiContext
from .deps import Context, Kiln
from .security.auth import Operator
from .timeparse import iso, parse_time

router = APIRouter(prefix="/api/v1")

Kind = Literal["kiln_stopped", "maintenance", "analyser_swap", "fuel_change", "note"]


class AnnotationIn(BaseModel):
    kind: Kind
    start: AwareDatetime
    end: AwareDatetime | None = Field(default=None, description="None: still going on (end it later)")
    title: str = Field(min_length=1, max_length=200)
    text: str = Field(default="", max_length=4000)
    reason: str = Field(default="", max_length=1000)

    @model_validator(mode="after")
    def _end_after_start(self) -> AnnotationIn:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class AnnotationEnd(BaseModel):
    end: AwareDatetime
    reason: str = Field(default="", max_length=1000)


class AnnotationCancel(BaseModel):
    reason: str = Field(min_length=1, max_length=1000, description="why it is cancelled")


class AnnotationOut(BaseModel):
    id: int
    revision: int
    kiln: str
    kind: str
    start: str
    end: str | None
    title: str
    text: str
    cancelled: bool
    actor: str
    at: str
    reason: str


def _ns(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000) * 1000


def out(a: Any) -> AnnotationOut:
    return AnnotationOut(
        id=a.id,
        revision=a.revision,
        kiln=a.kiln,
        kind=a.kind,
        start=iso(a.start_ns),
        end=None if a.end_ns is None else iso(a.end_ns),
        title=a.title,
        text=a.text,
        cancelled=a.cancelled,
        actor=a.actor,
        at=iso(a.at_ns),
        reason=a.reason,
    )


def _store(ctx: ApiContext) -> Any:
    if ctx.annotations is None:
        raise HTTPException(503, detail="annotations are not kept by this server")
    return ctx.annotations


def _audit(
    ctx: ApiContext, actor: str, action: str, subject: str, before: Any, after: Any, reason: str
) -> None:
    if ctx.audit is not None:
        ctx.audit.record(actor, action, subject, before=before, after=after, reason=reason)


def _changed(ctx: ApiContext, kiln: str, kind: str, start_ns: int, end_ns: int | None) -> None:
    if kind == "kiln_stopped" and ctx.overrides_changed is not None:
        ctx.overrides_changed(kiln, start_ns, end_ns)


@router.get("/kilns/{kiln_id}/annotations", response_model=list[AnnotationOut])
async def list_annotations(
    kiln: Kiln,
    ctx: Context,
    start: Annotated[str | None, Query(description="ISO 8601; default: all")] = None,
    end: Annotated[str | None, Query(description="ISO 8601; default: all")] = None,
) -> list[AnnotationOut]:
    """The current revision of the kiln's annotations overlapping [start, end), cancelled ones too."""
    if ctx.annotations is None:
        return []
    lo = parse_time(start, "start") if start else None
    hi = parse_time(end, "end") if end else None
    return [out(a) for a in ctx.annotations.current(kiln.id, lo, hi)]


@router.post("/kilns/{kiln_id}/annotations", response_model=AnnotationOut, status_code=201)
async def create_annotation(kiln: Kiln, ctx: Context, body: AnnotationIn, who: Operator) -> AnnotationOut:
    store = _store(ctx)
    start_ns, end_ns = _ns(body.start), None if body.end is None else _ns(body.end)

    def write() -> Any:
        a = store.create(kiln.id, body.kind, start_ns, end_ns, body.title, body.text, who.name, body.reason)
        _audit(
            ctx, who.name, "annotation.create", f"{kiln.id}/annotation/{a.id}", None, a.to_dict(), body.reason
        )
        return a

    a = await asyncio.to_thread(write)
    _changed(ctx, kiln.id, a.kind, a.start_ns, a.end_ns)
    return out(a)


async def _revise(
    kiln: str, ctx: ApiContext, annotation_id: int, who: str, action: str, reason: str, **change: Any
) -> AnnotationOut:
    store = _store(ctx)
    current = store.get(annotation_id)
    if current is None or current.kiln != kiln:
        raise HTTPException(404, detail=f"kiln {kiln} has no annotation {annotation_id}")

    def write() -> tuple[Any, Any]:
        before, after = store.revise(annotation_id, who, reason=reason, **change)
        _audit(
            ctx, who, action, f"{kiln}/annotation/{annotation_id}", before.to_dict(), after.to_dict(), reason
        )
        return before, after

    try:
        before, after = await asyncio.to_thread(write)
    except ValueError as err:
        raise HTTPException(409, detail=str(err)) from err
    # The hours either revision covers: an open end (None) reaches up to now.
    ends = [before.end_ns, after.end_ns]
    _changed(ctx, kiln, after.kind, after.start_ns, None if None in ends else max(e for e in ends if e))
    return out(after)


@router.post("/kilns/{kiln_id}/annotations/{annotation_id}/end", response_model=AnnotationOut)
async def end_annotation(
    kiln: Kiln, ctx: Context, annotation_id: int, body: AnnotationEnd, who: Operator
) -> AnnotationOut:
    """Set (or move) the end of an annotation: a new revision."""
    return await _revise(
        kiln.id, ctx, annotation_id, who.name, "annotation.end", body.reason, end_ns=_ns(body.end)
    )


@router.post("/kilns/{kiln_id}/annotations/{annotation_id}/cancel", response_model=AnnotationOut)
async def cancel_annotation(
    kiln: Kiln, ctx: Context, annotation_id: int, body: AnnotationCancel, who: Operator
) -> AnnotationOut:
    """Cancel an annotation entered by mistake: a new revision; the old ones stay readable."""
    return await _revise(kiln.id, ctx, annotation_id, who.name, "annotation.cancel", body.reason, cancel=True)


@router.get("/kilns/{kiln_id}/annotations/{annotation_id}/history", response_model=list[AnnotationOut])
async def annotation_history(kiln: Kiln, ctx: Context, annotation_id: int) -> list[AnnotationOut]:
    """Every revision of one annotation, oldest first."""
    revisions = (
        [] if ctx.annotations is None else await asyncio.to_thread(ctx.annotations.history, annotation_id)
    )
    revisions = [a for a in revisions if a.kiln == kiln.id]
    if not revisions:
        raise HTTPException(404, detail=f"kiln {kiln.id} has no annotation {annotation_id}")
    return [out(a) for a in revisions]
