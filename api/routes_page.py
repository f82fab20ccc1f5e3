"""``GET /api/v1/page``: the settings the control-room page needs before it shows anything."""

from __future__ import annotations

from fastapi import APIRouter

from .deps import Context
from .page_config import PageSettings

router = APIRouter(prefix="/api/v1")


@router.get("/page", response_model=PageSettings)
async def page(ctx: Context) -> PageSettings:
    """The plant's time zone (IANA name), in which the page shows times."""
    return ctx.page
