"""Lab and production values of a kiln: operators enter them (one by one or as CSV), viewers read them.

Each value is validated (known quantity, its unit, a plausible range, a configured fuel for fuel
values), stored with its validity period (collector.store.manual_data), recorded in the audit trail,
and handed to the engine, which recomputes the hours from its validity start (revision + 1).
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import weakref
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from prometheus_client import CollectorRegistry, Counter
from pydantic import AwareDatetime, BaseModel, Field, ValidationError, model_validator

from analytics.overrides import FUEL_QUANTITIES, QUANTITIES, ManualEntry

from .context import ApiContext
from .deps import Context, Kiln
from .security.auth import Operator
from .timeparse import iso

router = APIRouter(prefix="/api/v1")
log = logging.getLogger(__name__)
_refused: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()


def _count_refused(registry: CollectorRegistry, kiln: str, n: int) -> None:
    """``kilnwatch_manual_rows_refused_total{kiln}``: CSV rows an import refused."""
    counter = _refused.get(registry)
    if counter is None:
        counter = _refused[registry] = Counter(
            "kilnwatch_manual_rows_refused", "manual-data CSV rows refused", ["kiln"], registry=registry
        )
    counter.labels(kiln).inc(n)


#: Largest CSV import [bytes] and rows.
MAX_IMPORT_BYTES = 1_000_000
MAX_IMPORT_ROWS = 10_000
CSV_COLUMNS = ("quantity", "value", "unit", "valid_from", "valid_to", "fuel", "sample")
_QUANTITY_HELP = "; ".join(f"{q} [{u}] {lo:g}..{hi:g}" for q, (u, lo, hi) in QUANTITIES.items())


class ManualIn(BaseModel):
    quantity: str = Field(description=_QUANTITY_HELP)
    value: float
    unit: str | None = Field(default=None, description="if given, must be the quantity's unit")
    valid_from: AwareDatetime
    valid_to: AwareDatetime | None = Field(default=None, description="None: until the next value")
    fuel: str | None = Field(default=None, description="the plant file's fuel name (NCV and EF only)")
    sample: str = Field(default="", max_length=200, description="lab sample or delivery note")
    reason: str = Field(default="", max_length=1000)

    @model_validator(mode="after")
    def _plausible(self) -> ManualIn:
        if self.quantity not in QUANTITIES:
            raise ValueError(f"unknown quantity {self.quantity!r}; known: {', '.join(QUANTITIES)}")
        unit, lo, hi = QUANTITIES[self.quantity]
        if self.unit is not None and self.unit.strip() != unit:
            raise ValueError(f"{self.quantity} is in {unit!r}, not {self.unit!r}")
        if not lo <= self.value <= hi:
            raise ValueError(f"{self.quantity}={self.value:g} {unit} is outside the plausible {lo:g}..{hi:g}")
        if (self.quantity in FUEL_QUANTITIES) != bool(self.fuel):
            raise ValueError(
                f"{self.quantity} needs a fuel"
                if self.quantity in FUEL_QUANTITIES
                else "only NCV and EF name a fuel"
            )
        if self.valid_to is not None and self.valid_to <= self.valid_from:
            raise ValueError("valid_to must be after valid_from")
        return self


class ManualOut(BaseModel):
    id: int
    revision: int
    kiln: str
    quantity: str
    fuel: str | None
    value: float
    unit: str
    valid_from: str
    valid_to: str | None
    sample: str
    withdrawn: bool
    source: str
    actor: str
    at: str
    reason: str


class ImportError_(BaseModel):
    line: int
    error: str


class ImportResult(BaseModel):
    imported: list[ManualOut]
    errors: list[ImportError_]


class Withdraw(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)


def _ns(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000) * 1000


def out(r: Any) -> ManualOut:
    e = r.entry
    return ManualOut(
        id=r.id,
        revision=r.revision,
        kiln=e.kiln,
        quantity=e.quantity,
        fuel=e.fuel,
        value=e.value,
        unit=e.unit,
        valid_from=iso(e.valid_from_ns),
        valid_to=None if e.valid_to_ns is None else iso(e.valid_to_ns),
        sample=e.sample,
        withdrawn=r.withdrawn,
        source=r.source,
        actor=r.actor,
        at=iso(r.at_ns),
        reason=r.reason,
    )


def _store(ctx: ApiContext) -> Any:
    if ctx.manual is None:
        raise HTTPException(503, detail="manual data is not kept by this server")
    return ctx.manual


def kiln_fuels(ctx: ApiContext, kiln_id: str) -> set[str]:
    """The fuel names of the kiln's mass balance (from the method block)."""
    balance = ctx.method.get("kilns", {}).get(kiln_id, {}).get("mass_balance", {})
    return {f["name"] for f in balance.get("fuels", [])}


def _entry(ctx: ApiContext, kiln: str, m: ManualIn) -> Any:
    if m.fuel is not None:
        fuels = kiln_fuels(ctx, kiln)
        if m.fuel not in fuels:
            raise ValueError(
                f"kiln {kiln} has no fuel {m.fuel!r}; its fuels: {', '.join(sorted(fuels)) or 'none'}"
            )
    return ManualEntry(
        kiln,
        m.quantity,
        m.value,
        QUANTITIES[m.quantity][0],
        _ns(m.valid_from),
        None if m.valid_to is None else _ns(m.valid_to),
        m.fuel,
        m.sample,
    )


