"""Limits that keep one client from taking the process's memory or all its threads: rows per JSON
page, concurrent report requests, Server-Sent Events clients.

Settings come from the environment (``KILNWATCH_API_*``) or a ``.env`` file unless the wiring
passes them in :class:`~api.context.ApiContext`. A request over a limit gets 503 with
``Retry-After``; every such refusal is counted in ``kilnwatch_api_rejected_total{limit}`` and
logged (at most every 10 s per limit, with the client's address and how many were refused since).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator

from fastapi import HTTPException, Request
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)
_LOG_EVERY_S = 10.0


class ApiLimits(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KILNWATCH_API_", env_file=".env", extra="ignore")

    max_rows: int = Field(
        default=10_000, ge=1, description="rows per JSON page of a list route; more: Link rel=next"
    )
    report_concurrency: int = Field(
        default=4, ge=1, description="report requests (JSON or CSV) served at the same time"
    )
    report_wait_s: float = Field(
        default=2.0, ge=0, description="how long a report request over the limit waits for a slot [s]"
    )
    stream_clients: int = Field(default=64, ge=1, description="open /api/v1/stream connections")
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After of a 503 over a limit [s]")


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.rejected = Counter(
            "kilnwatch_api_rejected",
            "API requests refused with 503 over a limit",
            ["limit"],
            registry=registry,
        )
        self.reports = Gauge(
            "kilnwatch_api_reports_in_progress", "report requests being served", registry=registry
        )
        self.streams = Gauge(
            "kilnwatch_api_stream_clients", "open /api/v1/stream connections", registry=registry
        )


#: One set of metrics per registry, so that an app built twice on one context does not register twice.
_metrics: weakref.WeakKeyDictionary[CollectorRegistry, _Metrics] = weakref.WeakKeyDictionary()


class Gates:
    """The limits' state for one app."""

    def __init__(self, limits: ApiLimits, registry: CollectorRegistry) -> None:
        self.limits = limits
        self.reports = asyncio.Semaphore(limits.report_concurrency)
        self.stream_clients = 0
        if registry not in _metrics:
            _metrics[registry] = _Metrics(registry)
        self.metrics = _metrics[registry]
        self._refused: dict[str, int] = {}
        self._logged: dict[str, float] = {}

    def refuse(self, limit: str, request: Request, what: str) -> HTTPException:
        self.metrics.rejected.labels(limit).inc()
        self._refused[limit] = self._refused.get(limit, 0) + 1
        now = time.monotonic()
        if now - self._logged.get(limit, -_LOG_EVERY_S) >= _LOG_EVERY_S:
            client = request.client.host if request.client else "?"
            log.warning(
                "%s refused (%s; %d refused since the last message), last from %s",
                request.url.path,
                what,
                self._refused[limit],
                client,
            )
            self._logged[limit] = now
            self._refused[limit] = 0
        return HTTPException(
            503,
            detail=f"busy: {what}; try again later",
            headers={"Retry-After": str(self.limits.retry_after_s)},
        )


def gates(request: Request) -> Gates:
    g: Gates = request.app.state.gates
    return g


async def report_slot(request: Request) -> AsyncIterator[None]:
    """Holds one of ``report_concurrency`` slots until the response is sent (a streamed CSV too)."""
    g = gates(request)
    try:
        async with asyncio.timeout(g.limits.report_wait_s):
            await g.reports.acquire()
    except TimeoutError:
        raise g.refuse(
            "reports", request, f"{g.limits.report_concurrency} report requests in progress"
        ) from None
    g.metrics.reports.inc()
    try:
        yield
    finally:
        g.metrics.reports.dec()
        g.reports.release()


async def stream_slot(request: Request) -> AsyncIterator[None]:
    """Counts an open stream until it ends; over ``stream_clients`` the connection is refused."""
    g = gates(request)
    if g.stream_clients >= g.limits.stream_clients:
        raise g.refuse("stream", request, f"{g.limits.stream_clients} stream clients connected")
    g.stream_clients += 1
    g.metrics.streams.inc()
    try:
        yield
    finally:
        g.stream_clients -= 1
        g.metrics.streams.dec()
