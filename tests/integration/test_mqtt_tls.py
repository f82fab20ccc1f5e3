"""The MQTT collector over TLS with a username and password, against a second mosquitto."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.paho import stop_client
from tests.fixtures.tls import tls_files
from tests.integration.mqtt_helpers import (
    RACK_NAMES,
    base_ns,
    rack_bindings,
    rack_payload,
    rig,
    running,
    until,
)

pytest_plugins = ["tests.fixtures.mosquitto", "tests.integration.mqtt_fixtures"]
pytestmark = pytest.mark.integration


@pytest.fixture
def tls_broker(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Mosquitto]:
    """A second mosquitto: TLS only, no anonymous clients, user kw with password s3cret-test."""
    ca, certfile, keyfile = tls_files(tmp_path)
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "kw", "s3cret-test"], check=True)
    broker = Mosquitto(mosquitto.binary, tmp_path / "tls")
    lines = [
        f"listener {broker.port} 127.0.0.1",
        f"cafile {ca}",
        f"certfile {certfile}",
        f"keyfile {keyfile}",
    ]
    lines += ["allow_anonymous false", f"password_file {passwords}", "log_dest stderr"]
    broker.conf.write_text("\n".join([*lines, *(["user root"] if os.geteuid() == 0 else [])]) + "\n")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def test_tls_and_credentials_from_the_spec(tls_broker: Mosquitto, prefix: str, tmp_path: Path) -> None:
    topic = f"{prefix}/k1/cems"
    ca = str(tmp_path / "ca.pem")
    start = base_ns()
    async with rig(tmp_path, RACK_NAMES) as r:
        wrong = r.source(
            tls_broker,
            rack_bindings(topic),
            f"{prefix}-w",
            tls=True,
            ca_file=ca,
            username="kw",
            password="nope",
        )
        task = asyncio.create_task(wrong.run())
        await until(lambda: wrong.health.last_error is not None, "the refused connection in health")
        assert not wrong.health.connected and not task.done()
        await wrong.stop()

        source = r.source(
            tls_broker,
            rack_bindings(topic),
            f"{prefix}-c",
            tls=True,
            ca_file=ca,
            username="kw",
            password="s3cret-test",
        )
        async with running(source):
            pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-p")
            pub.tls_set(ca_certs=ca)
            pub.username_pw_set("kw", "s3cret-test")
            pub.connect(tls_broker.host, tls_broker.port)
            pub.loop_start()
            pub.publish(topic, rack_payload(start, 4.0), qos=1).wait_for_publish(10)
            stop_client(pub)
            await until(lambda: r.reader().count_readings() == 3, "the reading sent over TLS")
