"""The deployment files: the compose file validates, and its pieces agree with kilnwatch."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from analytics.aggregates import HourAggregate, MinuteAggregate
from collector.outputs.historian.line_protocol import hour_line, minute_line
from kilnwatch.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


#: Secrets compose requires (values as an operator would set them).
REAL_SECRETS = {
    "INFLUXDB_ADMIN_PASSWORD": "a1b2c3d4e5f6a7b8",
    "INFLUXDB_ADMIN_TOKEN": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "GRAFANA_ADMIN_PASSWORD": "9a8b7c6d5e4f3a2b",
}


def _compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose is needed (Debian package docker-compose; make test installs it)"
    clean = {k: v for k, v in os.environ.items() if k not in REAL_SECRETS and not k.endswith("_ADDRESS")}
    return subprocess.run(
        [compose, *args, "-f", str(DEPLOY / "compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**clean, **(env or {})},
    )


def _compose_config(*args: str, env: dict[str, str] | None = None) -> dict:
    done = _compose(*args, env=REAL_SECRETS if env is None else env)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def _env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")
    return {k: v for k, v in pairs}


def test_compose_file_validates() -> None:
    config = _compose_config()
    services = {"preflight", "influxdb", "influx-init", "mosquitto", "kilnwatch", "grafana"}
    assert set(config["services"]) == services
    kilnwatch = config["services"]["kilnwatch"]
    assert Path(kilnwatch["build"]["context"]) == ROOT and (ROOT / kilnwatch["build"]["dockerfile"]).is_file()
    assert kilnwatch["environment"]["KILNWATCH_INFLUX_URL"] == "http://influxdb:8086"
    assert config["services"]["influxdb"]["image"].startswith("influxdb:2")


@pytest.mark.parametrize("missing", sorted(REAL_SECRETS))
def test_compose_refuses_to_run_without_an_admin_secret(missing: str) -> None:
    done = _compose(env={k: v for k, v in REAL_SECRETS.items() if k != missing})
    assert done.returncode != 0
    assert done.stderr.rstrip().endswith(f"set {missing} in deploy/kilnwatch.env"), done.stderr[-300:]


def _ports(service: dict) -> list[tuple[str, str]]:
    """(host address, container port) of each published port, in either syntax compose prints."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append((port.get("host_ip", ""), str(port["target"])))
        else:
            host, _, rest = str(port).rpartition(":")
            out.append((host.rpartition(":")[0] if host.count(":") else "", rest.split("/")[0]))
    return out


def test_every_published_port_is_on_loopback_unless_the_operator_opts_in() -> None:
    config = _compose_config("--env-file", str(DEPLOY / "kilnwatch.env.example"))
    published = {name: _ports(s) for name, s in config["services"].items() if s.get("ports")}
    assert set(published) == {"influxdb", "mosquitto", "kilnwatch", "grafana"}
    assert all(host == "127.0.0.1" for ports in published.values() for host, _ in ports), published
    assert published["mosquitto"] == [("127.0.0.1", "8883")]  # TLS only; 1883 stays in the container
    opened = _compose_config(env={**REAL_SECRETS, "KILNWATCH_PUBLISH_ADDRESS": "10.1.2.3"})
    assert _ports(opened["services"]["kilnwatch"]) == [("10.1.2.3", "8000")]
    assert _ports(opened["services"]["grafana"]) == [("10.1.2.3", "3000")]
    assert _ports(opened["services"]["mosquitto"]) == [("127.0.0.1", "8883")]


def test_every_service_is_read_only_without_capabilities_or_new_privileges() -> None:
    for name, service in _compose_config()["services"].items():
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"] and not service.get("cap_add"), name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert not service.get("privileged"), name


