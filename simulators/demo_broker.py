"""An MQTT broker for the demo: mosquitto when it is installed, else an in-process amqtt.

amqtt only stands in at the demo's low rates (see docs/decisions/0003-mqtt-broker-for-demo.md):
it is several times slower than mosquitto, speaks MQTT 3.1.1 only and queues nothing for an
offline anonymous client, so nothing that must survive a kilnwatch restart may rely on it.
:func:`mosquitto_config` is the one place that writes a mosquitto configuration; the test
fixture uses it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

log = logging.getLogger(__name__)

#: mosquitto 2.0 keeps at most ``max_queued_messages`` (default 1000) QoS 1 messages for an
#: offline persistent session and silently drops the rest (measured, issue 3). One CEMS rack
#: publishing every second fills 1000 in 17 minutes; this bridges days for a few racks.
MAX_QUEUED_MESSAGES = 1_000_000
#: 0: no limit in bytes; the message count above is the bound.
MAX_QUEUED_BYTES = 0
#: Unacknowledged messages in flight to an MQTT 3.1.1 client (default 20); MQTT 5 clients say
#: their own (receive maximum). kilnwatch acknowledges after each commit, so 20 would throttle it.
MAX_INFLIGHT_MESSAGES = 1000
_SBIN_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
_READY_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0


def mosquitto_binary() -> str | None:
    """Path of the mosquitto executable (Debian puts it in /usr/sbin, often not on PATH), or None."""
    return shutil.which("mosquitto") or next((p for p in _SBIN_PATHS if os.access(p, os.X_OK)), None)


def mosquitto_config(
    port: int,
    data_dir: Path,
    host: str = "127.0.0.1",
    max_queued_messages: int = MAX_QUEUED_MESSAGES,
    max_queued_bytes: int = MAX_QUEUED_BYTES,
) -> str:
    """A mosquitto 2.0 configuration: one anonymous listener, persistence in ``data_dir``."""
    lines = [
        f"listener {port} {host}",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {data_dir.resolve()}/",
        f"max_queued_messages {max_queued_messages}",
        f"max_queued_bytes {max_queued_bytes}",
        f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Started as root, mosquitto drops to user "mosquitto", which may not write data_dir.
        lines.append("user root")
    return "\n".join(lines) + "\n"


@dataclass
class DemoBroker:
    """A running broker; ``stop()`` ends it. ``protocol``: what the MQTT source must speak to it."""

    kind: Literal["mosquitto", "amqtt"]
    host: str
    port: int
    protocol: Literal["5", "3.1.1"]
    _process: asyncio.subprocess.Process | None = None
    _amqtt: Any = None

    async def stop(self) -> None:
        """Bounded: mosquitto gets ``_STOP_TIMEOUT_S`` after SIGTERM (it saves its sessions), then
        SIGKILL; amqtt's shutdown is cancelled after as long."""
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), _STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning("mosquitto did not end within %.0f s of SIGTERM: killed", _STOP_TIMEOUT_S)
                self._process.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._process.wait(), _STOP_TIMEOUT_S)
        if self._amqtt is not None:
            amqtt, self._amqtt = self._amqtt, None
            try:
                await asyncio.wait_for(amqtt.shutdown(), _STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning("the amqtt broker did not shut down within %.0f s", _STOP_TIMEOUT_S)


async def start_demo_broker(
    port: int, data_dir: Path, host: str = "127.0.0.1", *, use_mosquitto: bool = True
) -> DemoBroker:
    """Start mosquitto if installed (and wanted), else an in-process amqtt; return once it accepts
    connections. For amqtt the MQTT source must use ``protocol: "3.1.1"`` (``DemoBroker.protocol``)."""
    binary = mosquitto_binary() if use_mosquitto else None
    if binary is not None:
        return await _start_mosquitto(binary, port, data_dir, host)
    log.warning(
        "no mosquitto: the demo uses an in-process amqtt broker (low rates, MQTT 3.1.1, no offline queue)"
    )
    return await _start_amqtt(port, host)


def _prepare_mosquitto(port: int, data_dir: Path, host: str) -> tuple[Path, BinaryIO]:
    """Write the configuration; open the log file (mosquitto's stdout and stderr)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conf = data_dir / "mosquitto.conf"
    conf.write_text(mosquitto_config(port, data_dir, host), encoding="utf-8")
    return conf, (data_dir / "mosquitto.log").open("ab")


async def _start_mosquitto(binary: str, port: int, data_dir: Path, host: str) -> DemoBroker:
    conf, out = await asyncio.to_thread(_prepare_mosquitto, port, data_dir, host)
    with out:
        # A session of its own: a Ctrl-C in the terminal reaches kilnwatch only, which stops the
        # broker last, after the clients that use it.
        process = await asyncio.create_subprocess_exec(
            binary,
            "-c",
            str(conf),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    broker = DemoBroker("mosquitto", host, port, "5", _process=process)
    try:
        await _wait_accepting(host, port, process)
    except BaseException:
        await broker.stop()
        raise
    log.info("demo MQTT broker: mosquitto on %s:%d, data in %s", host, port, data_dir)
    return broker


async def _start_amqtt(port: int, host: str) -> DemoBroker:
    from amqtt.broker import Broker

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    await _wait_accepting(host, port, None)
    log.info("demo MQTT broker: in-process amqtt on %s:%d", host, port)
    return DemoBroker("amqtt", host, port, "3.1.1", _amqtt=broker)


async def _wait_accepting(host: str, port: int, process: asyncio.subprocess.Process | None) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _READY_TIMEOUT_S
    while True:
        if process is not None and process.returncode is not None:
            raise RuntimeError(f"mosquitto exited with code {process.returncode} (see its log)")
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if loop.time() > deadline:
                raise TimeoutError(f"no MQTT broker accepts connections on {host}:{port}") from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
