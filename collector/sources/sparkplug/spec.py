"""Typed settings of a Sparkplug B host connection and of a signal bound to a Sparkplug metric."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..mqtt.spec import MqttBrokerSpec

_RESERVED = frozenset("+#/")


def _topic_level(v: str) -> str:
    if not v or _RESERVED & set(v):
        raise ValueError(f"{v!r} is not a Sparkplug id (non-empty, without '+', '#' or '/')")
    return v


class SparkplugHostSpec(MqttBrokerSpec):
    """The broker connection (the MQTT source's settings: TLS, credentials, protocol) plus the host
    application's id. Sparkplug 3.0 asks a host for a clean session: the defaults keep none."""

    host_id: str = Field(default="kilnwatch", description="Sparkplug host id: spBv1.0/STATE/<host_id>")
    session_expiry_s: int = Field(default=0, ge=0)
    clean_session: bool = True
    worker: Literal["thread"] = "thread"  # the host publishes (STATE, NCMD): paho stays in this process
    rebirth_interval_s: float = Field(
        default=5.0, gt=0, description="least time between two rebirth requests to one edge node [s]"
    )

    _host_id_valid = field_validator("host_id")(classmethod(lambda cls, v: _topic_level(v)))


class SparkplugBinding(BaseModel):
    """A signal's Sparkplug metric: group / edge node / device (none: a node metric) / metric name."""

    model_config = ConfigDict(extra="forbid")

    source: str
    group: str
    edge_node: str
    device: str | None = None
    metric: str = Field(min_length=1)

    _levels_valid = field_validator("group", "edge_node", "device")(
        classmethod(lambda cls, v: v if v is None else _topic_level(v))
    )