async def _store_values(
    ctx: ApiContext, kiln: str, entries: list[Any], who: str, source: str, reason: str
) -> list[Any]:
    store = _store(ctx)

    def write() -> list[Any]:
        records = store.add(entries, who, source, reason)
        for r in records:
            if ctx.audit is not None:
                ctx.audit.record(
                    who, "manual.create", f"{kiln}/manual/{r.id}", after=r.to_dict(), reason=reason
                )
        return records

    records = await asyncio.to_thread(write)
    if records and ctx.overrides_changed is not None:
        ctx.overrides_changed(kiln, min(r.entry.valid_from_ns for r in records), None)
    return records


@router.get("/kilns/{kiln_id}/manual", response_model=list[ManualOut])
async def list_manual(kiln: Kiln, ctx: Context) -> list[ManualOut]:
    """The kiln's manual values by validity start, withdrawn ones too."""
    return [] if ctx.manual is None else [out(r) for r in ctx.manual.current(kiln.id)]


@router.post("/kilns/{kiln_id}/manual", response_model=ManualOut, status_code=201)
async def create_manual(kiln: Kiln, ctx: Context, body: ManualIn, who: Operator) -> ManualOut:
    try:
        entry = _entry(ctx, kiln.id, body)
    except ValueError as err:
        raise HTTPException(422, detail=str(err)) from err
    (record,) = await _store_values(ctx, kiln.id, [entry], who.name, "api", body.reason)
    return out(record)


@router.post("/kilns/{kiln_id}/manual/import", response_model=ImportResult)
async def import_manual(kiln: Kiln, ctx: Context, request: Request, who: Operator) -> ImportResult:
    """CSV (``text/csv``, comma or semicolon) with the header ``quantity,value,unit,valid_from,valid_to,
    fuel,sample`` (unit, valid_to, fuel, sample may be empty). The good rows are stored; each bad one is
    reported with its line number and why."""
    if not request.headers.get("content-type", "").startswith("text/csv"):
        raise HTTPException(415, detail="send the file as text/csv")
    body = await request.body()
    if len(body) > MAX_IMPORT_BYTES:
        raise HTTPException(413, detail=f"at most {MAX_IMPORT_BYTES} bytes per import")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise HTTPException(422, detail="the file is not UTF-8") from err
    first = text.split("\n", 1)[0]
    reader = csv.DictReader(io.StringIO(text), delimiter=";" if first.count(";") > first.count(",") else ",")
    missing = {"quantity", "value", "valid_from"} - set(reader.fieldnames or [])
    if missing:
        raise HTTPException(
            422, detail=f"the header lacks {', '.join(sorted(missing))}; columns: {','.join(CSV_COLUMNS)}"
        )
    entries: list[Any] = []
    errors: list[ImportError_] = []
    for row in reader:
        line = reader.line_num
        if len(entries) + len(errors) >= MAX_IMPORT_ROWS:
            errors.append(ImportError_(line=line, error=f"more than {MAX_IMPORT_ROWS} rows: not read"))
            break
        fields = {k: (v or "").strip() for k, v in row.items() if k is not None}
        try:
            m = ManualIn.model_validate({k: v for k, v in fields.items() if v != "" and k in CSV_COLUMNS})
            entries.append(_entry(ctx, kiln.id, m))
        except ValidationError as err:
            errors.append(ImportError_(line=line, error="; ".join(_message(e) for e in err.errors())))
        except ValueError as err:
            errors.append(ImportError_(line=line, error=str(err)))
    records = await _store_values(ctx, kiln.id, entries, who.name, "csv", "CSV import") if entries else []
    if errors:
        _count_refused(ctx.registry, kiln.id, len(errors))
        log.warning(
            "manual-data import for %s by %s: %d rows stored, %d refused (line %d: %s)",
            kiln.id,
            who.name,
            len(records),
            len(errors),
            errors[0].line,
            errors[0].error,
        )
    if ctx.audit is not None:
        summary = {"imported": [r.id for r in records], "errors": [e.model_dump() for e in errors]}
        await asyncio.to_thread(
            ctx.audit.record, who.name, "manual.import", f"{kiln.id}/manual", after=summary
        )
    return ImportResult(imported=[out(r) for r in records], errors=errors)


def _message(e: Any) -> str:
    where = ".".join(str(p) for p in e.get("loc", ()))
    msg = str(e.get("msg", "")).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


@router.post("/kilns/{kiln_id}/manual/{value_id}/withdraw", response_model=ManualOut)
async def withdraw_manual(
    kiln: Kiln, ctx: Context, value_id: int, body: Withdraw, who: Operator
) -> ManualOut:
    """Withdraw a value entered by mistake: a new revision; the plant file's constant (or an earlier
    value) is in force again."""
    store = _store(ctx)
    if not any(r.id == value_id for r in store.current(kiln.id)):
        raise HTTPException(404, detail=f"kiln {kiln.id} has no manual value {value_id}")

    def write() -> Any:
        before, after = store.withdraw(value_id, who.name, body.reason)
        if ctx.audit is not None:
            subject = f"{kiln.id}/manual/{value_id}"
            ctx.audit.record(
                who.name,
                "manual.withdraw",
                subject,
                before=before.to_dict(),
                after=after.to_dict(),
                reason=body.reason,
            )
        return after

    try:
        after = await asyncio.to_thread(write)
    except ValueError as err:
        raise HTTPException(409, detail=str(err)) from err
    if ctx.overrides_changed is not None:
        ctx.overrides_changed(kiln.id, after.entry.valid_from_ns, None)
    return out(after)
