"""Setting up an asyncua client's security: policy, mode, application certificate and key, the
server's certificate (checked against the trust configuration before anything is sent on a
secure channel) and the user's credentials."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto import security_policies, uacrypto
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .spec import OpcUaServerSpec
from .trust import SecuritySetupError, ServerTrust

log = logging.getLogger(__name__)


def key_password(spec: OpcUaServerSpec) -> bytes | None:
    """The private key's password, from its file or environment variable; None when not set."""
    if spec.private_key_password_file:
        path = Path(spec.private_key_password_file)
        try:
            return path.read_bytes().rstrip(b"\r\n")
        except OSError as err:
            raise SecuritySetupError(f"private_key_password_file {path}: {err.strerror}") from err
    if spec.private_key_password_env:
        value = os.environ.get(spec.private_key_password_env)
        if value is None:
            raise SecuritySetupError(
                f"private_key_password_env: environment variable {spec.private_key_password_env} is not set"
            )
        return value.encode()
    return None


def application_uri(cert: x509.Certificate) -> str | None:
    """The first URI in the certificate's SubjectAlternativeName: the application URI servers check."""
    with contextlib.suppress(x509.ExtensionNotFound):
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        if uris:
            return uris[0]
    return None


def _first_certificate(der: bytes) -> x509.Certificate:
    # servers may send their certificate followed by its chain: the outer SEQUENCE's length ends the first
    return x509.load_der_x509_certificate(der[: int.from_bytes(der[2:4], "big") + 4])


async def configure_security(client: Client, spec: OpcUaServerSpec, trust: ServerTrust) -> None:
    """Security policy, mode, certificates and user credentials, where the spec sets them.

    With a security policy, the server's endpoints are read over an unsecured channel, the
    certificate of the matching endpoint is checked by ``trust`` (UntrustedServer otherwise) and
    only that certificate is used for the secure channel; ``trust`` also checks the certificate
    of every session asyncua creates later (its own reconnects).
    """
    if spec.security_policy != "None" and spec.certificate and spec.private_key:
        policy = getattr(security_policies, f"SecurityPolicy{spec.security_policy}")
        mode = getattr(ua.MessageSecurityMode, spec.security_mode)
        try:
            cert = await uacrypto.load_certificate(spec.certificate)
        except (OSError, ValueError) as err:
            raise SecuritySetupError(f"certificate {spec.certificate}: {err}") from err
        uri = application_uri(cert)
        if uri is None:
            log.warning("certificate %s carries no application URI; servers may refuse it", spec.certificate)
        else:
            client.application_uri = uri  # servers check it against the certificate
        password = key_password(spec)
        try:  # before the server is contacted: a key that cannot be used is kilnwatch's problem
            await uacrypto.load_private_key(spec.private_key, password)
        except (OSError, ValueError, TypeError) as err:
            # cryptography's messages ("Bad decrypt. Incorrect password?") never echo the password
            raise SecuritySetupError(f"private_key {spec.private_key}: {err}") from err
        await trust.load()
        endpoints = await client.connect_and_get_server_endpoints()
        try:
            endpoint = Client.find_endpoint(endpoints, mode, policy.URI)
        except ua.UaError as err:
            raise SecuritySetupError(
                f"the server offers no endpoint with {spec.security_policy}/{spec.security_mode}"
            ) from err
        server_cert = _first_certificate(endpoint.ServerCertificate)
        await trust.check(server_cert, endpoint.Server)
        client.certificate_validator = trust
        await client.set_security(
            policy,
            spec.certificate,
            spec.private_key,
            private_key_password=password,
            server_certificate=server_cert.public_bytes(Encoding.DER),
            mode=mode,
        )
    if spec.username is not None:
        client.set_user(spec.username)
    if spec.password is not None:
        client.set_password(spec.password.get_secret_value())
