"""The deployment files: the compose file validates, and its pieces agree with kilnwatch."""

from __future__ import annotations

import json
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


def _compose_config(*args: str) -> dict:
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose is needed (Debian package docker-compose; make test installs it)"
    done = subprocess.run(
        [compose, *args, "-f", str(DEPLOY / "compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_file_validates() -> None:
    config = _compose_config()
    assert set(config["services"]) == {"influxdb", "mosquitto", "kilnwatch", "grafana"}
    kilnwatch = config["services"]["kilnwatch"]
    assert Path(kilnwatch["build"]["context"]) == ROOT and (ROOT / kilnwatch["build"]["dockerfile"]).is_file()
    assert kilnwatch["environment"]["KILNWATCH_INFLUX_URL"] == "http://influxdb:8086"
    assert config["services"]["influxdb"]["image"].startswith("influxdb:2")


def test_compose_takes_the_sample_env_file() -> None:
    config = _compose_config("--env-file", str(DEPLOY / "kilnwatch.env.example"))
    env = config["services"]["kilnwatch"]["environment"]
    influx = config["services"]["influxdb"]["environment"]
    assert env["KILNWATCH_INFLUX_TOKEN"] == influx["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == "change-me"


def test_kilnwatch_refuses_the_sample_placeholders() -> None:
    with pytest.raises(ValidationError, match="placeholder") as err:
        Settings(_env_file=DEPLOY / "kilnwatch.env.example")  # type: ignore[call-arg]
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
