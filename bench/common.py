"""Shared helpers of the benchmarks: the RESULT line, repeat-and-median, free ports, and the
servers a benchmark starts on 127.0.0.1 (mosquitto, victoria-metrics, the kiln simulator, a
kilnwatch service), each as a context manager that stops what it started.

Every benchmark prints, per figure, one line exactly of the form

    RESULT <name> value=<median> unit=<unit> baseline=<median of the ceiling> ratio=<value/baseline>

Importing this module puts the repository root on ``sys.path``, so ``python bench/x.py`` works
from a fresh clone without an installed package.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402 - after the path set-up above

T = TypeVar("T")
HOST = "127.0.0.1"
#: Signals per demo kiln (6 over OPC UA, 7 analyser channels), see kilnwatch.demo.
SIGNALS_PER_KILN = 13
READY_TIMEOUT_S = 30.0


def quiet_logs() -> None:
    """Warnings of kilnwatch to stderr; asyncua's per-retry messages (a benchmark ends its
    clients abruptly) not at all."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)


def log(message: str) -> None:
    """Progress and detail go to stderr; stdout carries the RESULT lines."""
    print(message, file=sys.stderr, flush=True)


def result_line(name: str, value: float, unit: str, baseline: float, ratio: float) -> str:
    """Print (and return) the one RESULT line of a figure."""
    line = f"RESULT {name} value={_fmt(value)} unit={unit} baseline={_fmt(baseline)} ratio={ratio:.3f}"
    print(line, flush=True)
    return line


def _fmt(x: float) -> str:
    if x == 0 or abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.4g}"


def repeat_median(
    measure: Callable[[], float], repeats: int = 3, warmup: Callable[[], object] | None = None
) -> tuple[float, list[float]]:
    """Run ``warmup`` once (default: ``measure`` itself), then ``measure`` ``repeats`` times.

    Returns the median and the single results.
    """
    (warmup or measure)()
    runs = [measure() for _ in range(repeats)]
    return statistics.median(runs), runs


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something true; exceptions count as not yet."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as err:  # a server still starting answers with errors
            last = err
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s (last error: {last!r})")


def accepting(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


def kiln_ids(n_signals: int) -> tuple[str, ...]:
    """Demo kilns (13 signals each) for about ``n_signals`` signals."""
    return tuple(f"kiln{i + 1}" for i in range(max(1, round(n_signals / SIGNALS_PER_KILN))))


def python() -> str:
    return sys.executable


def bench_env() -> dict[str, str]:
    """The environment for child processes: the repository importable, output unbuffered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextlib.contextmanager
def process(
    args: Sequence[str],
    log_path: Path,
    ready: Callable[[], bool],
    what: str,
    env: Mapping[str, str] | None = None,
) -> Iterator[Any]:
    """A child process whose output goes to ``log_path``, with ``env`` added to :func:`bench_env`;
    stopped (TERM, then KILL) on exit."""
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env={**bench_env(), **(env or {})},
            cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready():
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{what} exited with {proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not ready within {READY_TIMEOUT_S:.0f} s; see {log_path}")
            time.sleep(0.05)
        yield proc
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- servers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Broker:
    host: str
    port: int


@contextlib.contextmanager
def mosquitto(workdir: Path) -> Iterator[Broker]:
    """mosquitto with kilnwatch's shipped configuration (persistence, queue limits)."""
    from simulators.demo_broker import mosquitto_binary, mosquitto_config

    binary = mosquitto_binary()
    if binary is None:
        raise RuntimeError("mosquitto is not installed (Debian: apt-get install mosquitto)")
    port = free_port()
    data = workdir / "mosquitto"
    data.mkdir(parents=True, exist_ok=True)
    conf = data / "mosquitto.conf"
    conf.write_text(mosquitto_config(port, data, HOST), encoding="utf-8")
    with process([binary, "-c", str(conf)], data / "mosquitto.log", lambda: accepting(port), "mosquitto"):
        yield Broker(HOST, port)


@contextlib.contextmanager
def victoria_metrics(workdir: Path, *flags: str) -> Iterator[str]:
    """victoria-metrics (InfluxDB's v2 write API), with extra command-line ``flags``; yields its URL."""
    binary = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
    port = free_port()
    data = workdir / "victoria"
    data.mkdir(parents=True, exist_ok=True)
    args = [
        binary,
        f"-storageDataPath={data}",
        f"-httpListenAddr={HOST}:{port}",
        "-loggerLevel=ERROR",
        *flags,
    ]
    with process(args, data / "victoria.log", lambda: accepting(port), "victoria-metrics"):
        yield f"http://{HOST}:{port}"


@contextlib.contextmanager
def simulator(
    workdir: Path,
    kilns: Sequence[str],
    opcua_port: int,
    *,
    mqtt_port: int | None = None,
    speed: float = 1.0,
    backfill_h: float = 0.0,
    tick_s: float = 1.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """The kiln simulator (asyncua server, optionally the MQTT CEMS publisher) in its own process."""
    args = [
        python(),
        "-m",
        "simulators",
        "--kilns",
        ",".join(kilns),
        "--opcua-port",
        str(opcua_port),
        "--speed",
        repr(speed),
        "--backfill-hours",
        repr(backfill_h),
        "--tick",
        repr(tick_s),
        "--progress",
        "0",
    ]
    args += ["--no-mqtt"] if mqtt_port is None else ["--mqtt-port", str(mqtt_port)]
    with process(args, workdir / "simulator.log", lambda: accepting(opcua_port), "simulator") as proc:
        yield proc


def plant_file(
    workdir: Path,
    kilns: Sequence[str],
    opcua_port: int,
    mqtt_port: int | None,
    engine: dict[str, Any] | None = None,
) -> Path:
    """The demo plant with these kilns, as a YAML plant file; analysers over MQTT when a port is given."""
    from kilnwatch.demo import demo_plant

    plant = demo_plant(opcua_port=opcua_port, mqtt_port=mqtt_port, kilns=tuple(kilns))
    plant["engine"] = engine or {}
    path = workdir / "plant.yaml"
    path.write_text(yaml.safe_dump(plant, sort_keys=False), encoding="utf-8")
    return path


@contextlib.contextmanager
def kilnwatch_service(
    workdir: Path, plant: Path, port: int, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``kilnwatch run --config`` in its own process (``env`` added), ready when its API answers."""
    args = [
        python(),
        "-m",
        "kilnwatch",
        "run",
        "--config",
        str(plant),
        "--port",
        str(port),
        "--data-dir",
        str(workdir / "data"),
    ]
    with process(args, workdir / "kilnwatch.log", lambda: accepting(port), "kilnwatch", env) as proc:
        yield proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far [s] (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation as numpy's default."""
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))
