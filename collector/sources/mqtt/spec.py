"""Typed settings of the MQTT collector, as they appear in the plant file."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from collector.secret_values import resolve_secret

StatusWord = Literal["ok", "maintenance", "calibration", "fault"]
TimestampUnit = Literal["auto", "s", "ms", "us", "ns"]

#: The analyser simulator's status vocabulary (and that of many CEMS gateways).
DEFAULT_STATUS_MAP: dict[str | int, StatusWord] = {
    "OK": "ok",
    "MAINT": "maintenance",
    "CAL": "calibration",
    "FLT": "fault",
}

#: Issue 3: a timestamp more than 5 minutes ahead of kilnwatch's clock is rejected [s].
MAX_FUTURE_SKEW_S = 300.0


class MqttBrokerSpec(BaseModel):
    """One MQTT broker and the session kilnwatch keeps with it."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = Field(
        default=None, description="default: kilnwatch-<instance id>-<installation id>-<broker name>"
    )
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    keepalive_s: int = Field(default=30, ge=5)
    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = Field(default=None, description="file holding the password")
    password_env: str | None = Field(default=None, description="environment variable holding the password")
    allow_plaintext_password: bool = Field(default=False, description="UNSAFE: send the password without TLS")
    tls: bool = False
    ca_file: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    qos: Literal[0, 1] = Field(default=1, description="subscription QoS; 1 for at-least-once delivery")
    clean_session: bool = Field(
        default=False, description="MQTT 3.1.1 only; True drops the broker's queue for kilnwatch on connect"
    )
    receive_maximum: int = Field(
        default=1000, ge=1, le=65535, description="MQTT 5: unacknowledged messages the broker may send"
    )
    reconnect_min_s: float = Field(default=1.0, gt=0, description="first reconnect delay [s], doubling")
    reconnect_max_s: float = Field(default=60.0, gt=0, description="cap of the reconnect delay [s]")
    status_map: dict[str | int, StatusWord] = Field(
        default_factory=lambda: dict(DEFAULT_STATUS_MAP),
        description="the gateway's status words or codes -> kilnwatch status (matched case-insensitively)",
    )
    timestamp_unit: TimestampUnit = Field(
        default="auto", description="unit of epoch-number timestamps; auto: by magnitude"
    )
    max_future_skew_s: float = Field(
        default=MAX_FUTURE_SKEW_S, ge=0, description="timestamps further ahead are rejected [s]"
    )
    batch_window_ms: float = Field(
        default=5.0, ge=0, description="collect messages this long before decoding them as one batch [ms]"
    )
    max_batch_messages: int = Field(default=2000, ge=1)
    max_packet_size: int = Field(
        default=256 * 1024,
        ge=1024,
        le=268_435_455,
        description="largest MQTT packet kilnwatch accepts [bytes]: sent to the broker as MQTT 5 Maximum "
        "Packet Size; a larger payload that arrives anyway is dead-lettered (first 4 KiB) without decoding",
    )
    inbox_max_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=64 * 1024,
        description="received messages waiting for decoding, per stage (worker, source) [bytes]; when "
        "full, paho stops reading and the broker waits",
    )
    worker: Literal["process", "thread"] = Field(
        default="process",
        description="where paho receives: its own process (its packet handling does not share "
        "kilnwatch's GIL) or a thread of kilnwatch's process",
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> MqttBrokerSpec:
        check_connection_settings(self)
        return self


class MqttBinding(BaseModel):
    """Where a signal arrives over MQTT: a topic pattern and field paths in its payload.

    Paths are dotted keys into the JSON document (``channels.co2.value``); a numeric part
    indexes a list; an empty ``value_path`` means the whole document. ``timestamp_path: null``
    (and the ``number`` format) take the time of arrival; ``status_path: null`` means ok.
    """

    model_config = ConfigDict(extra="forbid")

    broker: str
    topic: str
    format: Literal["json", "number"] = "json"
    value_path: str = "value"
    timestamp_path: str | None = "ts"
    status_path: str | None = "status"
    timestamp_unit: TimestampUnit | None = Field(default=None, description="default: the broker's")
    status_map: dict[str | int, StatusWord] | None = Field(default=None, description="default: the broker's")

    @field_validator("topic")
    @classmethod
    def _valid_filter(cls, v: str) -> str:
        levels = v.split("/")
        if not v:
            raise ValueError("topic must not be empty")
        for i, level in enumerate(levels):
            if "#" in level and (level != "#" or i != len(levels) - 1):
                raise ValueError("'#' must be a whole topic level and the last one")
            if "+" in level and level != "+":
                raise ValueError("'+' must be a whole topic level")
        return v


class _ConnectionSettings(Protocol):
    reconnect_min_s: float
    reconnect_max_s: float
    password: SecretStr | None
    password_file: str | None
    password_env: str | None
    tls: bool
    allow_plaintext_password: bool


def check_connection_settings(spec: _ConnectionSettings) -> None:
    """Of a broker connection's settings (kilnwatch's sources and its results publisher): the backoff
    in order, the password resolved from its file or variable, and no password in plain text."""
    if spec.reconnect_min_s > spec.reconnect_max_s:
        raise ValueError(
            f"reconnect_min_s {spec.reconnect_min_s} is above reconnect_max_s {spec.reconnect_max_s}"
        )
    spec.password = resolve_secret("password", spec.password, spec.password_file, spec.password_env)
    if spec.password is not None and not spec.tls and not spec.allow_plaintext_password:
        raise ValueError(
            "a password without tls would cross the network in plain text: set tls: true "
            "(with ca_file), or allow_plaintext_password: true"
        )
