"""The demo: a broker, the simulators and the service in one process, on the demo plant's ports."""

from __future__ import annotations

import asyncio
import logging

from collector.demo_broker import start_demo_broker
from simulators.clock import SimClock
from simulators.model import build_models
from simulators.mqtt_publisher import SimMqttPublisher
from simulators.opcua_server import SimOpcUaServer

from .config import parse_plant
from .demo import DEMO_KILNS, DEMO_MQTT_PORT, DEMO_OPCUA_PORT, demo_plant
from .service import Service
from .settings import Settings

log = logging.getLogger("kilnwatch.demo")


async def demo_service(
    settings: Settings,
    speed: float = 60.0,
    backfill_h: float = 6.0,
    opcua_port: int = DEMO_OPCUA_PORT,
    mqtt_port: int = DEMO_MQTT_PORT,
) -> Service:
    """The demo plant's service, its simulators and MQTT broker already running (stopped with the service)."""
    broker = await start_demo_broker(mqtt_port, settings.data_dir / "demo-broker")
    plant = demo_plant(opcua_port=opcua_port, mqtt_port=mqtt_port)
    plant["sources"]["mqtt"]["cems"]["protocol"] = broker.protocol
    service = Service(parse_plant(plant, "demo plant"), settings)

    clock = SimClock(backfill_s=backfill_h * 3600.0, speed=speed)
    models = build_models(DEMO_KILNS, seed=1)
    # Above 120x, 5-s ticks keep the simulated OPC UA server within its means on a small machine.
    tick_s = 1.0 if speed <= 120 else 5.0
    opcua = SimOpcUaServer(models, clock, port=opcua_port, tick_s=tick_s)
    cems = SimMqttPublisher(models, clock, port=mqtt_port, rate_s=tick_s, client_id="kilnwatch-demo-cems")
    await opcua.start()
    await cems.start()

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
            await cems.stop()
            await opcua.stop()
            await broker.stop()

    service.extra_tasks.append(run_simulators)
    return service
