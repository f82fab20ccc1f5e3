"""The plant file's ``auth:`` section."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens_file: Path | None = Field(
        default=None,
        description="hash lines name:role:sha256hex (kilnwatch token create); relative to the plant file",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header values accepted besides localhost, 127.0.0.1, [::1] and the bind "
        "address (e.g. the name the control room uses; '*.example.com' patterns)",
    )
    cookie_max_age_days: float = Field(
        default=30.0, gt=0, le=400, description="how long the page stays signed in [days]"
    )
