"""kilnwatch's results as an OPC UA server (asyncua): per kiln the live minute, the newest closed hour
and the alarms, read only, with the client-side security's choices (policies, certificates, users;
anonymous only when configured). The address space is :mod:`.opcua_nodes`; README has it as a table."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from pathlib import Path
from typing import Any, cast

from asyncua import Server, ua
from asyncua.common.node import Node
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from collector.sources.opcua.trust import CERT_SUFFIXES, load_certificates

from .config import ResultsOpcUa
from .opcua_history import HourlyHistory
from .opcua_nodes import (
    KILN_ALARMS,
    KILN_VARIABLES,
    NAMESPACE,
    ROOT,
    eu_information,
    source_time,
    status_code,
    utc,
    variant,
)
from .view import ResultsView, Snapshot

log = logging.getLogger("kilnwatch.results.opcua")
#: Bound of the server's stop [s].
STOP_TIMEOUT_S = 5.0
_RETRY_MAX_S = 60.0
#: Least time between two writes of the results [s].
MIN_GAP_S = 0.25
_GOOD = status_code(ua.StatusCodes.Good)


class ReadOnlyUsers(UserManager):
    """The configured users (password compared in constant time), and anonymous when allowed."""

    def __init__(self, config: ResultsOpcUa) -> None:
        self._passwords = {
            name: u.password.get_secret_value().encode() for name, u in config.users.items() if u.password
        }
        self._anonymous = config.allow_anonymous

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        if username is None:  # anonymous (certificate is the channel's; X509 tokens are not offered)
            return User(role=UserRole.User) if self._anonymous else None
        known = self._passwords.get(username or "")
        given = (password or "").encode() if isinstance(password, str) else bytes(password or b"")
        if known is not None and hmac.compare_digest(known, given):
            return User(role=UserRole.User, name=username)
        log.warning("results server: refused user %r", username)
        return None


class ClientTrust:
    """Client certificates: pinned by a file in ``trust_dir``, or issued by a CA certificate there;
    always within their validity period and carrying the client's application URI."""

    def __init__(self, config: ResultsOpcUa) -> None:
        self._any = config.trust_any_client_certificate
        self._dir = Path(config.trust_dir) if config.trust_dir else None
        self._basic = CertificateValidator(
            CertificateValidatorOptions.TIME_RANGE
            | CertificateValidatorOptions.URI
            | CertificateValidatorOptions.PEER_CLIENT
        )
        self._pinned: set[str] = set()
        self._store: TrustStore | None = None

    async def load(self) -> None:
        if self._dir is None:
            return
        self._pinned = await asyncio.to_thread(self._scan, self._dir)
        self._store = TrustStore([self._dir], [])
        await self._store.load()

    @staticmethod
    def _scan(directory: Path) -> set[str]:
        found = set()
        for path in sorted(directory.iterdir()):
            if path.suffix.lower() in CERT_SUFFIXES:
                try:
                    found |= {_sha256(c) for c in load_certificates(path)}
                except (OSError, ValueError) as err:
                    log.warning("results server: trust_dir file %s is not a certificate: %s", path, err)
        return found

    async def validate(self, cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
        await self._basic.validate(cert, app)
        if self._any or _sha256(cert) in self._pinned:
            return
        if self._store is not None and self._store.validate(cert):
            return
        log.warning("results server: refused the untrusted client certificate SHA-256 %s", _sha256(cert))
        raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)


def _sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def _policy(name: str) -> ua.SecurityPolicyType:
    return ua.SecurityPolicyType.NoSecurity if name == "None" else getattr(ua.SecurityPolicyType, name)


