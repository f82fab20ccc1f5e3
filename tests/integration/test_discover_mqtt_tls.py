"""``kilnwatch discover mqtt://... --mqtt-settings`` against a TLS-only mosquitto with a password file."""

from __future__ import annotations

import json
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from kilnwatch.cli import main
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.paho import stop_client
from tests.integration.test_mqtt_tls import tls_broker

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.fixtures.mosquitto", "tests.integration.mqtt_fixtures"]
__all__ = ["tls_broker"]  # the fixture: TLS only, user kw with password s3cret-test
PASSWORD_ENV = "KILNWATCH_TEST_DISCOVER_MQTT_PASSWORD"


def test_a_tls_broker_with_a_user_is_sampled_with_the_plant_files_settings(
    tls_broker: Mosquitto, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    ca = str(tmp_path / "ca.pem")
    topic = f"{prefix}/kiln1/cems"
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-p")
    pub.tls_set(ca_certs=ca)
    pub.username_pw_set("kw", "s3cret-test")
    pub.connect(tls_broker.host, tls_broker.port)
    pub.loop_start()
    doc = {
        "ts": "2026-11-28T12:00:00.000Z",
        "channels": {"o2": {"value": 8.4, "unit": "vol%", "status": "OK"}},
    }
    pub.publish(topic, json.dumps(doc), qos=1, retain=True).wait_for_publish(10)
    stop_client(pub)

    settings = {"tls": True, "ca_file": ca, "username": "kw", "password_env": PASSWORD_ENV}
    settings_file = tmp_path / "broker.yaml"
    settings_file.write_text(yaml.safe_dump(settings))
    url = f"mqtt://127.0.0.1:{tls_broker.port}"
    args = ["discover", url, "--mqtt-settings", str(settings_file), "--topic", f"{prefix}/#", "--name", "gw"]

    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    assert main([*args, "--seconds", "1", "--output", str(tmp_path / "refused.yaml")]) == 1
    err = capsys.readouterr().err
    assert f"kilnwatch discover: {url} refused the connection: Not authorized" in err
    assert "Traceback" not in err

    monkeypatch.setenv(PASSWORD_ENV, "s3cret-test")
    draft = tmp_path / "draft.yaml"
    assert main([*args, "--seconds", "1.5", "--output", str(draft)]) == 0
    text = draft.read_text()
    plant = yaml.safe_load(text)
    assert plant["sources"]["mqtt"]["gw"] == {"host": "127.0.0.1", "port": tls_broker.port, **settings}
    (signal,) = plant["plants"][0]["kilns"][0]["signals"]
    assert signal["quantity"] == "o2"
    assert signal["source"]["mqtt"] == {
        "broker": "gw",
        "topic": topic,
        "value_path": "channels.o2.value",
        "status_path": "channels.o2.status",
        "timestamp_path": "ts",
    }
    assert "s3cret-test" not in text
