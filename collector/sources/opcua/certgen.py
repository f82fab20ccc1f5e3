"""kilnwatch's own OPC UA application certificate: a self-signed certificate and its RSA key.

OPC UA servers check that the certificate's SubjectAlternativeName URI equals the client's
application URI; the source takes its application URI from the certificate it is given.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from .trust import Thumbprint

CERTIFICATE_FILE: Final = "kilnwatch-client.der"
KEY_FILE: Final = "kilnwatch-client-key.pem"
KEY_BITS: Final = 2048


@dataclass(frozen=True)
class CreatedCertificate:
    certificate: Path
    private_key: Path
    thumbprint: Thumbprint
    application_uri: str


def _alt_names(application_uri: str, hostnames: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def create_client_certificate(
    out: Path,
    application_uri: str,
    hostnames: list[str] | None = None,
    days: int = 365,
    key_password: bytes | None = None,
    overwrite: bool = False,
    key_bits: int = KEY_BITS,
) -> CreatedCertificate:
    """Write a self-signed client certificate (DER) and its private key (PEM, mode 0600) to ``out``.

    The certificate carries ``application_uri`` as SubjectAlternativeName URI and each host name
    (default: this machine's) as DNS name or IP address. FileExistsError unless ``overwrite``.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    cert_path, key_path = out / CERTIFICATE_FILE, out / KEY_FILE
    existing = [str(p) for p in (cert_path, key_path) if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} exists; remove it or pass --force")
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_bits)
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        f"kilnwatch {application_uri}"[:64],
        {},
        _alt_names(application_uri, hostnames or [socket.gethostname()]),
        extended=[ExtendedKeyUsageOID.CLIENT_AUTH],
        days=days,
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(key_password) if key_password else serialization.NoEncryption()
    )
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return CreatedCertificate(cert_path, key_path, Thumbprint.of(cert), application_uri)