class ResultsOpcUaServer:
    """``await run()`` until cancelled: serves, and writes the view's snapshot at every change and
    every ``update_every_s``. A server that cannot start (port taken, unreadable key) is logged and
    tried again with a growing delay; the service goes on."""

    def __init__(self, config: ResultsOpcUa, view: ResultsView) -> None:
        self.config = config
        self.view = view
        self.server: Server | None = None
        self.started = asyncio.Event()
        self._vars: dict[str, Node] = {}
        self._idx = 0
        self._changed = view.changes()

    async def run(self) -> None:
        delay = 1.0
        while True:
            try:
                await self._start()
            except Exception as err:
                log.error("results OPC UA server on %s cannot start: %s", self.config.endpoint, err)
                await self._stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            try:
                await self._serve()
            finally:
                await self._stop()

    async def _start(self) -> None:
        c = self.config
        server = Server(user_manager=ReadOnlyUsers(c))
        self.server = server
        await server.init()
        server.set_endpoint(c.endpoint)
        server.set_server_name("kilnwatch results")
        await server.set_application_uri(c.application_uri)
        server.set_security_policy([_policy(p) for p in c.security_policies])
        tokens: list[type] = [ua.UserNameIdentityToken] if c.users else []
        if c.allow_anonymous:
            tokens.append(ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        if c.certificate and c.private_key:
            await server.load_certificate(c.certificate)
            await server.load_private_key(c.private_key, c.key_password())
        if c.secure:
            trust = ClientTrust(c)
            await trust.load()
            server.set_certificate_validator(trust.validate)
        server.iserver.history_manager.set_storage(HourlyHistory(self.view))
        self._idx = await server.register_namespace(NAMESPACE)
        await self._build(server)
        await server.start()
        log.info("results OPC UA server on %s (%s)", c.endpoint, ", ".join(c.security_policies))
        self.started.set()

    async def _stop(self) -> None:
        self.started.clear()
        server, self.server = self.server, None
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.stop(), STOP_TIMEOUT_S)

    def _id(self, text: str) -> ua.NodeId:
        return ua.NodeId(ua.String(text), ua.Int16(self._idx))

    async def _folder(self, parent: Node, text_id: str, name: str) -> Node:
        return await parent.add_folder(self._id(text_id), ua.QualifiedName(name, self._idx))

    async def _variable(self, parent: Node, text_id: str, name: str, kind: ua.VariantType, text: str) -> Node:
        node = await parent.add_variable(
            self._id(text_id), ua.QualifiedName(name, self._idx), variant(None, kind), varianttype=kind
        )
        await node.write_attribute(
            ua.AttributeIds.Description, ua.DataValue(ua.Variant(ua.LocalizedText(text)))
        )
        self._vars[text_id] = node
        return node

    async def _build(self, server: Server) -> None:
        self._vars = {}
        root = await self._folder(server.nodes.objects, ROOT, "KilnwatchResults")
        alarms = await self._folder(root, f"{ROOT}.alarms", "Alarms")
        await self._variable(
            alarms, "alarms.source", "source", ua.VariantType.Boolean, "a source disconnected"
        )
        await self._variable(
            alarms, "alarms.source.message", "source.message", ua.VariantType.String, "its message"
        )
        for kiln in self.view.ctx.kilns:
            k = await self._folder(root, kiln.id, kiln.id)
            folders = {
                "live": await self._folder(k, f"{kiln.id}.live", "Live"),
                "hour": await self._folder(k, f"{kiln.id}.hour", "Hour"),
                "alarms": await self._folder(k, f"{kiln.id}.alarms", "Alarms"),
            }
            for v in KILN_VARIABLES:
                node = await self._variable(
                    folders[v.folder], f"{kiln.id}.{v.folder}.{v.name}", v.name, v.variant, v.description
                )
                if v.folder == "hour":  # HistoryRead over the store's hours
                    await node.set_attr_bit(ua.AttributeIds.AccessLevel, ua.AccessLevel.HistoryRead)
                    await node.set_attr_bit(ua.AttributeIds.UserAccessLevel, ua.AccessLevel.HistoryRead)
                    await node.write_attribute(
                        ua.AttributeIds.Historizing, ua.DataValue(ua.Variant(True, ua.VariantType.Boolean))
                    )
                if v.unit:
                    await node.add_property(
                        self._id(f"{kiln.id}.{v.folder}.{v.name}.EngineeringUnits"),
                        ua.QualifiedName("EngineeringUnits", 0),
                        eu_information(v.unit),
                        datatype=ua.NodeId(ua.Int32(ua.ObjectIds.EUInformation)),
                    )
            for kind in KILN_ALARMS:
                base = f"{kiln.id}.alarms.{kind}"
                await self._variable(
                    folders["alarms"], base, kind, ua.VariantType.Boolean, f"{kind} alarm active"
                )
                await self._variable(
                    folders["alarms"],
                    f"{base}.message",
                    f"{kind}.message",
                    ua.VariantType.String,
                    "its message",
                )

    async def _serve(self) -> None:
        changed = self._changed
        while True:
            try:
                await self.write(await self.view.snapshot())
            except Exception:
                log.exception("results OPC UA server: writing the results failed")
            await asyncio.sleep(MIN_GAP_S)  # bounded work while a backlog closes minute after minute
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), self.config.update_every_s)
            changed.clear()

    async def write(self, snap: Snapshot) -> None:
        server = self.server
        if server is None:
            return
        now_ns = time.time_ns()
        now = utc(now_ns)

        async def put(text_id: str, value: ua.Variant, status: ua.StatusCode, source: Any) -> None:
            dv = ua.DataValue(
                value,
                StatusCode=status,
                SourceTimestamp=cast(ua.DateTime, source),
                ServerTimestamp=cast(ua.DateTime, now),
            )
            await server.write_attribute_value(self._vars[text_id].nodeid, dv)

        await put("alarms.source", ua.Variant(snap.source_alarm.active, ua.VariantType.Boolean), _GOOD, now)
        await put(
            "alarms.source.message", ua.Variant(snap.source_alarm.message, ua.VariantType.String), _GOOD, now
        )
        for kiln, r in snap.kilns.items():
            for v in KILN_VARIABLES:
                await put(
                    f"{kiln}.{v.folder}.{v.name}",
                    variant(v.get(r), v.variant),
                    v.status(r),
                    source_time(v.folder, v.name, r, now_ns),
                )
            for kind, state in r.alarms.items():
                base = f"{kiln}.alarms.{kind}"
                await put(base, ua.Variant(state.active, ua.VariantType.Boolean), _GOOD, now)
                await put(f"{base}.message", ua.Variant(state.message, ua.VariantType.String), _GOOD, now)
