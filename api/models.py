"""Response models: field names here are a contract that downstream tools rely on."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class KilnSummary(BaseModel):
    id: str
    name: str
    plant: str


class SignalValue(BaseModel):
    value: float | None
    unit: str
    quality: str | None = Field(description="good, uncertain, bad, maintenance, calibration, fault, ...")
    time: str | None = Field(description="source time of the value, ISO 8601 UTC")


class LiveResponse(BaseModel):
    kiln: str
    time: str | None = Field(default=None, description="start of the newest closed minute, ISO 8601 UTC")
    co2_t_per_h: float | None = None
    clinker_t_per_h: float | None = None
    intensity_kg_per_t: float | None = None
    valid: bool = False
    age_s: float | None = Field(default=None, description="seconds since the end of that minute")
    signals: dict[str, SignalValue] = Field(default_factory=dict)
    method: dict[str, Any] = Field(default_factory=dict)


class HourlyRow(BaseModel):
    hour: str = Field(description="start of the hour, ISO 8601 UTC")
    co2_t: float | None
    clinker_t: float | None
    intensity_kg_per_t: float | None
    valid: bool
    completeness: float
    revision: int = 0
