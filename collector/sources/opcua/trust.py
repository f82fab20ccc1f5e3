"""Which OPC UA server certificates kilnwatch trusts.

A server proves that it holds the private key of the certificate it presents; this module
decides whether that certificate is the plant's server: its SHA-1 or SHA-256 thumbprint is
pinned (``server_thumbprint``, ``server_certificate``), it lies in ``trust_dir`` or a CA
certificate in ``trust_dir`` issued it (asyncua's :class:`TrustStore`). A trusted certificate
must also be within its validity period and carry the server's application URI. Anything
else is refused with :class:`UntrustedServer`, whose message names the thumbprint; each
refused thumbprint is logged once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .spec import OpcUaServerSpec, normalise_thumbprint

log = logging.getLogger(__name__)

CERT_SUFFIXES: Final = (".der", ".pem", ".crt", ".cer")
#: Checked for every trusted certificate: validity period and the server's application URI.
_VALIDITY: Final = (
    CertificateValidatorOptions.TIME_RANGE
    | CertificateValidatorOptions.URI
    | CertificateValidatorOptions.PEER_SERVER
)
_PROBLEMS: Final = {
    ua.StatusCodes.BadCertificateTimeInvalid: "is outside its validity period",
    ua.StatusCodes.BadCertificateUriInvalid: "does not carry the server's application URI",
    ua.StatusCodes.BadCertificateInvalid: "has no SubjectAlternativeName",
}


class UntrustedServer(Exception):
    """The server presented a certificate that is not trusted; the message names its thumbprint."""


class SecuritySetupError(Exception):
    """kilnwatch's own security material cannot be used; the message never holds a secret."""


@dataclass(frozen=True)
class Thumbprint:
    sha1: str
    sha256: str

    @classmethod
    def of(cls, cert: x509.Certificate) -> Thumbprint:
        der = cert.public_bytes(Encoding.DER)
        return cls(hashlib.sha1(der).hexdigest(), hashlib.sha256(der).hexdigest())

    def __str__(self) -> str:
        return f"SHA-256 {self.sha256} (SHA-1 {self.sha1})"


def load_certificates(path: Path) -> list[x509.Certificate]:
    """The certificates in a DER or PEM file (a PEM file may hold several)."""
    data = path.read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


class ServerTrust:
    """The trust configuration of one OPC UA source; lives as long as the source."""

    def __init__(self, spec: OpcUaServerSpec, source: str) -> None:
        self._spec, self._source = spec, source
        self.accepted: Thumbprint | None = None
        self._refused: set[Thumbprint] = set()
        self._store: TrustStore | None = None
        self._store_key: tuple[tuple[str, float], ...] = ()
        self._pinned: set[str] = set()
        self._chain_verdicts: dict[Thumbprint, bool] = {}

    @property
    def trusts_any(self) -> bool:
        return self._spec.trust_any_server_certificate

    async def load(self) -> None:
        """(Re)read the pinned certificate and the trust directory; a changed directory takes effect."""
        self._pinned, key = await asyncio.to_thread(self._scan)
        if self._spec.trust_dir and (key != self._store_key or self._store is None):
            self._store_key, self._chain_verdicts = key, {}
            self._store = TrustStore([Path(self._spec.trust_dir)], [])
            try:
                await self._store.load_trust()
            except (OSError, ValueError) as err:  # the direct thumbprint matches still hold
                self._store = None
                log.warning(
                    "OPC UA source %s: trust_dir %s: no CA chains: %s",
                    self._source,
                    self._spec.trust_dir,
                    err,
                )

    def _scan(self) -> tuple[set[str], tuple[tuple[str, float], ...]]:
        spec, pinned, files = self._spec, set[str](), list[Path]()
        if spec.server_thumbprint:
            pinned.add(normalise_thumbprint(spec.server_thumbprint))
        if spec.server_certificate:
            for cert in self._read(Path(spec.server_certificate), "server_certificate"):
                pinned.update(vars(Thumbprint.of(cert)).values())
        if spec.trust_dir:
            directory = Path(spec.trust_dir)
            if not directory.is_dir():
                raise SecuritySetupError(f"trust_dir {directory} is not a directory")
            files = sorted(
                p for p in directory.iterdir() if p.suffix.lower() in CERT_SUFFIXES and p.is_file()
            )
            for path in files:
                for cert in self._read(path, "trust_dir"):
                    pinned.update(vars(Thumbprint.of(cert)).values())
        return pinned, tuple((p.name, p.stat().st_mtime) for p in files)

    def _read(self, path: Path, setting: str) -> list[x509.Certificate]:
        try:
            return load_certificates(path)
        except (OSError, ValueError) as err:
            detail = err.strerror if isinstance(err, OSError) else "not a DER or PEM certificate"
            if setting == "server_certificate":
                raise SecuritySetupError(f"server_certificate {path}: {detail}") from err
            log.warning("OPC UA source %s: %s %s skipped: %s", self._source, setting, path, detail)
            return []

    def _trusted(self, cert: x509.Certificate, thumb: Thumbprint) -> bool:
        if thumb.sha1 in self._pinned or thumb.sha256 in self._pinned:
            return True
        if self._store is None:
            return False
        if thumb not in self._chain_verdicts:  # TrustStore logs every failed chain: ask once per thumbprint
            self._chain_verdicts[thumb] = self._store.is_trusted(cert)
        return self._chain_verdicts[thumb]

    async def check(self, cert: x509.Certificate, server: ua.ApplicationDescription) -> Thumbprint:
        """The certificate's thumbprint when it is trusted; UntrustedServer otherwise."""
        thumb = Thumbprint.of(cert)
        if self.trusts_any:
            if thumb != self.accepted:
                log.warning(
                    "OPC UA source %s: accepting server certificate %s without checking it "
                    "(trust_any_server_certificate is set; unsafe)",
                    self._source,
                    thumb,
                )
            self.accepted = thumb
            return thumb
        if not self._trusted(cert, thumb):
            if self.accepted is not None and thumb != self.accepted:
                problem = f"server certificate changed and the new one is not trusted: {thumb}"
                problem += f"; accepted before: SHA-256 {self.accepted.sha256}"
            else:
                problem = f"server certificate not trusted: {thumb}"
            self._refuse(thumb, problem, cert)
        try:
            await CertificateValidator(_VALIDITY).validate(cert, server)
        except ServiceError as err:
            what = _PROBLEMS.get(err.code, ua.StatusCode(ua.UInt32(err.code)).name)
            self._refuse(thumb, f"server certificate {thumb} {what}", cert)
        self.accepted = thumb
        return thumb

    def _refuse(self, thumb: Thumbprint, problem: str, cert: x509.Certificate) -> None:
        if thumb not in self._refused:
            self._refused.add(thumb)
            log.error(
                "OPC UA source %s refuses the server: %s; subject %s. If it is the plant's server, "
                "add its certificate to trust_dir or pin its thumbprint (server_thumbprint)",
                self._source,
                problem,
                subject(cert),
            )
        raise UntrustedServer(problem)

    async def __call__(self, cert: x509.Certificate, server: ua.ApplicationDescription) -> None:
        """asyncua's certificate validator hook: checks the certificate of every new session."""
        await self.check(cert, server)
