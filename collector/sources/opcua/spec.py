"""Typed settings of the OPC UA collector, as they appear in the plant file."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from collector.secret_values import resolve_secret

_NODE_RE = re.compile(r"^nsu=[^;]+;[sig]=.+$")
_HEX_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")

SecurityPolicyName = Literal["None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"]


def normalise_thumbprint(value: str) -> str:
    """A SHA-1 (40) or SHA-256 (64) hex thumbprint, lower case, without ':' or spaces."""
    hexed = re.sub(r"[\s:]", "", value).lower()
    if not _HEX_RE.match(hexed):
        raise ValueError("server_thumbprint must be a SHA-1 (40 hex digits) or SHA-256 (64 hex digits) hash")
    return hexed


class OpcUaServerSpec(BaseModel):
    """One OPC UA server and how kilnwatch subscribes to it."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^opc\.tcp://")
    security_policy: SecurityPolicyName = "None"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: str | None = Field(default=None, description="kilnwatch's application certificate")
    private_key: str | None = Field(default=None, description="its private key (PEM or DER)")
    private_key_password_file: str | None = Field(default=None, description="file holding the key's password")
    private_key_password_env: str | None = Field(
        default=None, description="environment variable holding the key's password"
    )
    trust_dir: str | None = Field(
        default=None, description="directory of trusted server (or CA) certificates, DER or PEM"
    )
    server_certificate: str | None = Field(default=None, description="the server's certificate, pinned")
    server_thumbprint: str | None = Field(
        default=None, description="SHA-1 or SHA-256 thumbprint of the server's certificate, pinned"
    )
    trust_any_server_certificate: bool = Field(
        default=False, description="UNSAFE: accept whatever certificate the server presents"
    )
    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = Field(default=None, description="file holding the password")
    password_env: str | None = Field(default=None, description="environment variable holding the password")
    allow_plaintext_password: bool = Field(
        default=False, description="UNSAFE: allow username/password with security_policy None"
    )
    publishing_interval_ms: float = Field(default=200.0, gt=0)
    sampling_interval_ms: float = Field(default=0.0, ge=0)
    queue_size: int = Field(default=1000, ge=1, description="server-side queue per monitored item")
    stale_after_s: float = Field(
        default=30.0, gt=0, description="rebuild the connection when nothing arrives for this long"
    )
    connect_timeout_s: float = Field(default=5.0, gt=0)
    reconnect_stall_s: float = Field(
        default=20.0,
        gt=0,
        description="rebuild the client when its own reconnect has not succeeded for this long",
    )
    history_backfill_h: float = Field(
        default=24.0,
        ge=0,
        description="after a connect, read the server's history (HistoryRead) of what was missed, "
        "at most this far back [h]; 0: never",
    )

    @field_validator("server_thumbprint")
    @classmethod
    def _thumbprint(cls, v: str | None) -> str | None:
        return None if v is None else normalise_thumbprint(v)

    @model_validator(mode="after")
    def _security_is_consistent(self) -> OpcUaServerSpec:
        secure = self.security_policy != "None"
        if secure == (self.security_mode == "None"):
            raise ValueError("security_policy and security_mode must both be 'None' or both be set")
        if secure and not (self.certificate and self.private_key):
            raise ValueError(f"security_policy {self.security_policy} needs certificate and private_key")
        self.password = resolve_secret("password", self.password, self.password_file, self.password_env)
        if self.private_key_password_file and self.private_key_password_env:
            raise ValueError("give private_key_password_file or private_key_password_env, not both")
        trust = [
            name
            for name in ("trust_dir", "server_certificate", "server_thumbprint")
            if getattr(self, name) is not None
        ]
        if secure and not trust and not self.trust_any_server_certificate:
            raise ValueError(
                f"security_policy {self.security_policy} needs the server's certificate to be trusted: "
                "set trust_dir, server_certificate or server_thumbprint "
                "(or trust_any_server_certificate: true, which is unsafe)"
            )
        if not secure and (trust or self.trust_any_server_certificate):
            raise ValueError(f"{', '.join(trust) or 'trust_any_server_certificate'} needs a security_policy")
        if not secure and self.username is not None and not self.allow_plaintext_password:
            raise ValueError(
                "username/password with security_policy None would cross the network in plain text: "
                "use a security policy (SignAndEncrypt), or set allow_plaintext_password: true"
            )
        return self


class OpcUaBinding(BaseModel):
    """Where a signal lives on an OPC UA server: node id by namespace URI, never by index."""

    model_config = ConfigDict(extra="forbid")

    server: str
    node: str

    @field_validator("node")
    @classmethod
    def _by_namespace_uri(cls, v: str) -> str:
        if not _NODE_RE.match(v):
            raise ValueError(
                "node must be addressed by namespace URI, like 'nsu=urn:plant:kiln;s=kiln1.stack.flow'"
            )
        return v
