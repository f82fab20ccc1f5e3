"""``create_app``: the FastAPI application, built from a context; no work at import time."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from . import routes_health, routes_kilns
from .context import ApiContext

STATIC_DIR = Path(__file__).with_name("static")


def create_app(context: ApiContext) -> FastAPI:
    app = FastAPI(
        title="kilnwatch",
        summary="Live CO2 of cement kilns: intensity per tonne of clinker, hourly aggregates",
        version="1",
    )
    app.state.context = context
    app.include_router(routes_kilns.router)
    app.include_router(routes_health.router)

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        detail = getattr(exc, "detail", "not found")
        return JSONResponse({"error": "not_found", "detail": detail}, status_code=404)

    if (STATIC_DIR / "index.html").exists():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="page")
    return app
