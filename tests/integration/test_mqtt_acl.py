"""The shipped broker configuration (deploy/mosquitto.conf + deploy/mosquitto.acl) in a real
mosquitto: only a gateway allowed to publish on a topic puts readings into kilnwatch's store."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.paho import stop_client
from tests.fixtures.ports import free_port
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

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PASSWORDS = {"kilnwatch": "kw-test-pw", "gw-kiln1": "gw1-test-pw", "gw-kiln2": "gw2-test-pw"}
TOPIC = "kilnwatch/gw-kiln1/k1/cems"
NS = 1_000_000_000


def shipped_config(tls_port: int, plain_port: int, workdir: Path) -> str:
    """deploy/mosquitto.conf with this test's ports and files in place of the container's."""
    text = (DEPLOY / "mosquitto.conf").read_text()
    text = text.replace("listener 1883 127.0.0.1", f"listener {plain_port} 127.0.0.1")
    text = text.replace("listener 8883\n", f"listener {tls_port} 127.0.0.1\n")
    text = text.replace("/mosquitto/config/certs/", f"{workdir}/").replace(
        "/mosquitto/config/", f"{workdir}/"
    )
    text = text.replace("/mosquitto/data/", f"{workdir}/data/").replace("log_dest stdout", "log_dest stderr")
    return text + ("user root\n" if os.geteuid() == 0 else "")


@pytest.fixture
def locked_broker(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Mosquitto]:
    ca, cert, key = tls_files(tmp_path)
    for name, path in (("ca.crt", ca), ("server.crt", cert), ("server.key", key)):
        path.rename(tmp_path / name)
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate(PASSWORDS.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run(
            ["mosquitto_passwd", "-b", *create, str(passwd), user, password], check=True, timeout=10
        )
    (tmp_path / "acl").write_text((DEPLOY / "mosquitto.acl").read_text())
    broker = Mosquitto(mosquitto.binary, tmp_path / "broker")
    broker.conf.write_text(shipped_config(broker.port, free_port(), tmp_path))
    (tmp_path / "data").mkdir()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class Gateway:
    """A publisher over TLS as ``user``, MQTT 5, that keeps the broker's answer to each publish."""

    def __init__(self, broker: Mosquitto, user: str, ca: Path) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{user}", protocol=paho.MQTTv5)
        self.client.tls_set(ca_certs=str(ca))
        self.client.username_pw_set(user, PASSWORDS[user])
        self.answers: dict[int, ReasonCode] = {}
        self.client.on_publish = self._on_publish
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_publish(self, _c: object, _u: object, mid: int, reason: ReasonCode, _p: Properties) -> None:
        self.answers[mid] = reason

    async def publish(self, topic: str, payload: bytes) -> ReasonCode:
        info = self.client.publish(topic, payload, qos=1)
        await until(lambda: info.mid in self.answers, f"the broker's answer to a publish on {topic}")
        return self.answers[info.mid]

    def close(self) -> None:
        stop_client(self.client)


def test_the_shipped_plain_listener_is_loopback_only_and_the_tls_one_has_certificates() -> None:
    conf = [line.split() for line in (DEPLOY / "mosquitto.conf").read_text().splitlines() if line.strip()]
    listeners = [line for line in conf if line[0] == "listener"]
    assert ["listener", "1883", "127.0.0.1"] in listeners and ["listener", "8883"] in listeners
    keys = {line[0] for line in conf if not line[0].startswith("#")}
    assert {"cafile", "certfile", "keyfile", "acl_file", "password_file"} <= keys
    assert ["allow_anonymous", "false"] in conf and ["per_listener_settings", "false"] in conf


async def test_only_the_gateway_allowed_on_a_topic_puts_readings_into_the_store(
    locked_broker: Mosquitto, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.crt"
    password_file = tmp_path / "kilnwatch-password"
    password_file.write_text(PASSWORDS["kilnwatch"] + "\n")
    start = base_ns()
    async with rig(tmp_path, RACK_NAMES) as r:
        source = r.source(
            locked_broker,
            rack_bindings(TOPIC),
            "kilnwatch-acl-test",
            tls=True,
            ca_file=str(ca),
            username="kilnwatch",
            password_file=str(password_file),
        )
        async with running(source):
            intruder = Gateway(locked_broker, "gw-kiln2", ca)  # a real gateway, but of another kiln
            kilnwatch_itself = Gateway(locked_broker, "kilnwatch", ca)
            owner = Gateway(locked_broker, "gw-kiln1", ca)
            try:
                denied = [
                    await intruder.publish(TOPIC, rack_payload(start, 90.0)),
                    await kilnwatch_itself.publish(TOPIC, rack_payload(start + NS, 91.0)),
                ]
                assert [d.getName() for d in denied] == ["Not authorized"] * 2
                # the intruder's own topic is no way in either: kilnwatch does not listen there
                own = await intruder.publish("kilnwatch/gw-kiln2/k1/cems", rack_payload(start, 92.0))
                assert not own.is_failure
                for i in (2, 3):  # the second one is a barrier: anything routed before it has arrived
                    answer = await owner.publish(TOPIC, rack_payload(start + i * NS, 10.0 + i))
                    assert answer.value == 0  # Success: kilnwatch subscribes here
                    stored = 3 * (i - 1)
                    await until(lambda n=stored: r.reader().count_readings() == n, "the owner's readings")
            finally:
                for gateway in (intruder, kilnwatch_itself, owner):
                    gateway.close()
        _, rows = r.reader().readings(["k1.co2"], start - NS, start + 10 * NS)
    assert sorted(((rows.ts - start) // NS).tolist()) == [2, 3]
    assert sorted(rows.value.tolist()) == [12.0, 13.0]
