"""The plant file's reduction targets, and the companies and fleet they may belong to."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .config_base import Strict


class BaselineConfig(Strict):
    year: int = Field(ge=1990, le=2100)
    value: float | None = Field(
        default=None, ge=0, description="default: the KPI of that year, from the store"
    )


class MilestoneConfig(Strict):
    year: int = Field(ge=1990, le=2100)
    value: float | None = Field(default=None, ge=0, description="the KPI's value in that year")
    reduction_pct: float | None = Field(
        default=None, ge=0, le=100, description="from the baseline; 100: zero"
    )

    @model_validator(mode="after")
    def _one_of(self) -> MilestoneConfig:
        if (self.value is None) == (self.reduction_pct is None):
            raise ValueError(f"milestone {self.year}: give value or reduction_pct, not both or neither")
        return self


class TargetConfig(Strict):
    """A reduction target on one KPI (README "Fleet KPIs and targets"; analytics.targets)."""

    kpi: Literal[
        "gross_co2_kg_per_t_clinker",
        "net_co2_kg_per_t_clinker",
        "net_co2_kg_per_t_cementitious",
        "thermal_energy_mj_per_t_clinker",
    ] = "gross_co2_kg_per_t_clinker"
    baseline: BaselineConfig
    milestones: list[MilestoneConfig] = Field(min_length=1)
    shape: Literal["linear", "stepwise"] = "linear"

    @model_validator(mode="after")
    def _after_baseline(self) -> TargetConfig:
        years = [m.year for m in self.milestones]
        if len(set(years)) != len(years):
            raise ValueError(f"milestone years repeat: {years}")
        if min(years) <= self.baseline.year:
            raise ValueError(f"milestones must come after the baseline year {self.baseline.year}")
        return self


class CompanyConfig(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    name: str = ""
    target: TargetConfig | None = None


class FleetConfig(Strict):
    name: str = "fleet"
    target: TargetConfig | None = None
