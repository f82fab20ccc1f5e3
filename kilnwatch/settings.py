"""Service settings from the environment (KILNWATCH_*) or a .env file; secrets stay SecretStr."""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_data_dir
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KILNWATCH_", env_file=".env", extra="ignore")

    instance_id: str = Field(default="kw1", pattern=r"^[A-Za-z0-9_\-]+$")
    data_dir: Path = Field(default_factory=lambda: Path(user_data_dir("kilnwatch")))
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "INFO"
    queue_batches: int = Field(default=256, ge=1, description="pipeline queue size, in batches")

    influx_url: str | None = None
    influx_token: SecretStr | None = None
    influx_org: str = "kilnwatch"
    influx_bucket: str = "kilnwatch"

    @property
    def store_path(self) -> Path:
        return self.data_dir / f"kilnwatch-{self.instance_id}.sqlite3"
