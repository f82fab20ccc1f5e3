"""The plant file's ``results`` block: kilnwatch's results served to the plant's systems (off unless set).

results:
  opcua:
    endpoint: opc.tcp://0.0.0.0:4841/kilnwatch
    security_policies: [Basic256Sha256_SignAndEncrypt]
    certificate: /etc/kilnwatch/results-cert.der
    private_key: /etc/kilnwatch/results-key.pem
    trust_dir: /etc/kilnwatch/trusted-clients
    users: {dcs: {password_file: /run/secrets/dcs}}
  mqtt:
    host: broker.plant
    port: 8883
    tls: true
    ca_file: /etc/kilnwatch/ca.pem
    sparkplug: {group: kilnwatch, edge_node: results}
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from collector.secret_values import resolve_secret
from collector.sources.mqtt.spec import check_connection_settings

from ..config_base import Strict

#: asyncua's ``ua.SecurityPolicyType`` names offered for the results server's endpoints.
EndpointPolicy = Literal[
    "None",
    "Basic256Sha256_Sign",
    "Basic256Sha256_SignAndEncrypt",
    "Aes128Sha256RsaOaep_Sign",
    "Aes128Sha256RsaOaep_SignAndEncrypt",
    "Aes256Sha256RsaPss_Sign",
    "Aes256Sha256RsaPss_SignAndEncrypt",
]
_RESERVED = frozenset("+#")


class ResultsUser(Strict):
    """A user of the results server (read only): a password, its file or its environment variable."""

    password: SecretStr | None = None
    password_file: str | None = None
    password_env: str | None = None

    @model_validator(mode="after")
    def _one_password(self) -> ResultsUser:
        self.password = resolve_secret("password", self.password, self.password_file, self.password_env)
        if self.password is None:
            raise ValueError("a user needs password, password_file or password_env")
        return self


class ResultsOpcUa(Strict):
    """kilnwatch's results as an OPC UA server (namespace ``urn:kilnwatch:results``), read only."""

    endpoint: str = Field(default="opc.tcp://127.0.0.1:4841/kilnwatch", pattern=r"^opc\.tcp://")
    security_policies: list[EndpointPolicy] = Field(default=["Basic256Sha256_SignAndEncrypt"], min_length=1)
    certificate: str | None = Field(default=None, description="the server's application certificate")
    private_key: str | None = Field(default=None, description="its private key (PEM or DER)")
    private_key_password_file: str | None = None
    private_key_password_env: str | None = None
    trust_dir: str | None = Field(default=None, description="trusted client (or CA) certificates")
    trust_any_client_certificate: bool = Field(
        default=False, description="UNSAFE: accept whatever certificate a client presents"
    )
    users: dict[str, ResultsUser] = Field(default_factory=dict)
    allow_anonymous: bool = Field(default=False, description="anonymous clients may read")
    allow_plaintext_password: bool = Field(
        default=False, description="UNSAFE: offer user names and passwords on the None policy"
    )
    update_every_s: float = Field(default=1.0, gt=0, le=60, description="the age is brought up to date")
    application_uri: str = "urn:kilnwatch:results:server"

    @property
    def secure(self) -> bool:
        return any(p != "None" for p in self.security_policies)

    @model_validator(mode="after")
    def _consistent(self) -> ResultsOpcUa:
        if self.secure and not (self.certificate and self.private_key):
            raise ValueError("a security policy other than None needs certificate and private_key")
        if self.secure and not self.trust_dir and not self.trust_any_client_certificate:
            raise ValueError(
                "a security policy other than None needs the clients' certificates to be trusted: set "
                "trust_dir (or trust_any_client_certificate: true, which is unsafe)"
            )
        if self.private_key_password_file and self.private_key_password_env:
            raise ValueError("give private_key_password_file or private_key_password_env, not both")
        if not self.users and not self.allow_anonymous:
            raise ValueError("no client could read: add users, or set allow_anonymous: true")
        if self.users and self.security_policies == ["None"] and not self.allow_plaintext_password:
            raise ValueError(
                "passwords on the None policy would cross the network in plain text: add a security "
                "policy, or set allow_plaintext_password: true"
            )
        return self

    def key_password(self) -> bytes | None:
        secret = resolve_secret(
            "private_key_password", None, self.private_key_password_file, self.private_key_password_env
        )
        return None if secret is None else secret.get_secret_value().encode()


class SparkplugOut(Strict):
    """Publish the results as a Sparkplug B edge node (NBIRTH/NDATA/NDEATH) besides the JSON topics."""

    group: str = "kilnwatch"
    edge_node: str | None = Field(default=None, description="default: kilnwatch-<instance id>")

    @field_validator("group", "edge_node")
    @classmethod
    def _topic_level(cls, v: str | None) -> str | None:
        if v is not None and (not v or set(v) & (_RESERVED | {"/"})):
            raise ValueError(f"{v!r} is not a Sparkplug id (non-empty, without '+', '#' or '/')")
        return v


class ResultsMqtt(Strict):
    """kilnwatch's results published to a broker: JSON (``<prefix>/<kiln>/live`` retained, ``.../hourly``)
    and, with ``sparkplug``, Sparkplug B metrics. Connection settings as the MQTT source's."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = Field(default=None, description="default: kilnwatch-results-<instance id>")
    keepalive_s: int = Field(default=30, ge=5)
    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None
    password_env: str | None = None
    allow_plaintext_password: bool = Field(default=False, description="UNSAFE: send the password without TLS")
    tls: bool = False
    ca_file: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    qos: Literal[0, 1] = 1
    topic_prefix: str | None = Field(default=None, description="default: kilnwatch/<instance id>")
    hourly_retained: bool = Field(default=True, description="the newest hour stays on .../hourly")
    update_every_s: float = Field(
        default=10.0, gt=0, le=3600, description="republish at least this often (the age, the alarms) [s]"
    )
    reconnect_min_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=60.0, gt=0)
    sparkplug: SparkplugOut | None = None

    @field_validator("topic_prefix")
    @classmethod
    def _plain_topic(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip("/") or set(v) & _RESERVED):
            raise ValueError("topic_prefix must be a topic without '+' or '#'")
        return None if v is None else v.rstrip("/")

    @model_validator(mode="after")
    def _password_over_tls(self) -> ResultsMqtt:
        check_connection_settings(self)
        return self


class ResultsConfig(Strict):
    opcua: ResultsOpcUa | None = None
    mqtt: ResultsMqtt | None = None
