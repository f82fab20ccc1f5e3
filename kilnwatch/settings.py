"""Service settings from the environment (KILNWATCH_*) or a .env file; secrets stay SecretStr."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from collector.secret_values import is_placeholder, resolve_secret

#: Name of the InfluxDB token's credential (systemd LoadCredential=influx-token:...).
INFLUX_TOKEN_CREDENTIAL = "influx-token"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KILNWATCH_", env_file=".env", extra="ignore")

    instance_id: str = Field(default="kw1", pattern=r"^[A-Za-z0-9_\-]+$")
    data_dir: Path = Field(default_factory=lambda: Path(user_data_dir("kilnwatch")))
    data_group_readable: bool = Field(
        default=False,
        description="data directory 0750 and store files 0640 (the group may read) instead of 0700/0600",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "INFO"
    queue_batches: int = Field(default=256, ge=1, description="pipeline queue size, in batches")
    api_tokens: str | None = Field(
        default=None, description="API token hash lines name:role:sha256hex, by newline, comma or space"
    )
    allowed_hosts: str = Field(default="", description="Host header values accepted, comma-separated")
    insecure_no_auth: bool = Field(default=False, description="serve a non-loopback address without tokens")
    tls_cert: Path | None = Field(default=None, description="serve HTTPS with this certificate (PEM)")
    tls_key: Path | None = Field(default=None, description="... and this private key (PEM)")
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop", description="uvloop (faster API, fewer CPU per request) or the stdlib loop"
    )

    influx_url: str | None = None
    influx_token: SecretStr | None = None
    influx_token_file: Path | None = Field(
        default=None,
        description="file holding the token; default: $CREDENTIALS_DIRECTORY/influx-token if it exists",
    )
    influx_org: str = "kilnwatch"
    influx_bucket: str = "kilnwatch"
    influx_timeout_s: float = Field(default=30.0, gt=0, description="one write request [s]")
    influx_gzip: bool = False
    influx_batch_points: int = Field(default=5000, ge=1, description="points per write request")
    influx_in_flight: int = Field(default=4, ge=1, le=64, description="write requests in flight")
    influx_retry_cap_s: float = Field(default=60.0, gt=0, description="longest pause between retries [s]")

    outbox_max_bytes: int = Field(default=2 * 1024**3, ge=1, description="outbox budget [bytes]")
    outbox_max_age_h: float = Field(default=72.0, gt=0, description="outbox budget: oldest row's age [h]")
    outbox_warn_fraction: float = Field(default=0.8, gt=0, lt=1, description="warn at this use of budget")

    retention_raw_days: float = Field(default=7.0, gt=0, description="raw readings kept locally [days]")
    retention_minute_days: float = Field(
        default=366.0, gt=0, description="minute aggregates and conflict records kept [days]"
    )
    retention_dead_letter_days: float = Field(default=30.0, gt=0, description="dead letters kept [days]")
    dead_letter_max_bytes: int = Field(
        default=64 * 1024**2, ge=0, description="dead-letter budget [bytes]; the oldest go first"
    )

    @field_validator("influx_url", "influx_token", "influx_org", "influx_bucket")
    @classmethod
    def _not_a_placeholder(cls, value: str | SecretStr | None) -> str | SecretStr | None:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text is not None and is_placeholder(text):
            raise ValueError(
                "still the sample file's placeholder; set the real value "
                "(KILNWATCH_INFLUX_URL, _TOKEN, _ORG, _BUCKET in the environment or the env file)"
            )
        return value

    @model_validator(mode="after")
    def _token_from_file(self) -> Settings:
        """The token from ``influx_token_file``, else from systemd's credential when there is one."""
        file = self.influx_token_file
        credentials = os.environ.get("CREDENTIALS_DIRECTORY")
        if file is None and self.influx_token is None and credentials:
            candidate = Path(credentials) / INFLUX_TOKEN_CREDENTIAL
            file = candidate if candidate.is_file() and candidate.stat().st_size else None
        if file is not None:
            self.influx_token = resolve_secret("influx_token", self.influx_token, str(file), None)
        if self.influx_url and self.influx_token is None:
            raise ValueError(
                "KILNWATCH_INFLUX_URL is set but there is no token: set KILNWATCH_INFLUX_TOKEN, "
                f"KILNWATCH_INFLUX_TOKEN_FILE or the systemd credential {INFLUX_TOKEN_CREDENTIAL}"
            )
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both a certificate and its key (KILNWATCH_TLS_CERT and _KEY)")
        return self

    @property
    def allowed_hosts_list(self) -> list[str]:
        return [h.strip() for h in self.allowed_hosts.split(",") if h.strip()]

    @property
    def store_path(self) -> Path:
        return self.data_dir / f"kilnwatch-{self.instance_id}.sqlite3"
