"""Fleet KPIs in the shape of the GCCA Cement CO2 and Energy Protocol / "Getting the Numbers Right".

Pure numpy, no I/O. :func:`kpi_report` takes the stored hours of each kiln, the grouping of kilns
into plants, companies and a fleet, the kilns' fuels (with their class) and the report's periods,
and returns one row per entity and period. Every KPI is made from sums over hours, so a plant is the
sum of its kilns, a company the sum of its plants and the fleet the sum of everything; ratios are
sum / sum over the same hours, never means of ratios. :data:`KPI_FIELDS` names each column, its unit,
its definition and the hour count it rests on (the ``method`` block and the README table).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from .aggregates import HourAggregate
from .hours import HOUR_NS
from .plant_time import PlantClock
from .targets import TargetSpec, Trajectory, assess

Level = Literal["kiln", "plant", "company", "fleet"]
LEVELS: Final = ("kiln", "plant", "company", "fleet")
PeriodKind = Literal["month", "year", "range"]
FuelClass = Literal["conventional_fossil", "alternative_fossil", "biomass", "mixed"]
FUEL_CLASSES: Final = ("conventional_fossil", "alternative_fossil", "biomass", "mixed")
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class KpiFuel:
    """A kiln fuel: its rate signal [t/h], class, NCV [GJ/t], EF [t CO2/TJ] of all its carbon, oxidation.

    ``biomass_fraction`` is the biomass share of a mixed fuel's carbon and energy (1 for biomass,
    0 for the fossil classes, whatever is given).
    """

    signal: str
    name: str
    fuel_class: FuelClass = "conventional_fossil"
    ncv_gj_per_t: float = 0.0
    ef_t_per_tj: float = 0.0
    oxidation_factor: float = 1.0
    biomass_fraction: float = 0.0

    @property
    def biomass_share(self) -> float:
        if self.fuel_class == "biomass":
            return 1.0
        return self.biomass_fraction if self.fuel_class == "mixed" else 0.0

    @property
    def alternative(self) -> bool:
        """Not a conventional fossil fuel: counts in the alternative fuel rate."""
        return self.fuel_class != "conventional_fossil"


@dataclass(frozen=True, slots=True)
class Grouping:
    """Kiln -> plant -> company -> fleet; ``names``: display names by id (any level)."""

    plant_of: Mapping[str, str]
    company_of: Mapping[str, str] = field(default_factory=dict)  # plant -> company (default: the plant)
    fleet: str = "fleet"
    names: Mapping[str, str] = field(default_factory=dict)

    def entity(self, kiln: str, level: str) -> str:
        if level == "kiln":
            return kiln
        plant = self.plant_of[kiln]
        if level == "plant":
            return plant
        return self.company_of.get(plant, plant) if level == "company" else self.fleet

    def plants_in(self, level: str, entity: str) -> list[str]:
        plants = sorted(set(self.plant_of.values()))
        if level == "plant":
            return [entity]
        if level == "company":
            return [p for p in plants if self.company_of.get(p, p) == entity]
        return plants if level == "fleet" else []


class Periods(NamedTuple):
    """Consecutive periods: ``labels[i]`` is [bounds[i], bounds[i + 1]) [ns]; ``years[i]`` its year."""

    kind: str
    labels: tuple[str, ...]
    bounds: npt.NDArray[np.int64]
    years: tuple[int, ...]


def periods(clock: PlantClock, kind: PeriodKind, first: date, last: date) -> Periods:
    """The local months or years of ``clock`` holding ``first`` .. ``last``; ``range``: one period
    [first, last] of whole local days."""
    if kind == "month":
        b = clock.month_bounds(first, last)
        ms = [divmod(first.year * 12 + first.month - 1 + i, 12) for i in range(len(b) - 1)]
        return Periods(kind, tuple(f"{y:04d}-{m + 1:02d}" for y, m in ms), b, tuple(y for y, _ in ms))
    if kind == "year":
        ys = list(range(first.year, last.year + 1))
        b = np.array([clock.midnight_ns(date(y, 1, 1)) for y in [*ys, ys[-1] + 1]], dtype=np.int64)
        return Periods(kind, tuple(str(y) for y in ys), b, tuple(ys))
    b = clock.day_bounds(first, last)[[0, -1]]
    return Periods(kind, (f"{first.isoformat()}/{last.isoformat()}",), b, (first.year,))


class Kpi(NamedTuple):
    name: str
    unit: str
    definition: str
    hours: str  # the row's hour count this KPI rests on


#: Columns of a KPI row after the entity and period columns, in order.
KPI_FIELDS: Final[tuple[Kpi, ...]] = (
    Kpi("clinker_t", "t", "clinker produced: sum of the hourly clinker", "n_hours_clinker"),
    Kpi("co2_cems_t", "t", "CO2 measured by the CEMS (reported hourly CO2: substitutes and, under "
        "eu_mrr, CO as CO2 included; biogenic CO2 included)", "n_hours_co2"),
    Kpi("co2_calculated_t", "t", "CO2 calculated by the mass balance of the cross-check: calcination "
        "+ kiln fuels + raw-meal TOC", "n_hours_calculated"),
    Kpi("deviation_pct", "%", "(CEMS - calculated) / calculated x 100 over the hours with both",
        "n_hours_compared"),
    Kpi("calcination_co2_t", "t", "CO2 from calcination: clinker x clinker EF (cross-check)",
        "n_hours_calculated"),
    Kpi("fuel_co2_t", "t", "fossil CO2 from kiln fuels: rate x NCV x EF x OF x (1 - biomass share), "
        "conventional and alternative fossil", "n_hours_fuels"),
    Kpi("alternative_fossil_co2_t", "t", "fossil CO2 of alternative fossil fuels and of the fossil part "
        "of mixed fuels", "n_hours_fuels"),
    Kpi("biogenic_co2_t", "t", "biomass CO2 of biomass fuels and of the biomass part of mixed fuels "
        "(memo item, not in gross CO2)", "n_hours_fuels"),
    Kpi("gross_co2_t", "t", "gross CO2 (protocol): per hour, CEMS CO2 - biogenic CO2 of the fuels whose "
        "rate is known in that hour", "n_hours_co2"),
    Kpi("gross_co2_kg_per_t_clinker", "kg/t", "gross CO2 / clinker over the hours with both",
        "n_hours_intensity"),
    Kpi("net_co2_t", "t", "net CO2 (protocol): per hour, gross CO2 - CO2 of the alternative fossil fuels "
        "whose rate is known in that hour", "n_hours_co2"),
    Kpi("net_co2_kg_per_t_clinker", "kg/t", "net CO2 / clinker over the hours with both",
        "n_hours_intensity"),
    Kpi("thermal_energy_gj", "GJ", "kiln fuel energy: sum of rate x NCV", "n_hours_fuels"),
    Kpi("thermal_energy_mj_per_t_clinker", "MJ/t", "thermal energy / clinker over the hours with every "
        "fuel rate known", "n_hours_fuels"),
    Kpi("alternative_fuel_rate_pct", "%", "energy of alternative fossil, biomass and mixed fuels / "
        "thermal energy x 100", "n_hours_fuels"),
    Kpi("biomass_share_pct", "%", "energy of biomass fuels and of the biomass part of mixed fuels / "
        "thermal energy x 100", "n_hours_fuels"),
    Kpi("cementitious_t", "t", "cementitious product (plant file or manual data; plants only)",
        "n_hours_expected"),
    Kpi("gross_co2_kg_per_t_cementitious", "kg/t", "gross CO2 / cementitious product", "n_hours_co2"),
    Kpi("net_co2_kg_per_t_cementitious", "kg/t", "net CO2 / cementitious product", "n_hours_co2"),
    Kpi("data_completeness_pct", "%", "hours with a reported CO2 value / hours in the period x 100",
        "n_hours_expected"),
    Kpi("valid_hours_pct", "%", "hours valid without substitution / hours in the period x 100",
        "n_hours_expected"),
    Kpi("substituted_hours_pct", "%", "hours whose CO2 rests on a substitute / hours with a reported "
        "CO2 value x 100", "n_hours_co2"),
)  # fmt: skip

#: Hour counts of a row: what each KPI rests on.
HOUR_FIELDS: Final = (
    ("n_hours_expected", "hours in the period x kilns"),
    ("n_hours", "hours stored"),
    ("n_hours_valid", "hours valid without substitution"),
    ("n_hours_substituted", "hours whose CO2 rests on a substitute"),
    ("n_hours_co2", "hours with a reported CO2 value"),
    ("n_hours_clinker", "hours with a clinker value"),
    ("n_hours_intensity", "hours with both CO2 and clinker"),
    ("n_hours_calculated", "hours with a mass-balance total"),
    ("n_hours_compared", "hours with both CEMS and mass-balance CO2"),
    ("n_hours_fuels", "hours with every fuel rate known (none without configured fuels)"),
)
#: Target columns (plants, companies and the fleet that have a target).
TARGET_FIELDS: Final = (
    ("target_kpi", "", "the KPI the target is set on"),
    ("target_baseline_year", "", "baseline year"),
    ("target_baseline_value", "kg/t", "baseline value"),
    ("target_value", "kg/t", "the trajectory's value in the period's year"),
    ("target_on_track", "", "actual <= trajectory"),
    ("target_gap", "kg/t", "actual - trajectory (positive: above the path)"),
    ("target_final_year", "", "year of the last milestone"),
    ("target_final_value", "kg/t", "value of the last milestone"),
    ("reduction_needed_kg_per_t_per_year", "kg/t/yr", "(actual - final) / years left, 0 when at or below"),
    ("reduction_needed_pct_per_year", "%/yr", "reduction_needed_kg_per_t_per_year / actual x 100"),
)
HEAD_FIELDS: Final = ("level", "id", "name", "period", "start", "end")
COLUMNS: Final[tuple[str, ...]] = (
    *HEAD_FIELDS,
    *(k.name for k in KPI_FIELDS),
    *(h for h, _ in HOUR_FIELDS),
    *(t for t, _, _ in TARGET_FIELDS),
)

# Additive sums per kiln and period: every KPI of any level is made from these.
_SUMS: Final = (
    "n_hours_expected", "n_hours", "n_hours_valid", "n_hours_substituted", "n_hours_co2",
    "n_hours_clinker", "n_hours_intensity", "n_hours_calculated", "n_hours_compared", "n_hours_fuels",
    "clinker_t", "co2_cems_t", "co2_calculated_t", "calcination_co2_t", "cems_compared_t",
    "calculated_compared_t", "gross_co2_t", "net_co2_t", "gross_intensity_t", "net_intensity_t",
    "clinker_intensity_t", "fuel_co2_t", "alternative_fossil_co2_t", "biogenic_co2_t",
    "thermal_energy_gj", "energy_alternative_gj", "energy_biomass_gj", "clinker_fuels_t",
)  # fmt: skip
_I: Final = {name: i for i, name in enumerate(_SUMS)}
#: The names of :func:`kiln_sums`' columns, in order.
SUM_FIELDS: Final[tuple[str, ...]] = _SUMS


def _num(x: float | None) -> float:
    return np.nan if x is None else x


def kiln_sums(
    hours: Sequence[HourAggregate], fuels: Sequence[KpiFuel], bounds: npt.NDArray[np.int64]
) -> FloatArray:
    """The additive sums of one kiln per period of ``bounds``: shape (periods, sums)."""
    n = len(bounds) - 1
    out = np.zeros((n, len(_SUMS)))
    out[:, _I["n_hours_expected"]] = np.diff(bounds) / HOUR_NS
    if not hours:
        return out
    start = np.fromiter((h.start_ns for h in hours), dtype=np.int64, count=len(hours))
    idx = np.searchsorted(bounds, start, side="right") - 1
    keep = (idx >= 0) & (idx < n)
    co2 = np.array([_num(h.co2_t) for h in hours])
    clinker = np.array([_num(h.clinker_t) for h in hours])
    calc = np.array([_num(h.calculated.total_t) for h in hours])
    calcination = np.array([_num(h.calculated.calcination_t) for h in hours])
    valid = np.array([h.valid for h in hours])
    substituted = np.array([h.co2_t_substituted for h in hours])
    rates = np.array(
        [[_num(p.mean) if (p := h.params.get(f.signal)) else np.nan for f in fuels] for h in hours]
    ).reshape(len(hours), len(fuels))
    ncv = np.array([f.ncv_gj_per_t for f in fuels])
    ef_of = np.array([f.ef_t_per_tj * f.oxidation_factor for f in fuels])
    bio = np.array([f.biomass_share for f in fuels])
    alt = np.array([f.alternative for f in fuels])
    energy = rates * ncv  # [GJ] per fuel in the hour (rate [t/h] x 1 h)
    co2_f = energy * ef_of / 1000.0
    fossil_f = co2_f * (1.0 - bio)
    fuels_known = np.isfinite(rates).all(axis=1) if fuels else np.zeros(len(hours), dtype=bool)
    biogenic = np.nansum(co2_f * bio, axis=1)  # a missing rate adds nothing
    alt_fossil = np.nansum(fossil_f * alt, axis=1)
    has_co2, has_clinker, has_calc = np.isfinite(co2), np.isfinite(clinker), np.isfinite(calc)
    both = has_co2 & has_clinker
    compared = has_co2 & has_calc
    gross = co2 - biogenic
    net = gross - alt_fossil

    def known(x: FloatArray, m: npt.NDArray[np.bool_]) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        return np.where(m, x, 0.0), m & keep

    columns: dict[str, tuple[FloatArray, npt.NDArray[np.bool_]]] = {
        "n_hours": known(np.ones(len(hours)), np.ones(len(hours), dtype=bool)),
        "n_hours_valid": known(np.ones(len(hours)), valid),
        "n_hours_substituted": known(np.ones(len(hours)), substituted & has_co2),
        "n_hours_co2": known(np.ones(len(hours)), has_co2),
        "n_hours_clinker": known(np.ones(len(hours)), has_clinker),
        "n_hours_intensity": known(np.ones(len(hours)), both),
        "n_hours_calculated": known(np.ones(len(hours)), has_calc),
        "n_hours_compared": known(np.ones(len(hours)), compared),
        "n_hours_fuels": known(np.ones(len(hours)), fuels_known),
        "clinker_t": known(clinker, has_clinker),
        "co2_cems_t": known(co2, has_co2),
        "co2_calculated_t": known(calc, has_calc),
        "calcination_co2_t": known(calcination, np.isfinite(calcination)),
        "cems_compared_t": known(co2, compared),
        "calculated_compared_t": known(calc, compared),
        "gross_co2_t": known(gross, has_co2),
        "net_co2_t": known(net, has_co2),
        "gross_intensity_t": known(gross, both),
        "net_intensity_t": known(net, both),
        "clinker_intensity_t": known(clinker, both),
        "fuel_co2_t": known(fossil_f.sum(axis=1), fuels_known),
        "alternative_fossil_co2_t": known(alt_fossil, fuels_known),
        "biogenic_co2_t": known(biogenic, fuels_known),
        "thermal_energy_gj": known(energy.sum(axis=1), fuels_known),
        "energy_alternative_gj": known((energy * alt).sum(axis=1), fuels_known),
        "energy_biomass_gj": known((energy * bio).sum(axis=1), fuels_known),
        "clinker_fuels_t": known(clinker, fuels_known & has_clinker),
    }
    for name, (values, mask) in columns.items():
        out[:, _I[name]] = np.bincount(idx[mask], weights=values[mask], minlength=n)[:n]
    return out


def _ratio(num: FloatArray, den: FloatArray, scale: float = 1.0) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0) * scale, np.nan)


def kpis_from_sums(s: FloatArray, cementitious_t: FloatArray | None = None) -> dict[str, FloatArray]:
    """Every KPI and hour count per period from summed :func:`kiln_sums` (NaN: not computable)."""

    def c(name: str) -> FloatArray:
        return s[:, _I[name]]

    cem = np.full(len(s), np.nan) if cementitious_t is None else np.asarray(cementitious_t, dtype=float)
    cems, calc = c("cems_compared_t"), c("calculated_compared_t")
    out = {
        "clinker_t": c("clinker_t"),
        "co2_cems_t": c("co2_cems_t"),
        "co2_calculated_t": c("co2_calculated_t"),
        "deviation_pct": _ratio(cems - calc, calc, 100),
        "calcination_co2_t": c("calcination_co2_t"),
        "fuel_co2_t": c("fuel_co2_t"),
        "alternative_fossil_co2_t": c("alternative_fossil_co2_t"),
        "biogenic_co2_t": c("biogenic_co2_t"),
        "gross_co2_t": c("gross_co2_t"),
        "gross_co2_kg_per_t_clinker": _ratio(c("gross_intensity_t"), c("clinker_intensity_t"), 1000),
        "net_co2_t": c("net_co2_t"),
        "net_co2_kg_per_t_clinker": _ratio(c("net_intensity_t"), c("clinker_intensity_t"), 1000),
        "thermal_energy_gj": c("thermal_energy_gj"),
        "thermal_energy_mj_per_t_clinker": _ratio(c("thermal_energy_gj"), c("clinker_fuels_t"), 1000),
        "alternative_fuel_rate_pct": _ratio(c("energy_alternative_gj"), c("thermal_energy_gj"), 100),
        "biomass_share_pct": _ratio(c("energy_biomass_gj"), c("thermal_energy_gj"), 100),
        "cementitious_t": cem,
        "gross_co2_kg_per_t_cementitious": _ratio(c("gross_co2_t"), cem, 1000),
        "net_co2_kg_per_t_cementitious": _ratio(c("net_co2_t"), cem, 1000),
        "data_completeness_pct": _ratio(c("n_hours_co2"), c("n_hours_expected"), 100),
        "valid_hours_pct": _ratio(c("n_hours_valid"), c("n_hours_expected"), 100),
        "substituted_hours_pct": _ratio(c("n_hours_substituted"), c("n_hours_co2"), 100),
    }  # fmt: skip
    for name, _ in HOUR_FIELDS:
        out[name] = c(name)
    return out


def _value(x: Any) -> Any:
    if isinstance(x, float | np.floating):
        return float(x) if np.isfinite(x) else None
    return x


def kpi_report(
    rows_by_kiln: Mapping[str, Sequence[HourAggregate]],
    grouping: Grouping,
    fuels: Mapping[str, Sequence[KpiFuel]],
    period: Periods,
    level: Level = "kiln",
    cementitious_t: Mapping[str, Sequence[float]] | None = None,
    targets: Mapping[tuple[str, str], Trajectory] | None = None,
    iso: Any = None,
) -> list[dict[str, Any]]:
    """One row per entity of ``level`` and period, entities in id order, periods in time order.

    ``rows_by_kiln``: each kiln's stored hours (any order, any range: those outside ``period`` are
    left out); ``fuels``: by kiln; ``cementitious_t``: by plant, one value per period [t] (manual data
    or a plant-file rate), summed for companies and the fleet only when every plant of it has one;
    ``targets``: by (level, id); ``iso``: ns -> text for ``start``/``end`` (default: the ns).
    """
    sums_by_kiln = {k: kiln_sums(rows_by_kiln[k], fuels.get(k, ()), period.bounds) for k in rows_by_kiln}
    return report_from_sums(sums_by_kiln, grouping, period, level, cementitious_t, targets, iso)


def report_from_sums(
    sums_by_kiln: Mapping[str, FloatArray],
    grouping: Grouping,
    period: Periods,
    level: Level = "kiln",
    cementitious_t: Mapping[str, Sequence[float]] | None = None,
    targets: Mapping[tuple[str, str], Trajectory] | None = None,
    iso: Any = None,
) -> list[dict[str, Any]]:
    """:func:`kpi_report` from each kiln's :func:`kiln_sums` over ``period`` (the roll-up of every
    level: the kilns' sums, added per entity). The sums may come from other processes (``kilnwatch
    fleet --from-instances``): the result is the same as from the hours in one process."""
    n = len(period.labels)
    sums: dict[str, FloatArray] = {}
    for kiln in sorted(sums_by_kiln):
        key = grouping.entity(kiln, level)
        part = np.asarray(sums_by_kiln[kiln], dtype=float)
        sums[key] = sums[key] + part if key in sums else part
    cem_by_plant = {p: np.asarray(v, dtype=float) for p, v in (cementitious_t or {}).items()}
    out: list[dict[str, Any]] = []
    for key in sorted(sums):
        cem = None
        if level != "kiln":
            plants = grouping.plants_in(level, key)
            if plants and all(p in cem_by_plant for p in plants):
                cem = np.sum([cem_by_plant[p] for p in plants], axis=0)
        k = kpis_from_sums(sums[key], cem)
        target = (targets or {}).get((level, key))
        for i in range(n):
            row: dict[str, Any] = {
                "level": level,
                "id": key,
                "name": grouping.names.get(key, key),
                "period": period.labels[i],
                "start": iso(int(period.bounds[i])) if iso else int(period.bounds[i]),
                "end": iso(int(period.bounds[i + 1])) if iso else int(period.bounds[i + 1]),
            }
            for name, values in k.items():
                v = values[i]
                row[name] = int(v) if name.startswith("n_hours") else _value(v)
            row.update(_target_columns(target, period.years[i], row))
            out.append(row)
    return out


def _target_columns(target: Trajectory | None, year: int, row: dict[str, Any]) -> dict[str, Any]:
    cols: dict[str, Any] = dict.fromkeys(t for t, _, _ in TARGET_FIELDS)
    if target is None:
        return cols
    a = assess(target, year, row.get(target.kpi))
    cols.update(
        target_kpi=target.kpi,
        target_baseline_year=target.baseline_year,
        target_baseline_value=target.baseline_value,
        target_value=a.target,
        target_on_track=a.on_track,
        target_gap=a.gap,
        target_final_year=target.final_year,
        target_final_value=target.final_value,
        reduction_needed_kg_per_t_per_year=a.reduction_per_year,
        reduction_needed_pct_per_year=a.reduction_pct_per_year,
    )
    return cols


def method() -> dict[str, Any]:
    """The KPI definitions for the ``method`` block."""
    return {
        "kpis": [
            {"name": k.name, "unit": k.unit, "definition": k.definition, "hours": k.hours} for k in KPI_FIELDS
        ],
        "hours": dict(HOUR_FIELDS),
        "targets": {t: d for t, _, d in TARGET_FIELDS},
        "sums": "every level is the sum of its kilns' hourly sums; ratios are sum / sum over the hours "
        "named in 'hours', never means of ratios",
        "fuel_classes": {
            "conventional_fossil": "fossil CO2, not alternative",
            "alternative_fossil": "fossil CO2, alternative; its CO2 is taken off gross for net CO2",
            "biomass": "biogenic CO2 (memo item), alternative and biomass energy",
            "mixed": "biomass_fraction of its carbon and energy is biomass, the rest alternative fossil",
        },
        "gross_co2": "GCCA Cement CO2 and Energy Protocol v3: gross = direct CO2 without biomass CO2 "
        "(here the CEMS CO2 minus the biogenic CO2 of the fuels); net = gross - CO2 of alternative fossil "
        "fuels",
        "periods": "local months or years of the report's time zone (the first plant's, or ?tz=)",
    }


@dataclass(frozen=True, slots=True)
class KpiSetup:
    """What the KPI report needs from the plant file: grouping, fuels by kiln, cementitious product
    rates by plant [t/h] and targets by (level, id)."""

    grouping: Grouping
    fuels: Mapping[str, Sequence[KpiFuel]] = field(default_factory=dict)
    cementitious_t_per_h: Mapping[str, float] = field(default_factory=dict)
    targets: Mapping[tuple[str, str], TargetSpec] = field(default_factory=dict)

    def cementitious_t(self, period: Periods) -> dict[str, list[float]]:
        """By plant: the configured rate x the hours of each period [t]."""
        hours = np.diff(period.bounds) / HOUR_NS
        return {p: [float(r * h) for h in hours] for p, r in self.cementitious_t_per_h.items()}

    def kilns_of(self, level: str, entity: str) -> list[str]:
        return sorted(k for k in self.grouping.plant_of if self.grouping.entity(k, level) == entity)
