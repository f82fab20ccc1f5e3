"""Secrets in the plant file and the environment: never echoed by a config error, never logged,
and readable from a file, an environment variable or systemd's credentials directory."""

from __future__ import annotations

import copy
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from collector.secret_values import mask_urls
from collector.sources.mqtt.spec import MqttBrokerSpec
from collector.sources.opcua.spec import OpcUaServerSpec
from kilnwatch.demo import demo_plant
from kilnwatch.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SECRET = "S3cr3t"


def _kilnwatch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kilnwatch", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def _plant(tmp_path: Path, mqtt: dict[str, Any] | None = None, opcua: dict[str, Any] | None = None) -> Path:
    plant = copy.deepcopy(demo_plant())
    plant["sources"]["mqtt"]["cems"].update(mqtt or {})
    plant["sources"]["opcua"]["sim"].update(opcua or {})
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(plant))
    return path


def test_check_config_names_a_secret_fields_path_and_reason_but_not_its_value(tmp_path: Path) -> None:
    path = _plant(
        tmp_path,
        mqtt={"username": "kw", "password": 12345678, "tls": True},
        opcua={"url": f"tcp://admin:{SECRET}@plc:4840"},
    )
    done = _kilnwatch("check-config", str(path))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert f"{path}: sources.mqtt.cems.password: Input should be a valid string" in lines
    assert any(
        line.startswith(f"{path}: sources.opcua.sim.url: String should match pattern")
        and "tcp://***@plc" in line
        for line in lines
    ), lines
    assert "12345678" not in done.stderr + done.stdout
    assert SECRET not in done.stderr + done.stdout and "admin" not in done.stderr


def test_a_placeholder_password_is_refused_without_being_shown(tmp_path: Path) -> None:
    path = _plant(tmp_path, mqtt={"username": "kw", "password": "change-me-please", "tls": True})
    done = _kilnwatch("check-config", str(path))
    assert done.returncode == 1
    assert "sources.mqtt.cems: password is still a sample file's placeholder" in done.stderr
    assert "change-me-please" not in done.stderr


def test_run_refuses_credentials_in_the_environment_without_showing_them(tmp_path: Path) -> None:
    done = _kilnwatch(
        "run",
        "--data-dir",
        str(tmp_path),
        env={"KILNWATCH_INFLUX_URL": f"http://admin:{SECRET}@127.0.0.1:8086/change-me"},
    )
    assert done.returncode == 2, done.stderr
    assert "environment (KILNWATCH_*): influx_url: still the sample file's placeholder" in done.stderr
    assert SECRET not in done.stderr and "Traceback" not in done.stderr
    assert "http://***@127.0.0.1:8086" in done.stderr


def test_a_password_from_a_file_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "mqtt-password"
    secret_file.write_text("from-a-file\n")
    spec = MqttBrokerSpec(username="kw", password_file=str(secret_file), tls=True)
    assert spec.password is not None and spec.password.get_secret_value() == "from-a-file"
    monkeypatch.setenv("KW_TEST_MQTT_PASSWORD", "from-the-env")
    spec = MqttBrokerSpec(username="kw", password_env="KW_TEST_MQTT_PASSWORD", tls=True)
    assert spec.password is not None and spec.password.get_secret_value() == "from-the-env"
    opcua = OpcUaServerSpec(
        url="opc.tcp://127.0.0.1:4840",
        username="u",
        password_env="KW_TEST_MQTT_PASSWORD",
        allow_plaintext_password=True,
    )
    assert opcua.password is not None and opcua.password.get_secret_value() == "from-the-env"
    assert "from-the-env" not in repr(opcua) + repr(spec)


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        (
            {"password_file": "/nonexistent/kw-password"},
            "password_file /nonexistent/kw-password: No such file",
        ),
        (
            {"password_env": "KW_TEST_UNSET_VARIABLE"},
            "environment variable KW_TEST_UNSET_VARIABLE is not set",
        ),
        ({"password": "x", "password_env": "KW_TEST_UNSET_VARIABLE"}, "give one of password, password_env"),
    ],
)
def test_a_secret_source_that_does_not_work_is_named(settings: dict[str, str], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        MqttBrokerSpec(username="kw", tls=True, **settings)


def test_a_password_without_tls_is_refused_unless_allowed(tmp_path: Path) -> None:
    done = _kilnwatch("check-config", str(_plant(tmp_path, mqtt={"username": "kw", "password": "pw-123"})))
    assert done.returncode == 1
    assert "sources.mqtt.cems: a password without tls would cross the network in plain text" in done.stderr
    assert "allow_plaintext_password: true" in done.stderr and "pw-123" not in done.stderr
    MqttBrokerSpec(username="kw", password="pw-123", allow_plaintext_password=True)
    MqttBrokerSpec(username="kw", password="pw-123", tls=True)
    MqttBrokerSpec(username="kw")  # a user name alone is no secret


def test_influx_token_from_a_file_and_from_systemd_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [k for k in os.environ if k.startswith("KILNWATCH_")]:
        monkeypatch.delenv(name)
    token = tmp_path / "token"
    token.write_text("tok-from-file\n")
    from_file = Settings(_env_file=None, influx_token_file=token).influx_token  # type: ignore[call-arg]
    assert from_file is not None and from_file.get_secret_value() == "tok-from-file"
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "influx-token").write_text("tok-from-systemd")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    from_systemd = Settings(_env_file=None).influx_token  # type: ignore[call-arg]
    assert from_systemd is not None and from_systemd.get_secret_value() == "tok-from-systemd"
    explicit = Settings(_env_file=None, influx_token="tok-explicit")  # type: ignore[call-arg]
    assert explicit.influx_token is not None and explicit.influx_token.get_secret_value() == "tok-explicit"
    (credentials / "influx-token").write_text("change-me")
    with pytest.raises(ValidationError, match="placeholder") as err:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert "change-me" not in str(err.value).replace("sample", "")


def test_urls_lose_their_credentials_in_messages() -> None:
    assert mask_urls("to http://admin:S3cr3t@influx:8086/x failed") == "to http://***@influx:8086/x failed"
    assert mask_urls("opc.tcp://plc:4840 and mqtts://u@h") == "opc.tcp://plc:4840 and mqtts://***@h"


async def test_the_historian_never_logs_the_influx_urls_credentials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from kilnwatch.config import parse_plant
    from kilnwatch.service import Service

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path, influx_url=f"http://admin:{SECRET}@127.0.0.1:9/", influx_token="t"
    )
    service = Service(parse_plant(demo_plant(), "demo"), settings)
    with caplog.at_level(logging.INFO):
        service.open()
    assert service.writer is not None
    service.pipeline.close()
    service.store.close()
    assert "InfluxDB historian: http://***@127.0.0.1:9/" in caplog.text
    assert SECRET not in caplog.text
