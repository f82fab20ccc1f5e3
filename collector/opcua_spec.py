"""Typed settings of the OPC UA collector, as they appear in the plant file."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

_NODE_RE = re.compile(r"^nsu=[^;]+;[sig]=.+$")


class OpcUaServerSpec(BaseModel):
    """One OPC UA server and how kilnwatch subscribes to it."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^opc\.tcp://")
    security_policy: Literal["None", "Basic256Sha256"] = "None"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: str | None = None
    private_key: str | None = None
    username: str | None = None
    password: SecretStr | None = None
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

    @model_validator(mode="after")
    def _security_is_consistent(self) -> OpcUaServerSpec:
        if (self.security_policy == "None") != (self.security_mode == "None"):
            raise ValueError("security_policy and security_mode must both be 'None' or both be set")
        if self.security_policy != "None" and not (self.certificate and self.private_key):
            raise ValueError(f"security_policy {self.security_policy} needs certificate and private_key")
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
