"""``create_app``: the FastAPI application, built from a context; no work at import time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from . import routes_alarms, routes_health, routes_kilns, routes_minutes, routes_reports, routes_stream
from .context import ApiContext
from .limits import Gates
from .routes_page import router as page_router
from .routes_totals import router as totals_router

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
    )
    app.state.context = context
    app.state.alarm_watch = routes_alarms.AlarmWatch(context)
    app.state.gates = Gates(context.limits, context.registry)
    app.include_router(routes_kilns.router)
    app.include_router(routes_reports.router)
    app.include_router(totals_router)
    app.include_router(routes_minutes.router)
    app.include_router(routes_alarms.router)
    app.include_router(routes_stream.router)
    app.include_router(routes_health.router)
    app.include_router(page_router)

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        detail = getattr(exc, "detail", "not found")
        return JSONResponse({"error": "not_found", "detail": detail}, status_code=404)

    if (STATIC_DIR / "index.html").exists():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="page")
    return app
