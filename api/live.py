"""The live payload of a kiln: the one serialiser of ``GET /api/v1/kilns/{id}/live`` and of the
``minute`` events of ``/api/v1/stream``. Its fields are :data:`analytics.tables.LIVE`, in order;
``running_minute`` is the provisional value of the minute still open (``ctx.provisional``)."""

from __future__ import annotations

import functools
import time
from typing import Any

import orjson

from analytics import quality as q
from analytics.aggregates import MinuteAggregate
from analytics.minutes import MINUTE_NS
from analytics.schema import num
from analytics.signals import KilnSpec

from .context import ApiContext
from .timeparse import iso

#: Signal times repeat from one request to the next until new readings arrive; formatting them
#: anew was a third of the cost of a live payload.
_iso_cached = functools.lru_cache(maxsize=4096)(iso)


def live_body(ctx: ApiContext, kiln: KilnSpec) -> dict[str, Any]:
    """The live values of a kiln as plain data, keys in the order of ``tables.LIVE``."""
    minute: MinuteAggregate | None = ctx.live.newest_minute(kiln.id)
    signals: dict[str, dict[str, Any]] = {}
    for idx in kiln.signals:
        info = ctx.table.signals[idx]
        now = ctx.live.signal_now(idx)
        signals[info.id] = {
            "value": None if now is None else num(now.value),
            "unit": info.unit,
            "quality": None if now is None else q.describe(now.quality),
            "time": None if now is None else _iso_cached(now.ts_ns),
        }
    return {
        "kiln": kiln.id,
        "time": None if minute is None else _iso_cached(minute.start_ns),
        "co2_t_per_h": None if minute is None else num(minute.co2_t_per_h),
        "clinker_t_per_h": None if minute is None else num(minute.clinker_t_per_h),
        "intensity_kg_per_t": None if minute is None else num(minute.intensity_kg_per_t),
        "valid": False if minute is None else minute.valid,
        "age_s": None if minute is None else round(time.time() - _minute_end_s(minute), 3),
        "signals": signals,
        "method": _kiln_method(ctx.method, kiln.id),
        "running_minute": running_row(ctx, kiln),
    }


def _kiln_method(method: dict[str, Any], kiln_id: str) -> dict[str, Any]:
    """The method with only this kiln's own rules under ``kilns`` (a fleet's method holds every
    kiln's: 200 kilns made each live payload 230 kB)."""
    kilns = method.get("kilns")
    if not isinstance(kilns, dict):
        return method
    return {**method, "kilns": {kiln_id: kilns[kiln_id]} if kiln_id in kilns else {}}


def running_row(ctx: ApiContext, kiln: KilnSpec) -> dict[str, Any] | None:
    """The kiln's running minute as last computed (provisional), None without one."""
    return None if ctx.provisional is None else ctx.provisional.row(kiln.id)


def live_json(ctx: ApiContext, kiln: KilnSpec) -> bytes:
    """The live payload as JSON, written directly (no response model in between).

    The body is built again only when the engine changed since (``live.changes``); between
    batches every call gets the same body with its age brought up to date.
    """
    changes = ctx.live.changes
    cached = ctx.live_bodies.get(kiln.id)
    if cached is None or cached[0] != changes:
        body = live_body(ctx, kiln)
        body["method"] = orjson.Fragment(orjson.dumps(body["method"]))
        minute = ctx.live.newest_minute(kiln.id)
        ctx.live_bodies[kiln.id] = cached = (changes, body, None if minute is None else _minute_end_s(minute))
    _, body, minute_end_s = cached
    if minute_end_s is not None:
        body["age_s"] = round(time.time() - minute_end_s, 3)
    body["running_minute"] = running_row(ctx, kiln)  # it moves on by itself, not with live.changes
    return orjson.dumps(body)


def _minute_end_s(minute: MinuteAggregate) -> float:
    return (minute.start_ns + MINUTE_NS) / 1e9
