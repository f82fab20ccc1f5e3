"""The demo: a broker, the simulators and the service in one process, on the demo plant's ports."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from simulators.clock import SimClock
from simulators.demo_broker import DemoBroker, start_demo_broker
from simulators.model import build_models
from simulators.mqtt_publisher import SimMqttPublisher
from simulators.opcua_server import SimOpcUaServer
from simulators.sparkplug_node import SimSparkplugNode

from .config import PlantFile, parse_plant
from .demo import DEMO_KILNS, DEMO_MQTT_PORT, DEMO_OPCUA_PORT, demo_plant
from .service import Service
from .settings import Settings

log = logging.getLogger("kilnwatch.demo")
T = TypeVar("T")
#: Bound of each simulator's or the broker's stop [s]; each stop bounds its own steps too.
STOP_TIMEOUT_S = 15.0


async def demo_service(
    settings: Settings,
    speed: float = 60.0,
    backfill_h: float = 6.0,
    opcua_port: int = DEMO_OPCUA_PORT,
    mqtt_port: int = DEMO_MQTT_PORT,
    cems: str = "json",
) -> Service:
    """The demo plant's service, its simulators and MQTT broker already running (stopped with the service);
    ``cems``: the analysers' JSON gateway or their Sparkplug B edge node (``sparkplug``).

    Cancelled or failing while it starts, it stops what it had started."""
    broker = await start_demo_broker(mqtt_port, settings.data_dir / "demo-broker")
    stops: list[tuple[str, Callable[[], Awaitable[None]]]] = [("MQTT broker", broker.stop)]
    try:
        plant, opcua = await _start_simulators(
            settings, broker, speed, backfill_h, opcua_port, mqtt_port, stops, cems
        )
    except BaseException:
        await _stop_all(stops)
        raise

    async def run_simulators() -> None:
        log.info(
            "demo: %s broker on port %d, OPC UA simulator %s, %.0fx until the simulators catch up with now",
            broker.kind,
            broker.port,
            opcua.endpoint,
            speed,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await _stop_all(stops)

    return Service(plant, settings, extra_tasks=[run_simulators])


async def _start_simulators(
    settings: Settings,
    broker: DemoBroker,
    speed: float,
    backfill_h: float,
    opcua_port: int,
    mqtt_port: int,
    stops: list[tuple[str, Callable[[], Awaitable[None]]]],
    cems: str = "json",
) -> tuple[PlantFile, SimOpcUaServer]:
    """Start the simulators; ``stops`` gets, first, how to stop each one started."""
    plant = demo_plant(opcua_port=opcua_port, mqtt_port=mqtt_port, cems=cems)
    kind = "sparkplug" if cems == "sparkplug" else "mqtt"
    plant["sources"][kind]["cems"]["protocol"] = broker.protocol
    parsed = parse_plant(plant, "demo plant")
    clock = SimClock(backfill_s=backfill_h * 3600.0, speed=speed)
    models = build_models(DEMO_KILNS, seed=1)
    # Above 120x, 5-s ticks keep the simulated OPC UA server within its means on a small machine.
    tick_s = 1.0 if speed <= 120 else 5.0
    opcua = SimOpcUaServer(models, clock, port=opcua_port, tick_s=tick_s)
    publisher = (SimSparkplugNode if cems == "sparkplug" else SimMqttPublisher)(
        models, clock, port=mqtt_port, rate_s=tick_s, client_id="kilnwatch-demo-cems"
    )
    stops.insert(0, ("OPC UA simulator", opcua.stop))
    await opcua.start()
    stops.insert(0, ("CEMS publisher", publisher.stop))
    await publisher.start()
    return parsed, opcua


async def _stop_all(stops: list[tuple[str, Callable[[], Awaitable[None]]]]) -> None:
    """Each stop in turn, each bounded, whatever the others do."""
    for what, stop in stops:
        task = asyncio.ensure_future(stop())
        done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
        if not done:
            task.cancel()
            log.warning("demo: the %s did not stop within %.0f s", what, STOP_TIMEOUT_S)
        elif not task.cancelled() and task.exception() is not None:
            log.warning("demo: stopping the %s failed: %r", what, task.exception())


async def unless_stopped(start: Coroutine[Any, Any, T], stopping: asyncio.Event) -> T | None:
    """``await start``, unless ``stopping`` is set first: then cancel it (a start that was
    cancelled stops what it had started) and return None."""
    task = asyncio.ensure_future(start)
    stop_wait = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_wait.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.wait({task}, timeout=4 * STOP_TIMEOUT_S)
    return None
