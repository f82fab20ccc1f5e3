"""The time zone of a report: the plant's (its ``timezone``, from the method block), or ``?tz=``
(``api.deps.Tz``)."""

from __future__ import annotations

from fastapi import HTTPException

from analytics.plant_time import DEFAULT_ZONE, PlantClock, zone

from .context import ApiContext


def report_clock(ctx: ApiContext, kiln_ids: list[str], tz: str | None) -> PlantClock:
    """``tz`` if given (422 when unknown), else the time zone of the first of ``kiln_ids``' plants."""
    kilns = ctx.method.get("kilns", {})
    zones = [kilns[k]["timezone"] for k in kiln_ids if "timezone" in kilns.get(k, {})]
    name = tz or (zones[0] if zones else DEFAULT_ZONE)
    try:
        zone(name)
    except ValueError as err:
        raise HTTPException(422, detail=f"tz={tz!r}: {err}") from None
    return PlantClock(name)
