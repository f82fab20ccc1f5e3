"""`kilnwatch run` (what `make run` starts): live CO2 within 30 s, matching the simulator's truth."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.model import build_models
from simulators.truth import GroundTruth
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("cems", ["json", "sparkplug"])
def test_demo_serves_live_co2_matching_ground_truth_within_30_s(tmp_path: Path, cems: str) -> None:
    api = free_port()
    cmd = [
        sys.executable, "-m", "kilnwatch", "run",
        "--port", str(api), "--data-dir", str(tmp_path),
        "--sim-opcua-port", str(free_port()), "--sim-mqtt-port", str(free_port()), "--cems", cems,
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy()
    )
    try:
        live = None
        while time.monotonic() - started < 30:
            try:
                live = httpx.get(f"http://127.0.0.1:{api}/api/v1/kilns/kiln1/live", timeout=2).json()
                if live.get("co2_t_per_h") and live.get("valid"):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        assert live and live["co2_t_per_h"], f"no live CO2 after {elapsed:.1f} s: {live}"
        minute = int(datetime.fromisoformat(live["time"].replace("Z", "+00:00")).timestamp()) * 10**9
        truth = GroundTruth(build_models(["kiln1"], seed=1)[0], tick_s=1.0)
        expected = truth.mean_co2_t_per_h(minute, minute + 60 * 10**9)
        rel = live["co2_t_per_h"] / expected - 1
        got = live["co2_t_per_h"]
        print(f"live after {elapsed:.1f} s: {got:.3f} t/h, truth {expected:.3f} t/h ({rel:+.3%})")
        assert abs(rel) < 0.01
        assert live["valid"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        finally:
            _kill_if_running(proc)
    assert proc.returncode == 0, out[-3000:]
    assert "kilnwatch stopped" in out


def _kill_if_running(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL, to its process group when it leads one (what it started goes too)."""
    if proc.poll() is None:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait(10)


def _start_demo(tmp_path: Path, api: int, mqtt: int) -> subprocess.Popen[bytes]:
    """``kilnwatch run`` in a session of its own, as a terminal runs it: a Ctrl-C is a SIGINT to
    its process group."""
    cmd = [
        sys.executable, "-m", "kilnwatch", "run",
        "--port", str(api), "--data-dir", str(tmp_path / "data"),
        "--sim-opcua-port", str(free_port()), "--sim-mqtt-port", str(mqtt),
    ]  # fmt: skip
    with (tmp_path / "stdout").open("wb") as out, (tmp_path / "stderr").open("wb") as err:
        return subprocess.Popen(cmd, stdout=out, stderr=err, start_new_session=True)


def _ctrl_c(proc: subprocess.Popen[bytes], tmp_path: Path, within_s: float) -> tuple[float, str]:
    """SIGINT to the process group; (seconds until it exited, its stderr)."""
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(within_s)
    took = time.monotonic() - sent
    _kill_if_running(proc)
    return took, (tmp_path / "stderr").read_text(errors="replace")


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_ctrl_c_stops_the_demo_cleanly_within_20_s(tmp_path: Path) -> None:
    api, mqtt = free_port(), free_port()
    proc = _start_demo(tmp_path, api, mqtt)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # up, with live minutes (OPC UA and MQTT clients connected)
            try:
                if httpx.get(f"http://127.0.0.1:{api}/api/v1/kilns/kiln1/live", timeout=2).json().get("time"):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            assert proc.poll() is None, (tmp_path / "stderr").read_text()[-3000:]
            time.sleep(0.3)
        else:
            raise AssertionError("no live minute within 60 s")
        took, err = _ctrl_c(proc, tmp_path, within_s=20)
    finally:
        _kill_if_running(proc)
    print(f"stopped {took:.2f} s after SIGINT")
    assert proc.returncode == 0, err[-3000:]
    assert took < 20
    assert "Traceback" not in err, err[-5000:]
    assert [line for line in err.splitlines() if " ERROR " in line] == []
    assert "kilnwatch stopped;" in err
    assert _refused(mqtt)  # the demo's broker went with it


def test_ctrl_c_while_the_demo_starts_stops_it_cleanly(tmp_path: Path) -> None:
    api, mqtt = free_port(), free_port()
    proc = _start_demo(tmp_path, api, mqtt)
    try:
        deadline = time.monotonic() + 60
        # The broker is up and the OPC UA simulator is building its address space.
        while "demo MQTT broker" not in (tmp_path / "stderr").read_text(errors="replace"):
            assert time.monotonic() < deadline, "the demo's broker did not start within 60 s"
            assert proc.poll() is None, (tmp_path / "stderr").read_text()[-3000:]
            time.sleep(0.05)
        took, err = _ctrl_c(proc, tmp_path, within_s=30)
    finally:
        _kill_if_running(proc)
    print(f"stopped {took:.2f} s after SIGINT")
    assert proc.returncode == 0, err[-3000:]
    assert took < 30
    assert "Traceback" not in err, err[-5000:]
    assert "kilnwatch stopped" in err
    assert _refused(mqtt)
