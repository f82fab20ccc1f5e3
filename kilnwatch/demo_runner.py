"""The demo: simulators in the same process as the service, on the demo plant's ports."""

from __future__ import annotations

import asyncio
import logging

from simulators.clock import SimClock
from simulators.model import build_models
from simulators.opcua_server import SimOpcUaServer

from .demo import DEMO_KILNS, DEMO_OPCUA_PORT
from .service import Service

log = logging.getLogger("kilnwatch.demo")


async def attach_demo(service: Service, speed: float = 60.0, backfill_h: float = 6.0) -> SimClock:
    """Add the demo simulators to ``service`` as extra tasks; returns their shared clock."""
    clock = SimClock(backfill_s=backfill_h * 3600.0, speed=speed)
    models = build_models(DEMO_KILNS, seed=1)
    opcua = SimOpcUaServer(models, clock, port=DEMO_OPCUA_PORT, tick_s=1.0 if speed <= 120 else 5.0)

    async def run_simulators() -> None:
        await opcua.start()
        log.info("demo simulators: %s, %.0fx until they catch up with the wall clock", opcua.endpoint, speed)
        try:
            await asyncio.Event().wait()
        finally:
            await opcua.stop()

    service.extra_tasks.append(run_simulators)
    return clock
