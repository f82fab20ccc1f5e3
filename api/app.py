"""``create_app``: the FastAPI application, built from a context; no work at import time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from . import (
    routes_alarms,
    routes_audit,
    routes_health,
    routes_kilns,
    routes_minutes,
    routes_reports,
    routes_stream,
)
from .alarm_watch import AlarmWatch
from .context import ApiContext
from .limits import Gates
from .routes_annotations import router as annotations_router
from .routes_kpi import router as kpi_router
from .routes_manual import router as manual_router
from .routes_page import router as page_router
from .routes_totals import router as totals_router
from .security import routes as security_routes
from .security.auth import VIEWER
from .security.headers import SecurityHeaders, trusted_hosts

STATIC_DIR = Path(__file__).with_name("static")


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Evaluates the alarms in the background while the server runs with a lifespan; without one,
    they are evaluated whenever /api/v1/alarms or a stream looks at them."""
    task = asyncio.create_task(app.state.alarm_watch.run(), name="alarm-watch")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def create_app(context: ApiContext) -> FastAPI:
    app = FastAPI(
        title="kilnwatch",
        summary="Live CO2 of cement kilns: intensity per tonne of clinker, hourly aggregates",
        version="1",
        lifespan=_lifespan,
        # behind a token: served by .security.routes
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.context = context
    app.state.alarm_watch = AlarmWatch(context)
    app.state.gates = Gates(context.limits, context.registry)
    # Every /api/v1 route needs a viewer token at least (tests/integration/test_api_auth.py walks them all).
    for data in (routes_kilns, routes_reports, routes_minutes, routes_alarms, routes_stream):
        app.include_router(data.router, dependencies=[VIEWER])
    app.include_router(totals_router, dependencies=[VIEWER])
    app.include_router(routes_audit.router, dependencies=[VIEWER])  # /audit: admin
    app.include_router(annotations_router, dependencies=[VIEWER])  # writing: operator
    app.include_router(manual_router, dependencies=[VIEWER])  # writing: operator
    app.include_router(kpi_router, dependencies=[VIEWER])
    app.include_router(page_router, dependencies=[VIEWER])
    app.include_router(routes_health.router)  # /healthz open; /readyz and /metrics need a token
    app.include_router(security_routes.router)

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        detail = getattr(exc, "detail", "not found")
        return JSONResponse({"error": "not_found", "detail": detail}, status_code=404)

    if (STATIC_DIR / "index.html").exists():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="page")
    if context.auth.allowed_hosts is not None:
        app.add_middleware(trusted_hosts, allowed=context.auth.allowed_hosts)
    app.add_middleware(SecurityHeaders)  # outermost: a refused Host gets the headers too
    return app
