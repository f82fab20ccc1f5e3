"""Settings of the alarm lifecycle (ISA-18.2) and its notifications; part of the plant file's ``alarms``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: Kiln alarms that mean nothing while the kiln is stopped: suppressed by design then.
SUPPRESSED_WHEN_STOPPED = ("fault", "calibration", "maintenance", "intensity", "co2", "completeness", "stale")


class LifecycleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suppress_when_stopped: list[str] = Field(
        default_factory=lambda: list(SUPPRESSED_WHEN_STOPPED),
        description="alarm kinds suppressed by design while their kiln is not operating",
    )
    max_shelve_s: float = Field(
        default=12 * 3600.0, gt=0, description="longest shelve an operator may set [s]"
    )
    positions: dict[str, list[str]] = Field(
        default_factory=dict,
        description="operator positions (consoles) by name: the kiln ids each one handles; none: one "
        "position 'control-room' for all. Alarms of no kiln or an unlisted one count for the first.",
    )
    stale_alarm_after_s: float = Field(
        default=86_400.0, gt=0, description="an alarm active for longer is a stale alarm (ISA-18.2) [s]"
    )
    chatter_count: int = Field(
        default=3, ge=2, description="raised this often within chatter_window_s: chattering"
    )
    chatter_window_s: float = Field(default=60.0, gt=0, description="[s]")
    flood_per_10min: int = Field(
        default=10, ge=1, description="more alarms than this in 10 minutes at one position: a flood period"
    )
    restore_grace_s: float | None = Field(
        default=None,
        ge=0,
        description="after a restart, alarms that were active are kept this long while the watch "
        "re-evaluates them [s]; default: stale_after_s + source_grace_s + 5 s",
    )


class NotifySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    webhook_url: str | None = Field(
        default=None, description="receives each alarm transition in Alertmanager's webhook JSON (version 4)"
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="[s]")
    external_url: str = Field(default="", description="this kilnwatch's address, for links in messages")
    retry_min_s: float = Field(default=1.0, gt=0, description="first wait after a failed delivery [s]")
    retry_max_s: float = Field(
        default=60.0, gt=0, description="the wait doubles after each failure up to this [s]"
    )
    smtp_host: str | None = Field(default=None, description="send each transition by e-mail too")
    smtp_port: int = Field(default=25, gt=0, lt=65536)
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password_env: str | None = Field(
        default=None, description="name of the environment variable holding the SMTP password"
    )
    mail_from: str = "kilnwatch@localhost"
    mail_to: list[str] = Field(default_factory=list)
