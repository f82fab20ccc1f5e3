"""The systemd unit in deploy/: the hardening it promises, and systemd's own check of the file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "kilnwatch.service"


def _directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_the_unit_is_hardened() -> None:
    d = _directives()
    expected = {
        "UMask": "0027",
        "CapabilityBoundingSet": "",
        "SystemCallFilter": "@system-service",
        "ProtectClock": "yes",
        "ProtectHostname": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectProc": "invisible",
        "RestrictSUIDSGID": "yes",
        "RestrictRealtime": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "StateDirectoryMode": "0700",
        "LoadCredential": "influx-token:/etc/kilnwatch/influx-token",
    }
    assert {k: d.get(k, [None])[-1] for k in expected} == expected


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart's program exists: point it at this interpreter's kilnwatch
    program = Path(sys.executable).with_name("kilnwatch")
    unit = tmp_path / "kilnwatch.service"
    unit.write_text(UNIT.read_text().replace("/opt/kilnwatch/bin/kilnwatch", str(program)))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "kilnwatch.service" not in done.stderr, done.stderr
