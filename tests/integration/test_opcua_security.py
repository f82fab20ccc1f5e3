"""OPC UA security against real asyncua servers on 127.0.0.1: policies, the server's certificate
checked against the trust configuration, a password-protected client key."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asyncua import Server, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from collector.health import HealthRegistry, SourceHealth
from collector.metrics import Metrics
from collector.sources.opcua.certgen import create_client_certificate
from collector.sources.opcua.source import OpcUaSource
from collector.sources.opcua.spec import OpcUaServerSpec
from collector.sources.opcua.trust import Thumbprint
from collector.sources.supervisor import Supervisor
from tests.integration.test_opcua_collector import MemorySink, free_port, until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
POLICIES = ["Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"]

NS = "urn:kilnwatch:test:secure"
NODE = f"nsu={NS};s=kiln1.flow"
SERVER_URI = "urn:kilnwatch:test:server"
CLIENT_URI = "urn:kilnwatch:test:client"
KEY_PASSWORD = "key-pw-for-tests"
KEY_ENV = "KILNWATCH_TEST_OPCUA_KEY_PASSWORD"
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 10**9


@dataclass(frozen=True)
class ServerIdentity:
    cert: Path
    key: Path
    thumbprint: Thumbprint


@dataclass(frozen=True)
class Pki:
    client_cert: Path
    client_key: Path
    trust_dir: Path
    trusted: ServerIdentity
    other: ServerIdentity


def server_identity(directory: Path, name: str) -> ServerIdentity:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        name,
        {},
        [x509.UniformResourceIdentifier(SERVER_URI), x509.DNSName("localhost")],
        extended=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    cert_path, key_path = directory / f"{name}.der", directory / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return ServerIdentity(cert_path, key_path, Thumbprint.of(cert))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Keys are slow to make: one client and two server identities for the whole module."""
    root = tmp_path_factory.mktemp("pki")
    client = create_client_certificate(
        root / "client", CLIENT_URI, ["127.0.0.1", "localhost"], key_password=KEY_PASSWORD.encode()
    )
    trusted, other = server_identity(root, "server-a"), server_identity(root, "server-b")
    trust_dir = root / "trusted"
    trust_dir.mkdir()
    (trust_dir / "server-a.der").write_bytes(trusted.cert.read_bytes())
    return Pki(client.certificate, client.private_key, trust_dir, trusted, other)


class Logins:
    """A user manager that records every login attempt (and accepts one user)."""

    def __init__(self) -> None:
        self.attempts: list[str | None] = []

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        self.attempts.append(username)
        return User(role=UserRole.User) if (username, password) == ("operator", "test-only-pw") else None


@dataclass
class SecureServer:
    server: Server
    port: int
    flow: Any
    logins: Logins

    async def write(self, value: float, ts: datetime) -> None:
        variant = ua.Variant(value, ua.VariantType.Double)
        await self.flow.write_value(ua.DataValue(variant, SourceTimestamp=ts))  # type: ignore[arg-type]


async def start_server(identity: ServerIdentity) -> SecureServer:
    """A server offering the three policies with SignAndEncrypt, presenting ``identity``."""
    port, logins = free_port(), Logins()
    server = Server(user_manager=logins)  # type: ignore[arg-type]
    await server.init()
    await server.set_application_uri(SERVER_URI)
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/kilnwatch-test/")
    await server.load_certificate(identity.cert)
    await server.load_private_key(identity.key)
    server.set_security_policy([getattr(ua.SecurityPolicyType, f"{p}_SignAndEncrypt") for p in POLICIES])
    # the server checks that the client's application URI is the one in its certificate
    server.set_certificate_validator(
        CertificateValidator(
            CertificateValidatorOptions.BASIC_VALIDATION | CertificateValidatorOptions.PEER_CLIENT
        )
    )
    ns = await server.register_namespace(NS)
    kiln = await server.nodes.objects.add_object(ns, "kiln1")
    flow = await kiln.add_variable(ua.NodeId.from_string(f"ns={ns};s=kiln1.flow"), "flow", 0.0)
    await server.start()
    return SecureServer(server, port, flow, logins)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def servers(pki: Pki) -> AsyncIterator[tuple[SecureServer, SecureServer]]:
    """Starting a server takes seconds: the trusted one and an impostor, shared by the module."""
    started = await asyncio.gather(start_server(pki.trusted), start_server(pki.other))
    yield started[0], started[1]
    for srv in started:
        await asyncio.wait_for(srv.server.stop(), 5)


class Relay:
    """A TCP relay on 127.0.0.1 in front of one server; ``switch`` drops every connection and sends
    new ones to another server, as a restart of the server with a new certificate would."""

    def __init__(self, target: int) -> None:
        self.target, self.port = target, free_port()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def switch(self, target: int) -> None:
        self.target = target
        for w in self._writers:
            w.close()
        self._writers.clear()

    async def stop(self) -> None:
        self.switch(self.target)
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), 5)


@dataclass
class Running:
    source: OpcUaSource
    sink: MemorySink
    health: SourceHealth
    registry: HealthRegistry
    task: asyncio.Task[None]


