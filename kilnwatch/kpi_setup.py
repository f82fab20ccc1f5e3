"""From the plant file to the KPI report's setup (analytics.kpi.KpiSetup): grouping, fuels, targets."""

from __future__ import annotations

from analytics.kpi import Grouping, KpiFuel, KpiSetup
from analytics.targets import Milestone, TargetSpec

from .config import PlantFile
from .config_targets import TargetConfig


def kpi_setup(plant: PlantFile) -> KpiSetup:
    names: dict[str, str] = {plant.fleet.name: plant.fleet.name}
    names.update({c.id: c.name or c.id for c in plant.companies})
    names.update({p.id: p.name or p.id for p in plant.plants})
    names.update({k.id: k.name or k.id for _, k in plant.kilns()})
    grouping = Grouping(
        plant_of={k.id: p.id for p, k in plant.kilns()},
        company_of={p.id: p.company or p.id for p in plant.plants},
        fleet=plant.fleet.name,
        names=names,
    )
    fuels = {
        k.id: tuple(
            KpiFuel(
                f.signal,
                f.name,
                f.fuel_class,
                f.ncv_gj_per_t,
                f.ef_t_per_tj,
                f.oxidation_factor,
                f.biomass_fraction or 0.0,
            )
            for f in k.accounting.fuels
        )
        for _, k in plant.kilns()
    }
    targets: dict[tuple[str, str], TargetSpec] = {}
    for p in plant.plants:
        if p.target is not None:
            targets["plant", p.id] = target_spec(p.target)
    for c in plant.companies:
        if c.target is not None:
            targets["company", c.id] = target_spec(c.target)
    if plant.fleet.target is not None:
        targets["fleet", plant.fleet.name] = target_spec(plant.fleet.target)
    rates = {p.id: p.cementitious_t_per_h for p in plant.plants if p.cementitious_t_per_h is not None}
    return KpiSetup(grouping, fuels, rates, targets)


def target_spec(t: TargetConfig) -> TargetSpec:
    return TargetSpec(
        t.kpi,
        t.baseline.year,
        t.baseline.value,
        tuple(Milestone(m.year, m.value, m.reduction_pct) for m in t.milestones),
        t.shape,
    )
