"""From a validated plant file to the runtime pieces: signal table, kilns, conditioning, bindings."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from analytics import crosscheck as xc
from analytics import plant_time
from analytics import rules as kr
from analytics.engine import EngineParams
from analytics.plant_time import PlantClock
from analytics.signals import KilnSpec, SignalInfo, SignalTable
from analytics.units import CANONICAL_UNIT, DEFAULT_RANGE, conversion
from analytics.us_units import ReportingConvention
from collector.conditioning import Conditioner, ValueCorrections
from collector.plausibility import TimeWindow
from collector.sources.mqtt.spec import MqttBinding
from collector.sources.opcua.spec import OpcUaBinding

from .config import PlantFile, PlausibilityConfig
from .config_kiln import KilnConfig, SignalConfig

#: Rules that rest on a design choice, not on a source; every API response names them.
ASSUMPTIONS = {
    "half_hour_valid": "IED half-hour valid with >= 2/3 of its grid points valid (not from EN 17255-1)",
    "operating_time": "a half-hour is in effective operating time when the kiln runs >= half of it",
    "running": "the kiln runs while clinker >= running_min_clinker_t_per_h, or while clinker is unknown",
    "stuck": "a value unchanged for stuck_s while the kiln runs is invalid from then on (causal check)",
    "dry_and_o2_per_point": "dry conversion and O2 reference correction per grid point, before averaging",
    "validated_not_below_zero": "a half-hour below its confidence interval is validated as 0",
    "substitution_fallback": "without 2 valid hours in the reporting period yet, CO2 concentration is "
    "substituted from the mass balance; CO without history is left out",
    "reporting_period": "calendar year of the plant's time zone (kilns.*.timezone)",
    "sigma": "sample standard deviation (ddof 1) in C_mean + 2 sigma",
    "deviation_threshold": "cross-check flagged above deviation_threshold_pct (MRR Art. 46 gives none)",
    "qal2_out_of_force": "outside its validity dates a QAL2 function is not applied; values are uncertain",
    "us_substitution": "under us_part75/us_part98 invalid hours are substituted by the MRR rules too",
    "us_operating_time": "US hourly mass = hourly rate x 1 h; partial operating hours are not separated",
}


@dataclass
class Runtime:
    table: SignalTable
    kilns: list[KilnSpec]
    kiln_names: dict[str, str]
    conditioner: Conditioner
    engine_params: EngineParams
    conventions: dict[str, str] = field(default_factory=dict)  # kiln -> reporting convention
    opcua_nodes: dict[str, list[tuple[int, OpcUaBinding]]] = field(default_factory=dict)
    mqtt_bindings: dict[str, list[tuple[int, MqttBinding]]] = field(default_factory=dict)
    plausibility: PlausibilityConfig = field(default_factory=PlausibilityConfig)
    #: Signals without a range of their own in the plant file: they get DEFAULT_RANGE.
    default_ranged: tuple[str, ...] = ()
    #: plant id -> company (plants[].company), for the historian's ``company`` tag.
    companies: dict[str, str] = field(default_factory=dict)

    @property
    def window(self) -> TimeWindow:
        """The time window every reading must fall in (collector.plausibility)."""
        p = self.plausibility
        return TimeWindow.from_seconds(
            p.max_reading_age_days * 86_400, p.max_future_skew_s, p.commissioning_date
        )

    def method(self) -> dict[str, Any]:
        """The rules behind the numbers, reported with every API response."""
        p = self.engine_params
        names = dict(enumerate(self.table.ids))
        return {
            "co2_density_kg_per_nm3": p.co2_density_kg_per_nm3,
            "reference_conditions": {"temperature_K": 273.15, "pressure_kPa": 101.325, "basis": "dry"},
            "hourly_co2": "hourly mean dry CO2 x hourly mean normal dry flow (EU MRR 2018/2066 Art. 43/44); "
            "co2_t includes co_as_co2_t, CO counted as CO2 (Art. 43(1)) under eu_mrr",
            "valid_fraction": p.valid_fraction,
            "grid_s": p.grid_s,
            "max_hold_s": p.max_hold_s,
            "lateness_s": p.lateness_s,
            "idle_after_s": p.idle_after_s,
            "silent_grace_s": p.silent_grace_s,
            "intensity": "sum CO2 / sum clinker over the same window",
            "substitution": {
                "concentration": "C_mean + 2 sigma of the valid hours of the reporting period so far "
                "(MRR Annex VIII Eq. 4)",
                "flow": "mass balance: calculated CO2 / (CO2 concentration x density) (MRR Art. 45(4))",
            },
            "pollutants": "IED 2010/75/EU Annex VI: half-hour mean at the reference O2, dry, minus the "
            "confidence interval (Part 6 pt 1.3, Part 8 pt 1.2); daily mean of validated half-hours, "
            "valid with <= max_discarded_half_hours_per_day discarded (Part 8 section 1)",
            "stuck_and_ledger": "completeness per signal and hour: expected, received, valid and one reason "
            "per invalid grid point (missing, comm_loss, calibration, maintenance, fault, out_of_range, "
            "stuck, bad)",
            "validity": "a minute or hour is valid when flow, CO2 and clinker each meet the valid fraction "
            "and its CO2 and intensity are finite numbers (an hour without clinker has no intensity)",
            "plausibility": self._plausibility(),
            "calendar": plant_time.BOUNDARY_RULE,
            "assumptions": ASSUMPTIONS,
            "kilns": {k: r.describe(names) for k, r in p.rules.items()},
        }

    def _plausibility(self) -> dict[str, Any]:
        p = self.plausibility
        return {
            "max_reading_age_days": p.max_reading_age_days,
            "max_future_skew_s": p.max_future_skew_s,
            "commissioning_date": None if p.commissioning_date is None else p.commissioning_date.isoformat(),
            "outside_the_window": "not stored, not computed; a dead letter, counted in "
            "kilnwatch_rejected_total",
            "default_ranges": {
                q.value: {"min": lo, "max": hi, "unit": CANONICAL_UNIT[q]}
                for q, (lo, hi) in DEFAULT_RANGE.items()
                if np.isfinite(lo) or np.isfinite(hi)
            },
            "signals_with_default_range": list(self.default_ranged),
        }


def build_runtime(plant: PlantFile) -> Runtime:
    infos: list[SignalInfo] = []
    configs: list[SignalConfig] = []
    scale: list[float] = []
    offset: list[float] = []
    opcua: dict[str, list[tuple[int, OpcUaBinding]]] = {}
    mqtt: dict[str, list[tuple[int, MqttBinding]]] = {}
    names: dict[str, str] = {}
    for p, k in plant.kilns():
        names[k.id] = k.name or k.id
        for s in k.signals:
            a, b = conversion(s.quantity, s.unit)
            if s.range is not None:  # in the configured unit
                lo, hi = s.range[0] * a + b, s.range[1] * a + b
            else:  # canonical already
                lo, hi = DEFAULT_RANGE[s.quantity]
            idx = len(infos)
            infos.append(
                SignalInfo(
                    id=s.id,
                    plant=p.id,
                    kiln=k.id,
                    quantity=s.quantity,
                    unit=CANONICAL_UNIT[s.quantity]
                    if s.quantity.value != "flow"
                    else _flow_unit(s.conditions),
                    moisture_basis=s.basis,
                    conditions=s.conditions,
                    valid_min=lo,
                    valid_max=hi,
                )
            )
            scale.append(a)
            offset.append(b)
            configs.append(s)
            if s.source.opcua is not None:
                opcua.setdefault(s.source.opcua.server, []).append((idx, s.source.opcua))
            if s.source.mqtt is not None:
                mqtt.setdefault(s.source.mqtt.broker, []).append((idx, s.source.mqtt))
    table = SignalTable(infos)
    kilns = [KilnSpec.from_table(table, k.id, k.name or k.id, p.id) for p, k in plant.kilns()]
    e = plant.engine
    clocks = {p.id: PlantClock(p.timezone) for p in plant.plants}
    rules = {
        k.id: replace(
            kiln_rules(k, table, ReportingConvention(p.reporting), e.hour_valid_fraction),
            timezone=p.timezone,
            year_starts_ns=clocks[p.id].year_starts_ns,
        )
        for p, k in plant.kilns()
    }
    params = EngineParams(
        grid_s=e.grid_s,
        max_hold_s=e.max_hold_s,
        lateness_s=e.lateness_s,
        idle_after_s=e.idle_after_s,
        silent_grace_s=e.silent_grace_s,
        valid_fraction=e.hour_valid_fraction,
        co2_density_kg_per_nm3=e.co2_density_kg_per_nm3,
        keep_minutes=e.trend_minutes,
        rules=rules,
    )
    conditioner = Conditioner(scale, offset, table.valid_min, table.valid_max, value_corrections(configs))
    conventions = {k: r.convention.value for k, r in rules.items()}
    defaulted = tuple(s.id for _, k in plant.kilns() for s in k.signals if s.range is None)
    companies = {p.id: p.company for p in plant.plants if p.company}
    return Runtime(
        table, kilns, names, conditioner, params, conventions, opcua, mqtt, plant.plausibility, defaulted,
        companies,
    )  # fmt: skip


def kiln_rules(
    kiln: KilnConfig, table: SignalTable, convention: ReportingConvention, hour_valid_fraction: float
) -> kr.KilnRules:
    """The accounting rules of one kiln from its plant-file section, defaults filled in."""
    acc = kiln.accounting
    measured = {
        kr.POLLUTANT_QUANTITIES[s.quantity] for s in kiln.signals if s.quantity in kr.POLLUTANT_QUANTITIES
    }
    pollutants = {}
    for name in sorted(measured | set(acc.pollutants)):
        default = kr.default_pollutant_rule(name)
        given = acc.pollutants.get(name)
        pollutants[name] = kr.PollutantRule(
            given.elv_mg_per_nm3 if given and given.elv_mg_per_nm3 is not None else default.elv_mg_per_nm3,
            given.ci_fraction if given and given.ci_fraction is not None else default.ci_fraction,
        )
    comp = acc.composition
    if comp.ef_clinker_t_per_t is not None:
        ef, ef_source = comp.ef_clinker_t_per_t, "plant file"
    elif comp.cao_pct is not None and comp.mgo_pct is not None:
        ef = float(
            xc.clinker_emission_factor(
                comp.cao_pct, comp.mgo_pct, comp.cao_non_carbonate_pct, comp.mgo_non_carbonate_pct
            )
        )
        ef_source = "clinker CaO/MgO, 40 CFR 98.83 Eq. H-3 factors 0.785 / 1.092"
    else:
        ef, ef_source = xc.CSI_DEFAULT_EF_T_PER_T, "CSI/GCCA default 525 kg CO2/t clinker (method B1)"
    stuck = frozenset(
        table.index(s.id)
        for s in kiln.signals
        if (s.stuck_check if s.stuck_check is not None else s.quantity in kr.DEFAULT_STUCK_QUANTITIES)
    )
    return kr.KilnRules(
        convention=convention,
        hour_valid_fraction=hour_valid_fraction,
        reference_o2_pct=acc.reference_o2_pct,
        pollutants=pollutants,
        half_hour_valid_fraction=acc.half_hour_valid_fraction,
        operating_fraction=acc.operating_fraction,
        max_discarded_half_hours=acc.max_discarded_half_hours,
        stuck_s=acc.stuck_minutes * 60.0,
        stuck_signals=stuck,
        running_min_clinker_t_per_h=acc.running_min_clinker_t_per_h,
        ef_clinker_t_per_t=ef,
        ef_clinker_source=ef_source,
        raw_meal_per_clinker=comp.raw_meal_per_clinker,
        toc_pct=comp.toc_pct,
        cao_pct=comp.cao_pct,
        mgo_pct=comp.mgo_pct,
        cao_non_carbonate_pct=comp.cao_non_carbonate_pct,
        mgo_non_carbonate_pct=comp.mgo_non_carbonate_pct,
        fuels=tuple(
            kr.FuelRule(f.signal, f.name, f.ncv_gj_per_t, f.ef_t_per_tj, f.oxidation_factor)
            for f in acc.fuels
        ),
        deviation_threshold_pct=acc.deviation_threshold_pct,
    )


def value_corrections(configs: list[SignalConfig]) -> ValueCorrections | None:
    """4-20 mA ranges and QAL2 functions as arrays by signal index; None when no signal has any."""
    if not any(c.scaling or c.calibration for c in configs):
        return None
    corr = ValueCorrections.none(len(configs))
    for i, c in enumerate(configs):
        if c.scaling is not None:
            corr.loop_lo[i], corr.loop_hi[i] = c.scaling.lo, c.scaling.hi
        cal = c.calibration
        if cal is not None:
            corr.has_qal2[i] = True
            corr.qal2_a[i], corr.qal2_b[i] = cal.a, cal.b
            corr.qal2_min[i] = -np.inf if cal.valid_min is None else cal.valid_min
            corr.qal2_max[i] = np.inf if cal.valid_max is None else cal.valid_max
            if cal.valid_from is not None:
                corr.qal2_from_ns[i] = round(cal.valid_from.timestamp() * 1e6) * 1000
            if cal.valid_to is not None:
                corr.qal2_to_ns[i] = round(cal.valid_to.timestamp() * 1e6) * 1000
            corr.qal2_invalidate[i] = cal.invalidate_outside
    return corr


def _flow_unit(conditions: str | None) -> str:
    return "Nm3/h" if conditions == "standard" else "m3/h"
