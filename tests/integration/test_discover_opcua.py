"""``kilnwatch discover opc.tcp://...`` against the simulator's OPC UA server, run as the real command."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from kilnwatch.cli import main
from kilnwatch.config import PlantFile, load_plant_file, parse_plant
from kilnwatch.demo import demo_plant
from kilnwatch.discover import opcua
from simulators.clock import SimClock
from simulators.model import build_models
from simulators.opcua_server import SimOpcUaServer
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.integration
COMMAND_TIMEOUT_S = 60.0


async def discover(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``kilnwatch discover`` in its own process (the server keeps serving in this loop)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kilnwatch",
        "discover",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, err.decode()


def signals(plant: PlantFile) -> dict[str, dict[str, Any]]:
    """Each signal as what the service uses of it: quantity, unit, basis, conditions, range, binding."""
    out = {}
    for _, kiln in plant.kilns():
        for s in kiln.signals:
            assert s.source.opcua is not None
            out[s.id] = {
                "kiln": kiln.id,
                "quantity": s.quantity,
                "unit": s.unit,
                "basis": s.basis,
                "conditions": s.conditions,
                "range": s.range,
                "server": s.source.opcua.server,
                "node": s.source.opcua.node,
                "url": plant.sources.opcua[s.source.opcua.server].url,
            }
    return out


async def test_draft_from_the_simulator_gives_the_demo_plants_signals(tmp_path: Path) -> None:
    port = free_port()
    server = SimOpcUaServer(build_models(["kiln1", "kiln2"], seed=5), SimClock(backfill_s=60), port=port)
    draft = tmp_path / "draft.yaml"
    async with server:
        url = f"opc.tcp://127.0.0.1:{port}"
        rc, err = await discover(url, "--name", "sim", "--output", str(draft))
    assert rc == 0, err
    assert "depth 2: 32 nodes, 30 variables" in err  # progress on stderr
    assert "does not pass check-config" not in err
    text = draft.read_text()
    assert "quantity: co2  # review: proposed from name 'stack.co2' and unit 'vol% (UNECE P1)'" in text
    # What no rule matched is there for the operator, commented out, not guessed.
    assert "# - id: kiln1.truth.co2_t_per_h" in text and "# - id: kiln2.cems.status" in text

    assert main(["check-config", str(draft)]) == 0  # the proposals accepted as written
    found = signals(load_plant_file(draft))
    demo = signals(parse_plant(demo_plant(opcua_port=port, mqtt_port=None), "demo"))
    assert len(demo) == 26
    assert found == demo


async def test_root_narrows_the_browse_to_one_kiln(tmp_path: Path) -> None:
    port = free_port()
    server = SimOpcUaServer(build_models(["kiln1", "kiln2"], seed=5), SimClock(backfill_s=60), port=port)
    draft = tmp_path / "draft.yaml"
    async with server:
        rc, err = await discover(
            f"opc.tcp://127.0.0.1:{port}",
            "--root",
            "nsu=urn:kilnwatch:simulator;s=kiln2",
            "--output",
            str(draft),
            "--max-depth",
            "1",
        )
        bad_rc, bad_err = await discover(
            f"opc.tcp://127.0.0.1:{port}",
            "--root",
            "nsu=urn:nowhere;s=kiln2",
            "--output",
            str(tmp_path / "x"),
        )
    assert rc == 0, err
    assert bad_rc == 2
    assert (
        "kilnwatch discover: --root nsu=urn:nowhere;s=kiln2: the server has no namespace 'urn:nowhere'"
        in bad_err
    )
    assert "Traceback" not in bad_err
    plant = load_plant_file(draft)
    (kiln,) = [k for _, k in plant.kilns()]
    assert kiln.id == "kiln2"
    assert {s.id for s in kiln.signals} >= {"kiln2.stack.flow", "kiln2.stack.co2", "kiln2.clinker.rate"}
    assert all(s.source.opcua and "s=kiln2." in s.source.opcua.node for s in kiln.signals)


async def test_the_browse_is_bounded_and_says_so() -> None:
    port = free_port()
    said: list[str] = []
    server = SimOpcUaServer(build_models(["kiln1", "kiln2"], seed=5), SimClock(backfill_s=60), port=port)
    async with server:
        url = f"opc.tcp://127.0.0.1:{port}"
        few = await opcua.discover(url, "sim", None, 8, 10, 5.0, progress=said.append)
        shallow = await opcua.discover(url, "sim", None, 1, 5000, 5.0, progress=said.append)
    assert len(few) == 8  # 10 nodes: two kiln objects and eight of their variables
    assert shallow == []  # the kiln objects, not their variables
    assert sum("browse cut short" in line for line in said) == 2


def test_a_server_that_is_not_there_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"opc.tcp://127.0.0.1:{free_port()}"
    draft = tmp_path / "draft.yaml"
    assert main(["discover", url, "--timeout", "3", "--output", str(draft)]) == 1
    err = capsys.readouterr().err
    assert f"kilnwatch discover: cannot connect to {url}" in err
    assert "Traceback" not in err
    assert not draft.exists()
