"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .deps import Context
from .security.auth import SCRAPE

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/readyz", dependencies=[SCRAPE])
async def readyz(ctx: Context) -> JSONResponse:
    reasons = ctx.readiness.not_ready_reasons()
    warnings = ctx.readiness.warning_reasons()
    if reasons:
        return JSONResponse(
            {"status": "not ready", "reasons": reasons, "warnings": warnings}, status_code=503
        )
    return JSONResponse({"status": "ready", "reasons": [], "warnings": warnings})


@router.get("/metrics", dependencies=[SCRAPE])
async def metrics(ctx: Context) -> Response:
    return Response(generate_latest(ctx.registry), media_type=CONTENT_TYPE_LATEST)
