"""Command line and in-process entry point of the kiln simulator (OPC UA server + MQTT CEMS publisher).

    python -m simulators --kilns kiln1,kiln2 --opcua-port 4840 --mqtt-host 127.0.0.1 --mqtt-port 1883 \\
        --speed 60 --backfill-hours 6 --tick 1 --seed 1 [--no-mqtt] [--scenario demo] [--cems sparkplug]

`main(argv)` is what `kilnwatch simulate` calls; `run_simulator(config)` runs the same in an existing
event loop until cancelled or until `stop` is set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from simulators.clock import SimClock
from simulators.model import KilnModel, KilnParams, build_models
from simulators.mqtt_publisher import SimMqttPublisher
from simulators.opcua_server import NAMESPACE_URI, SimOpcUaServer
from simulators.scenario_presets import PRESET_RATES, preset
from simulators.sparkplug_node import SimSparkplugNode

_NS = 1_000_000_000
SCENARIO_HORIZON_DAYS = 30
"""Scenario events are drawn from the clock's start to this many days after it."""


@dataclass
class SimulatorConfig:
    kilns: list[str] = field(default_factory=lambda: ["kiln1", "kiln2"])
    opcua_host: str = "127.0.0.1"
    opcua_port: int = 4840
    opcua_history: int = 0
    """Past values per OPC UA node kept for HistoryRead; 0 = none."""
    mqtt: bool = True
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_client_id: str = "kilnwatch-sim-cems"
    mqtt_topic_prefix: str = "kilnwatch/sim"
    mqtt_rate_s: float | None = None
    cems: str = "json"
    """The analysers' payloads: ``json`` (gateway documents) or ``sparkplug`` (a Sparkplug B edge node)."""
    sparkplug_group: str = "kilnwatch"
    sparkplug_node: str = "sim-cems"
    """Simulated seconds between analyser messages [s]; None = `tick_s`."""
    speed: float = 60.0
    backfill_hours: float = 6.0
    tick_s: float = 1.0
    seed: int = 1
    clinker_t_per_day: float = 5000.0
    scenario: str = "none"
    progress_interval_s: float = 5.0
    """Wall seconds between progress lines; 0 = silent."""


def build_clock(config: SimulatorConfig) -> SimClock:
    return SimClock(backfill_s=config.backfill_hours * 3600.0, speed=config.speed)


def build_models_for(config: SimulatorConfig) -> list[KilnModel]:
    """The kiln models `run_simulator` uses, e.g. to compute ground truth next to a running simulator."""
    return build_models(
        config.kilns, config.seed, KilnParams(clinker_t_per_h=config.clinker_t_per_day / 24.0)
    )


async def run_simulator(
    config: SimulatorConfig, stop: asyncio.Event | None = None, clock: SimClock | None = None
) -> None:
    """Run the OPC UA server (and the MQTT publisher) until cancelled or `stop` is set."""
    clock = clock or build_clock(config)
    models = build_models_for(config)
    scenario = preset(
        config.scenario,
        config.kilns,
        clock.start_ns,
        clock.start_ns + SCENARIO_HORIZON_DAYS * 86_400 * _NS,
        config.seed,
    )
    opcua = SimOpcUaServer(
        models,
        clock,
        config.opcua_host,
        config.opcua_port,
        config.tick_s,
        scenario,
        history_values=config.opcua_history,
    )
    mqtt: SimMqttPublisher | None = None
    if config.mqtt and config.cems == "sparkplug":
        mqtt = SimSparkplugNode(
            models,
            clock,
            config.mqtt_host,
            config.mqtt_port,
            config.sparkplug_group,
            config.sparkplug_node,
            config.mqtt_rate_s or config.tick_s,
            scenario,
            client_id=config.mqtt_client_id,
        )
    elif config.mqtt:
        mqtt = SimMqttPublisher(
            models,
            clock,
            config.mqtt_host,
            config.mqtt_port,
            config.mqtt_client_id,
            config.mqtt_rate_s or config.tick_s,
            scenario,
            config.mqtt_topic_prefix,
        )
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(opcua)
        if mqtt is not None:
            await stack.enter_async_context(mqtt)
        line = f"OPC UA server {opcua.endpoint} (namespace {NAMESPACE_URI}), kilns {','.join(config.kilns)}"
        if mqtt is not None:
            line += f"; MQTT {config.mqtt_host}:{config.mqtt_port} topic {mqtt.topic('<kiln>')}"
        _print(line)
        waiter = asyncio.ensure_future(stop.wait()) if stop is not None else None
        try:
            await _progress(config, clock, opcua, mqtt, waiter)
        finally:
            if waiter is not None:
                waiter.cancel()