StartSource = Callable[..., Running]


@pytest_asyncio.fixture(loop_scope="module")
async def start_source(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StartSource]:
    monkeypatch.setenv(KEY_ENV, KEY_PASSWORD)
    running: list[Running] = []

    def start(port: int, **spec: Any) -> Running:
        settings = {
            "url": f"opc.tcp://127.0.0.1:{port}/kilnwatch-test/",
            "security_mode": "SignAndEncrypt",
            "certificate": str(pki.client_cert),
            "private_key": str(pki.client_key),
            "private_key_password_env": KEY_ENV,
            "username": "operator",
            "password": "test-only-pw",
            "publishing_interval_ms": 100.0,
            "connect_timeout_s": 2.0,
            **spec,
        }
        registry, sink = HealthRegistry(), MemorySink()
        health = registry.source("opcua:plc1", "opcua")
        source = OpcUaSource("opcua:plc1", OpcUaServerSpec(**settings), [(0, NODE)], sink, health, Metrics())
        r = Running(source, sink, health, registry, asyncio.create_task(Supervisor(source).run()))
        running.append(r)
        return r

    yield start
    for r in running:
        r.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(r.task, 5)


@pytest.mark.parametrize("policy", POLICIES)
async def test_each_policy_with_a_trusted_server_delivers_values(
    policy: str, pki: Pki, servers: tuple[SecureServer, SecureServer], start_source: StartSource
) -> None:
    srv = servers[0]
    run = start_source(srv.port, security_policy=policy, trust_dir=str(pki.trust_dir))
    await until(lambda: run.health.connected, within=10, what=f"{policy} connect")
    n = POLICIES.index(policy)  # the server is shared: a new value (and time) for each policy
    ts = T0 + timedelta(seconds=n)
    await srv.write(3.5 + n, ts)
    key = (0, int(ts.timestamp()) * 10**9)
    await until(lambda: key in run.sink.by_key(), what="a value over the secure channel")
    assert run.sink.by_key()[key][0] == 3.5 + n
    assert run.registry.not_ready_reasons() == []
    assert srv.logins.attempts[-1] == "operator"


async def test_an_untrusted_server_certificate_is_refused_and_named(
    pki: Pki,
    servers: tuple[SecureServer, SecureServer],
    start_source: StartSource,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="collector")
    impostor = servers[1]
    await impostor.write(1.0, T0)
    run = start_source(
        impostor.port, security_policy="Basic256Sha256", server_certificate=str(pki.trusted.cert)
    )
    await until(lambda: run.health.errors >= 3, within=15, what="three refused attempts")
    assert not run.health.connected and run.sink.batches == []
    assert impostor.logins.attempts == []  # the credentials never went to the untrusted server
    reasons = run.registry.not_ready_reasons()
    assert len(reasons) == 1 and "not trusted" in reasons[0] and pki.other.thumbprint.sha256 in reasons[0]
    logged = [r for r in caplog.records if pki.other.thumbprint.sha256 in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.ERROR


async def test_a_changed_server_certificate_after_a_restart_is_refused(
    pki: Pki, servers: tuple[SecureServer, SecureServer], start_source: StartSource
) -> None:
    trusted, impostor = servers
    relay = Relay(trusted.port)
    await relay.start()
    try:
        run = start_source(
            relay.port,
            security_policy="Aes256Sha256RsaPss",
            server_thumbprint=pki.trusted.thumbprint.sha1.upper(),
            reconnect_stall_s=1.0,
        )
        await until(lambda: run.health.connected, within=10, what="connect to the trusted server")
        relay.switch(impostor.port)  # the "restarted" server presents another certificate
        await until(
            lambda: "changed" in (run.health.last_error or ""),
            within=15,
            what="the changed certificate refused",
        )
        assert not run.health.connected
        reasons = run.registry.not_ready_reasons()
        assert pki.other.thumbprint.sha256 in reasons[0] and pki.trusted.thumbprint.sha256 in reasons[0]
        await impostor.write(2.0, T0 + timedelta(minutes=1))
        await asyncio.sleep(0.5)
        assert all(ts < T0_NS + 60 * 10**9 for _, ts in run.sink.by_key())
        assert impostor.logins.attempts == []
    finally:
        await relay.stop()


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        pytest.param("wrong-key-pw", "Incorrect password", id="wrong-password"),
        pytest.param(None, f"environment variable {KEY_ENV} is not set", id="variable-not-set"),
    ],
)
async def test_a_key_password_that_does_not_open_the_key_is_reported_without_it(
    password: str | None,
    problem: str,
    start_source: StartSource,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if password is None:
        monkeypatch.delenv(KEY_ENV)
    else:
        monkeypatch.setenv(KEY_ENV, password)
    run = start_source(free_port(), security_policy="Basic256Sha256", trust_any_server_certificate=True)
    await until(lambda: run.health.errors >= 2, within=10, what="two failed attempts")
    assert problem in (run.health.last_error or "")
    shown = [run.health.last_error or "", *(r.getMessage() for r in caplog.records)]
    assert not any(secret in text for text in shown for secret in ("wrong-key-pw", KEY_PASSWORD))
