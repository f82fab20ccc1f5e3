"""The peer of figure 14: Node-RED with ``node-red-contrib-influxdb``, installed from npm into
``bench/.peer/`` on first use and run with ``bench/peer/flow.json`` (see
``bench/peer_mqtt_to_historian.py``)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from common import Broker, accepting, free_port, log, process

HERE = Path(__file__).resolve().parent
PEER_DIR = HERE / ".peer"
FLOW_DIR = HERE / "peer"
#: The peer's packages, pinned so that runs compare like with like.
NODE_RED = "node-red@4.1.15"
INFLUX_NODES = "node-red-contrib-influxdb@0.7.0"
NPM_TIMEOUT_S = 600.0


def node_red_script() -> Path:
    """``red.js`` of the cached Node-RED, installed from npm on first use."""
    red = PEER_DIR / "node_modules" / "node-red" / "red.js"
    if red.exists() and (PEER_DIR / "node_modules" / "node-red-contrib-influxdb").is_dir():
        return red
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("Node.js and npm are not installed (Debian: apt-get install nodejs npm)")
    PEER_DIR.mkdir(parents=True, exist_ok=True)
    log(f"peer: npm install {NODE_RED} {INFLUX_NODES} into {PEER_DIR}")
    args = [npm, "install", "--prefix", str(PEER_DIR), "--no-audit", "--no-fund", "--loglevel=error"]
    done = subprocess.run(
        [*args, NODE_RED, INFLUX_NODES], capture_output=True, text=True, timeout=NPM_TIMEOUT_S, check=False
    )
    if done.returncode != 0 or not red.exists():
        raise RuntimeError(f"npm install failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
    return red


@contextlib.contextmanager
def node_red(
    workdir: Path, red: Path, broker: Broker, influx_url: str, client_id: str, batch: int, protocol: str
) -> Iterator[int]:
    """Node-RED running ``bench/peer/flow.json`` (its broker speaking ``protocol``); yields its pid."""
    user_dir = workdir / "node-red"
    user_dir.mkdir(parents=True, exist_ok=True)
    flow = user_dir / "flow.json"
    nodes = json.loads((FLOW_DIR / "flow.json").read_text(encoding="utf-8"))
    for node in nodes:
        if node["type"] == "mqtt-broker":
            node["protocolVersion"] = "5" if protocol == "5" else "4"
    flow.write_text(json.dumps(nodes, indent=1), encoding="utf-8")
    # credentialSecret false: Node-RED reads the influx node's token from this plain file
    (user_dir / "flow_cred.json").write_text(json.dumps({"kw-influx": {"token": "bench"}}), encoding="utf-8")
    port = free_port()
    env = {
        "KW_NR_PORT": str(port),
        "KW_NR_USER_DIR": str(user_dir),
        "KW_NR_FLOW_FILE": str(flow),
        "KW_NR_NODES_DIR": str(PEER_DIR / "node_modules" / "node-red-contrib-influxdb"),
        "KW_NR_MQTT_PORT": str(broker.port),
        "KW_NR_CLIENT_ID": client_id,
        "KW_NR_INFLUX_URL": influx_url,
        "KW_NR_BATCH_MESSAGES": str(batch),
    }
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        raise RuntimeError("Node.js is not installed (Debian: apt-get install nodejs npm)")
    args = [node, str(red), "--settings", str(FLOW_DIR / "settings.js")]
    with process(args, workdir / "node-red.log", lambda: accepting(port), "node-red", env) as proc:
        yield proc.pid