async def _progress(
    config: SimulatorConfig,
    clock: SimClock,
    opcua: SimOpcUaServer,
    mqtt: SimMqttPublisher | None,
    waiter: asyncio.Future[Any] | None,
) -> None:
    interval = config.progress_interval_s if config.progress_interval_s > 0 else 1.0
    was_caught_up = False
    while waiter is None or not waiter.done():
        if waiter is not None:
            await asyncio.wait([waiter], timeout=interval)
        else:
            await asyncio.sleep(interval)
        caught_up = clock.caught_up
        if config.progress_interval_s <= 0 and not (caught_up and not was_caught_up):
            continue
        sim = datetime.fromtimestamp(clock.now_ns() / _NS, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        state = "live (caught up)" if caught_up else f"{clock.lag_s() / 60:.1f} min behind, {clock.speed:g}x"
        line = f"sim time {sim} {state} | OPC UA values {opcua.stats.values_written}"
        backlog = opcua.backlog_s()
        if backlog > 5 * config.tick_s:
            line += f" (publishing {backlog:.0f} s behind the clock)"
        if mqtt is not None:
            line += f" | MQTT messages {mqtt.stats.messages} acked {mqtt.stats.acked}"
            line += "" if mqtt.connected else " (broker not connected)"
        _print(line)
        was_caught_up = caught_up


def _print(line: str) -> None:
    print(line, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> SimulatorConfig:
    p = argparse.ArgumentParser(
        prog="python -m simulators",
        description="Simulated cement kilns over OPC UA "
        "and MQTT, with ground truth, in real time or accelerated.",
    )
    p.add_argument("--kilns", default="kiln1,kiln2", help="comma-separated kiln ids (default %(default)s)")
    p.add_argument("--opcua-host", default="127.0.0.1")
    p.add_argument("--opcua-port", type=int, default=4840)
    p.add_argument("--mqtt-host", default="127.0.0.1")
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--mqtt-client-id", default="kilnwatch-sim-cems")
    p.add_argument("--mqtt-topic-prefix", default="kilnwatch/sim", help="topics are <prefix>/<kiln>/cems")
    p.add_argument("--mqtt-rate", type=float, default=None, help="simulated s between analyser messages")
    p.add_argument("--no-mqtt", action="store_true", help="serve OPC UA only")
    p.add_argument(
        "--cems",
        choices=("json", "sparkplug"),
        default="json",
        help="analysers as JSON gateway messages or as a Sparkplug B edge node (one device per kiln)",
    )
    p.add_argument(
        "--sparkplug-group", default="kilnwatch", help="Sparkplug group id (with --cems sparkplug)"
    )
    p.add_argument(
        "--sparkplug-node", default="sim-cems", help="Sparkplug edge node id (with --cems sparkplug)"
    )
    p.add_argument(
        "--opcua-history", type=int, default=0, help="past values per node kept for HistoryRead (0: none)"
    )
    p.add_argument("--speed", type=float, default=60.0, help="simulated s per wall s until caught up")
    p.add_argument("--backfill-hours", type=float, default=6.0, help="start this many hours in the past")
    p.add_argument("--tick", type=float, default=1.0, help="simulated s per model step")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--clinker-tpd", type=float, default=5000.0, help="nominal clinker per kiln [t/d]")
    p.add_argument("--scenario", default="none", choices=sorted(PRESET_RATES), help="fault injection preset")
    p.add_argument("--progress", type=float, default=5.0, help="wall s between progress lines (0: quiet)")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    kilns = [k.strip() for k in a.kilns.split(",") if k.strip()]
    if not kilns:
        p.error("--kilns needs at least one kiln id")
    if a.speed <= 0 or a.tick <= 0 or a.backfill_hours < 0:
        p.error("--speed and --tick must be > 0 and --backfill-hours >= 0")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("simulators").setLevel(logging.INFO if a.verbose else logging.WARNING)
    # asyncua warns at every start that the simulator offers no security policy (by design, on 127.0.0.1).
    logging.getLogger("asyncua").setLevel(logging.WARNING if a.verbose else logging.ERROR)
    return SimulatorConfig(
        kilns=kilns,
        opcua_host=a.opcua_host,
        opcua_port=a.opcua_port,
        opcua_history=a.opcua_history,
        mqtt=not a.no_mqtt,
        mqtt_host=a.mqtt_host,
        mqtt_port=a.mqtt_port,
        mqtt_client_id=a.mqtt_client_id,
        mqtt_topic_prefix=a.mqtt_topic_prefix,
        mqtt_rate_s=a.mqtt_rate,
        cems=a.cems,
        sparkplug_group=a.sparkplug_group,
        sparkplug_node=a.sparkplug_node,
        speed=a.speed,
        backfill_hours=a.backfill_hours,
        tick_s=a.tick,
        seed=a.seed,
        clinker_t_per_day=a.clinker_tpd,
        scenario=a.scenario,
        progress_interval_s=a.progress,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run until Ctrl-C or SIGTERM; returns the process exit code."""
    config = parse_args(argv)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await run_simulator(config, stop)

    try:
        asyncio.run(_main())
    except OSError as err:
        print(f"simulator: {err}", file=sys.stderr)
        return 1
    return 0
