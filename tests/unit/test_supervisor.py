"""The shared supervisor: backoff, an outage logged once and its recovery once, the failure policy."""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path

import pytest

from collector.health import SourceHealth
from collector.sources.supervisor import (
    Availability,
    Backoff,
    ConfigurationError,
    Failed,
    Supervisor,
    check_readable,
)


def test_backoff_doubles_to_its_cap_with_jitter_and_resets() -> None:
    b = Backoff(_rng=random.Random(1))
    delays = [b.next() for _ in range(8)]
    for delay, base in zip(delays, [0.5, 1, 2, 4, 8, 10, 10, 10], strict=True):
        assert base * 0.8 <= delay <= base
    assert len(set(delays)) == len(delays)  # jittered: no two clients retry in lockstep
    b.reset()
    assert 0.4 <= b.next() <= 0.5


def test_backoff_follows_retry_after() -> None:
    b = Backoff(_rng=random.Random(1))
    assert 30.0 <= b.next(retry_after=30.0) <= 31.0


def test_outage_is_logged_once_and_recovery_once_with_its_length(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.outage")
    health = SourceHealth("x", "test")
    gauge: list[int] = []
    status = Availability("source x", log, health, gauge.append)
    with caplog.at_level(logging.DEBUG, logger="test.outage"):
        status.up()
        for _ in range(5):
            status.failed("connection refused")
        assert status.failing and not health.connected and health.errors == 5
        assert status.up()
        assert not status.up()
    levels = [r.levelno for r in caplog.records]
    assert levels.count(logging.ERROR) == 1
    assert levels.count(logging.INFO) == 1
    assert "connection refused" in caplog.records[0].getMessage()
    recovery = next(r for r in caplog.records if r.levelno == logging.INFO).getMessage()
    assert "recovered after" in recovery and " s" in recovery
    assert not status.failing and health.connected and health.connects == 3
    assert gauge == [0, 1, 0, 0, 0, 0, 0, 1, 1]


class Flaky:
    """Fails ``failures`` times, then runs until stopped."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.name = "flaky"
        self.health = SourceHealth("flaky", "test")
        self.status = Availability("flaky", health=self.health, backoff=Backoff(initial=0.01, cap=0.02))
        self.failures, self.error, self.runs = failures, error, 0
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= self.failures:
            raise self.error
        self.status.up()
        await self._stopped.wait()

    async def stop(self) -> None:
        self._stopped.set()


async def test_runtime_errors_are_retried_until_the_source_runs() -> None:
    source = Flaky(3, Failed("refused"))
    task = asyncio.create_task(Supervisor(source).run())
    async with asyncio.timeout(5):
        while not source.health.connected:  # noqa: ASYNC110 - health offers no event
            await asyncio.sleep(0.01)
    assert source.runs == 4 and source.health.errors == 3 and source.health.last_error == "refused"
    await source.stop()
    async with asyncio.timeout(5):
        await task


async def test_a_stop_while_waiting_to_retry_ends_the_run() -> None:
    source = Flaky(10**6, Failed("refused"))
    source.status.backoff = Backoff(initial=30.0, cap=30.0)
    supervisor = Supervisor(source)
    task = asyncio.create_task(supervisor.run())
    async with asyncio.timeout(5):
        while source.runs == 0:  # noqa: ASYNC110 - the test's own counter
            await asyncio.sleep(0.01)
        await supervisor.stop()
    assert task.done() and source.runs == 1


async def test_a_configuration_error_is_not_retried() -> None:
    source = Flaky(1, ConfigurationError("node id 'x' cannot be parsed"))
    with pytest.raises(ConfigurationError, match="node id"):
        await asyncio.wait_for(Supervisor(source).run(), 5)
    assert source.runs == 1


def test_an_unreadable_file_is_a_configuration_error_naming_source_and_setting(tmp_path: Path) -> None:
    readable = tmp_path / "ca.pem"
    readable.write_text("x")
    check_readable("MQTT source cems", {"ca_file": str(readable), "certfile": None})
    with pytest.raises(ConfigurationError, match=r"MQTT source cems: keyfile .*missing.key cannot be read"):
        check_readable(
            "MQTT source cems", {"ca_file": str(readable), "keyfile": str(tmp_path / "missing.key")}
        )


def test_an_opcua_source_with_an_unreadable_certificate_fails_where_it_is_built(tmp_path: Path) -> None:
    from collector.metrics import Metrics
    from collector.sources.opcua.source import OpcUaSource
    from collector.sources.opcua.spec import OpcUaServerSpec

    spec = OpcUaServerSpec(
        url="opc.tcp://127.0.0.1:4840/",
        security_policy="Basic256Sha256",
        security_mode="SignAndEncrypt",
        certificate=str(tmp_path / "missing-cert.der"),
        private_key=str(tmp_path / "missing-key.pem"),
        trust_any_server_certificate=True,
    )
    health = SourceHealth("opcua:plc1", "opcua")
    with pytest.raises(ConfigurationError, match=r"OPC UA source opcua:plc1: certificate .*missing-cert.der"):
        OpcUaSource("opcua:plc1", spec, [(0, "nsu=urn:x;s=a")], None, health, Metrics())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"OPC UA source opcua:plc1: .*'s=a'"):
        OpcUaSource("opcua:plc1", OpcUaServerSpec(url=spec.url), [(0, "s=a")], None, health, Metrics())  # type: ignore[arg-type]
