"""The MQTT collector over TLS with a username and password, against a second mosquitto."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.paho import stop_client
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


def _tls_files(workdir: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1, as PEM files: (ca, cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def cert(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = cert("kilnwatch test CA", ca_key, "kilnwatch test CA", ca_key, True)
    server_cert = cert("127.0.0.1", server_key, "kilnwatch test CA", ca_key, False)
    paths = workdir / "ca.pem", workdir / "server.pem", workdir / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture
def tls_broker(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Mosquitto]:
    """A second mosquitto: TLS only, no anonymous clients, user kw with password s3cret-test."""
    ca, certfile, keyfile = _tls_files(tmp_path)
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
