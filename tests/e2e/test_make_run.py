"""`kilnwatch run` (what `make run` starts): live CO2 within 30 s, matching the simulator's truth."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from simulators.model import build_models
from simulators.truth import GroundTruth
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.integration


def test_demo_serves_live_co2_matching_ground_truth_within_30_s(tmp_path: Path) -> None:
    api = free_port()
    cmd = [
        sys.executable, "-m", "kilnwatch", "run",
        "--port", str(api), "--data-dir", str(tmp_path),
        "--sim-opcua-port", str(free_port()), "--sim-mqtt-port", str(free_port()),
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
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out[-3000:]
    assert "kilnwatch stopped" in out
