"""The results servers a service runs, from its plant file's ``results`` block (none when absent)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .view import ResultsView

if TYPE_CHECKING:
    from kilnwatch.service import Service

    from .mqtt_publisher import ResultsMqttPublisher
    from .opcua_server import ResultsOpcUaServer


class ResultsServers:
    """The configured results servers over one view of the service's results."""

    def __init__(self, service: Service) -> None:
        config = service.plant.results
        self.view = ResultsView(service.api_context())
        service.listeners.append(self.view.on_output)
        self.opcua: ResultsOpcUaServer | None = None
        self.mqtt: ResultsMqttPublisher | None = None
        if config.opcua is not None:
            from .opcua_server import ResultsOpcUaServer

            self.opcua = ResultsOpcUaServer(config.opcua, self.view)
        if config.mqtt is not None:
            from .mqtt_publisher import ResultsMqttPublisher

            self.mqtt = ResultsMqttPublisher(config.mqtt, self.view, service.settings.instance_id)

    async def run(self) -> None:
        """Until cancelled (each server's stop is bounded)."""
        await self.view.seed()
        runs = [s.run() for s in (self.opcua, self.mqtt) if s is not None]
        await asyncio.gather(*runs)


def results_servers(service: Service) -> ResultsServers | None:
    config = service.plant.results
    return None if config.opcua is None and config.mqtt is None else ResultsServers(service)