def test_nothing_starts_before_preflight_and_the_scoped_tokens() -> None:
    services = _compose_config()["services"]
    assert services["influxdb"]["depends_on"]["preflight"]["condition"] == "service_completed_successfully"
    for name in ("kilnwatch", "grafana"):
        assert services[name]["depends_on"]["influx-init"]["condition"] == "service_completed_successfully"
        assert not any("INFLUX_TOKEN" in k and "FILE" not in k for k in services[name]["environment"]), name
    kilnwatch = services["kilnwatch"]
    assert kilnwatch["environment"]["KILNWATCH_INFLUX_TOKEN_FILE"] == "/run/influx/kilnwatch.token"
    assert "influx-token-kilnwatch:/run/influx:ro" in kilnwatch["volumes"]
    assert "influx-token-grafana:/run/influx:ro" in services["grafana"]["volumes"]
    source = (DEPLOY / "grafana" / "provisioning" / "datasources" / "influxdb.yml").read_text()
    assert "token: $__file{/run/influx/grafana.token}" in source
    script = (DEPLOY / "influx-tokens.sh").read_text()
    assert '"$dir/kilnwatch/kilnwatch.token" "kilnwatch: write $bucket" --write-bucket' in script
    assert '"$dir/grafana/grafana.token" "grafana: read $bucket" --read-bucket' in script


def _preflight(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(DEPLOY / "preflight.sh")],
        capture_output=True,
        text=True,
        timeout=10,
        env={"PATH": os.environ["PATH"], **env},
    )


def test_preflight_refuses_every_change_me_and_passes_real_secrets() -> None:
    sample = _env_file(DEPLOY / "kilnwatch.env.example")
    done = _preflight(sample)
    assert done.returncode == 1
    assert "INFLUXDB_ADMIN_PASSWORD INFLUXDB_ADMIN_TOKEN GRAFANA_ADMIN_PASSWORD" in done.stderr
    assert "change-me" not in done.stderr
    one_left = _preflight({**REAL_SECRETS, "GRAFANA_ADMIN_PASSWORD": "Change-Me-2"})
    assert one_left.returncode == 1 and "placeholder: GRAFANA_ADMIN_PASSWORD" in one_left.stderr
    short = _preflight({**REAL_SECRETS, "INFLUXDB_ADMIN_PASSWORD": "abc"})
    assert short.returncode == 1 and "shorter than 8" in short.stderr
    assert _preflight(REAL_SECRETS).returncode == 0


def test_kilnwatch_refuses_the_sample_env_file() -> None:
    with pytest.raises(ValidationError, match="KILNWATCH_INFLUX_URL is set but there is no token"):
        Settings(_env_file=DEPLOY / "kilnwatch.env.example")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="placeholder") as err:
        Settings(_env_file=DEPLOY / "kilnwatch.env.example", influx_token="change-me")  # type: ignore[call-arg]
    assert [e["loc"] for e in err.value.errors()] == [("influx_token",)]
    Settings(_env_file=DEPLOY / "kilnwatch.env.example", influx_token="0123abcd")  # type: ignore[call-arg]


def test_mosquitto_queues_are_sized_for_outages() -> None:
    conf = dict(
        line.split(None, 1)
        for line in (DEPLOY / "mosquitto.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert int(conf["max_queued_messages"]) >= 1_000_000
    assert conf["max_queued_bytes"] == "0"
    assert conf["persistence"] == "true" and conf["allow_anonymous"] == "false"


def test_dashboard_asks_for_what_kilnwatch_writes() -> None:
    written: dict[str, set[str]] = {}
    for line in (
        minute_line(MinuteAggregate("k", "p", 0, 1.0, 2.0, 3.0, True, {})),
        hour_line(HourAggregate("k", "p", 0, 1.0, 2.0, 3.0, True, 1.0, {})),
    ):
        series, fields, _ = line.split(" ")
        written[series.split(",")[0]] = {f.split("=")[0] for f in fields.split(",")}
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "kilnwatch.json").read_text())
    source = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "influxdb.yml").read_text()
    )
    uid = source["datasources"][0]["uid"]
    titles = " ".join(p["title"] for p in dashboard["panels"])
    assert "CO2 [t/h]" in titles and "intensity" in titles.lower()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid
        query = panel["targets"][0]["query"]
        [measurement] = re.findall(r'r\._measurement == "(\w+)"', query)
        assert set(re.findall(r'r\._field == "(\w+)"', query)) <= written[measurement], panel["title"]
