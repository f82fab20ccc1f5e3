"""An hour's CO2 mass from its hourly means, under the plant's reporting convention (method.md § 7.2, § 11).

eu_mrr     MRR 2018/2066 Art. 43(1): mean dry flow x mean dry CO2 x rho_CO2, plus CO counted as CO2 (WE3, WE5)
us_part75  40 CFR 75 App. F Eq. F-2 (dry CO2, flow in scfh): short tons, converted to metric t (WE7)
us_part98  40 CFR 98.33 Eq. C-6 with C-7: metric t (WE7)

Dry flow x dry concentration equals wet x wet, so the US equations take the dry means directly. The US
CO2 equations do not count CO; its CO2 equivalent is still reported beside them.
"""

from __future__ import annotations

from typing import NamedTuple

from . import emissions as em
from . import us_units as us


class HourMass(NamedTuple):
    """CO2 of one hour [t]; CO as CO2 [t]; the Part 75 figure in short tons (else None)."""

    co2_t: float | None
    co_as_co2_t: float | None
    short_tons: float | None


def hour_mass(
    flow_n_dry: float | None,
    co2_pct_dry: float | None,
    co_mg_per_nm3_dry: float | None,
    convention: us.ReportingConvention,
    density_kg_per_nm3: float = em.CO2_DENSITY_KG_PER_NM3,
    duration_h: float = 1.0,
) -> HourMass:
    """Hourly mean flow [Nm3/h, dry], CO2 [vol %, dry] and CO [mg/Nm3, dry] to the hour's CO2 [t]."""
    if flow_n_dry is None:
        return HourMass(None, None, None)
    co = None
    if co_mg_per_nm3_dry is not None:
        co = float(em.co2_from_co_t_per_h(flow_n_dry, co_mg_per_nm3_dry)) * duration_h
    if co2_pct_dry is None:
        return HourMass(None, co, None)
    short = None
    if convention is us.ReportingConvention.EU_MRR:
        co2 = float(em.co2_mass_flow_t_per_h(flow_n_dry, co2_pct_dry, density_kg_per_nm3)) * duration_h
        if co is not None:
            co2 += co
    elif convention is us.ReportingConvention.US_PART75:
        short = float(us.f11_short_tons_per_h(co2_pct_dry, us.nm3_to_scf(flow_n_dry))) * duration_h
        co2 = float(us.short_tons_to_metric(short))
    else:
        co2 = float(us.c6_metric_t_per_h(co2_pct_dry, us.nm3_to_scf(flow_n_dry))) * duration_h
    return HourMass(co2, co, short)
