"""``kilnwatch discover mqtt://...`` against mosquitto with the simulator's CEMS publisher."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from collector.sources.mqtt.decode import FieldDecoder, decode_batch
from kilnwatch.cli import main
from kilnwatch.config import PlantFile, load_plant_file, parse_plant
from kilnwatch.config_kiln import SignalConfig
from kilnwatch.demo import demo_plant
from kilnwatch.discover.mqtt import sample
from simulators.clock import SimClock
from simulators.model import build_models
from simulators.mqtt_publisher import SimMqttPublisher
from simulators.opcua_server import SimOpcUaServer
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.ports import free_port
from tests.integration.test_discover_opcua import discover

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.fixtures.mosquitto", "tests.integration.mqtt_fixtures"]
TOPIC = "kilnwatch/sim/#"  # the demo plant's CEMS topics


def mqtt_signals(plant: PlantFile) -> dict[tuple[str, str], SignalConfig]:
    """MQTT-bound signals by (topic, value path)."""
    out = {}
    for _, kiln in plant.kilns():
        for s in kiln.signals:
            if s.source.mqtt is not None:
                out[(s.source.mqtt.topic, s.source.mqtt.value_path)] = s
    return out


def decode(plant: PlantFile, s: SignalConfig, payloads: list[bytes]) -> tuple[np.ndarray, ...]:
    assert s.source.mqtt is not None
    broker = plant.sources.mqtt[s.source.mqtt.broker]
    d = FieldDecoder.from_binding(0, s.id, s.source.mqtt, broker)
    now = time.time_ns()
    out = decode_batch([((d,), p, now) for p in payloads], now, 300 * 10**9)
    assert out.rejections == [] and out.unknown_status == []
    return out.batch.ts, out.batch.value, out.batch.quality


async def test_draft_bindings_decode_the_same_readings_as_the_demos(
    broker: Mosquitto, tmp_path: Path
) -> None:
    models = build_models(["kiln1", "kiln2"], seed=8)
    clock = SimClock(backfill_s=0, speed=1)
    opcua_port = free_port()
    draft = tmp_path / "draft.yaml"
    publisher = SimMqttPublisher(models, clock, port=broker.port, client_id=f"discover-sim-{opcua_port}")
    async with SimOpcUaServer(models, clock, port=opcua_port), publisher:
        assert await publisher.wait_connected()
        rc, err = await discover(
            f"mqtt://127.0.0.1:{broker.port}",
            f"opc.tcp://127.0.0.1:{opcua_port}",
            "--name", "cems", "--name", "sim",
            "--topic", TOPIC, "--seconds", "3",
            "--output", str(draft),
        )  # fmt: skip
        assert rc == 0, err
        assert "subscribed to kilnwatch/sim/#; sampling for 3 s" in err
        samples = await asyncio.to_thread(sample, f"mqtt://127.0.0.1:{broker.port}", TOPIC, 2.5, 1000, 5.0)

    # MQTT first: its analysers are the kiln's; the OPC UA ones are written beside them, commented out.
    assert main(["check-config", str(draft)]) == 0
    found = load_plant_file(draft)
    demo = parse_plant(demo_plant(opcua_port=opcua_port, mqtt_port=broker.port), "demo")
    want, got = mqtt_signals(demo), mqtt_signals(found)
    assert len(want) == 14 and set(got) == set(want)
    assert found.sources.mqtt["cems"].port == broker.port
    for key, d in want.items():
        s = got[key]
        assert s.source.mqtt is not None and d.source.mqtt is not None
        assert s.source.mqtt.model_dump() == d.source.mqtt.model_dump(), key
        assert (s.quantity, s.unit, s.basis) == (d.quantity, d.unit, d.basis), key
        payloads = samples[s.source.mqtt.topic].payloads
        assert len(payloads) >= 2
        for a, b in zip(decode(found, s, payloads), decode(demo, d, payloads), strict=True):
            np.testing.assert_array_equal(a, b)
    text = draft.read_text()
    assert "# - id: kiln1.stack.co2" in text  # the OPC UA one, a second co2 candidate
    assert "another co2 candidate beside kiln1.co2" in text


def test_a_broker_that_is_not_there_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    assert main(["discover", url, "--seconds", "1", "--timeout", "2"]) == 1
    err = capsys.readouterr().err
    assert f"kilnwatch discover: cannot connect to {url}" in err
    assert "Traceback" not in err
