"""Settings of the control-room page, its alarms and live stream; the wiring passes them via ApiContext."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from analytics import plant_time

from .alarm_settings import LifecycleSettings, NotifySettings


class KilnThresholds(BaseModel):
    """Upper limits for one kiln; ``None`` disables the check."""

    model_config = ConfigDict(extra="forbid")

    intensity_kg_per_t: float | None = Field(default=None, gt=0, description="[kg CO2/t clinker]")
    co2_t_per_h: float | None = Field(default=None, gt=0, description="[t CO2/h]")


class AlarmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stale_after_s: float = Field(
        default=180.0, gt=0, description="no new valid minute for this wall-clock time raises 'stale' [s]"
    )
    catch_up_lag_s: float = Field(
        default=300.0,
        gt=0,
        description="newest minute lagging the wall clock by more than this: 'catching up' [s]",
    )
    source_grace_s: float = Field(
        default=5.0, ge=0, description="a source must stay disconnected this long before it alarms [s]"
    )
    completeness_min: float = Field(
        default=0.8, ge=0, le=1, description="an hour with less completeness alarms [fraction]"
    )
    hysteresis: float = Field(
        default=0.02, ge=0, lt=1, description="a threshold alarm clears below limit × (1 − hysteresis)"
    )
    default_thresholds: KilnThresholds = Field(default_factory=KilnThresholds)
    thresholds: dict[str, KilnThresholds] = Field(default_factory=dict, description="per kiln id")
    keep_cleared: int = Field(default=200, ge=0, description="cleared alarms kept for the alarm list")
    evaluate_every_s: float = Field(default=1.0, gt=0, description="[s]")
    hours_every_s: float = Field(default=10.0, gt=0, description="re-read the newest closed hours [s]")
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)

    def limits(self, kiln: str) -> KilnThresholds:
        return self.thresholds.get(kiln, self.default_thresholds)


class StreamSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ping_s: float = Field(default=15.0, gt=0, description="keep-alive comment interval [s]")
    retry_ms: int = Field(default=2000, gt=0, description="browser reconnect delay after a break [ms]")
    min_interval_s: float = Field(
        default=0.2, ge=0, description="at most one minute event per kiln in this time; newest wins [s]"
    )


class PageSettings(BaseModel):
    """What the page receives from ``GET /api/v1/page``."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(
        default="UTC",
        description="the plant's time zone (IANA name), in which the page shows times; in the plant file "
        "it is the first plant's `timezone` (`page.timezone` there is a deprecated alias of it)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        plant_time.zone(value)
        return value
