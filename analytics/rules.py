"""The accounting rules of one kiln, as plain data the engine and the reports apply.

Defaults carry their source; the ones marked [assumption] are design choices that the permit or
EN 17255-1 must confirm (docs/method.md § 13). The wiring builds one :class:`KilnRules` per kiln
from the plant file; :meth:`KilnRules.describe` is what the API's ``method`` block shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from . import crosscheck as xc
from . import pollutants as pol
from .averaging import ETS_HOUR_MIN_AVAILABILITY
from .corrections import O2_REFERENCE_CEMENT_PCT
from .signals import Quantity
from .us_units import ReportingConvention

#: Pollutant name by the quantity of its signal (IED Annex VI Part 4 names, lower case).
POLLUTANT_QUANTITIES: Final[dict[Quantity, str]] = {
    Quantity.NOX: "nox",
    Quantity.SO2: "so2",
    Quantity.DUST: "dust",
    Quantity.TOC: "toc",
    Quantity.CO: "co",
}
#: Signals whose frozen value means a stuck instrument [assumption: gas analysers, stack flow and
#: temperature; pressures and rates may legitimately sit still on an on-change OPC UA source].
DEFAULT_STUCK_QUANTITIES: Final = frozenset(
    {
        Quantity.FLOW,
        Quantity.TEMPERATURE,
        Quantity.H2O,
        Quantity.CO2,
        Quantity.O2,
        Quantity.CO,
        Quantity.NOX,
        Quantity.SO2,
        Quantity.DUST,
        Quantity.TOC,
    }
)
#: A value unchanged this long while the kiln runs is stuck [s] ([assumption]; method.md § 4.4: 10-15 min).
DEFAULT_STUCK_S: Final = 15 * 60.0
#: The kiln runs while clinker production is at least this [t/h] ([assumption]: about 2.5 % of a
#: 5000 t/d kiln; set the plant's value).
DEFAULT_RUNNING_MIN_CLINKER_T_PER_H: Final = 5.0
#: A half-hour lies in effective operating time when the kiln runs for at least this share of it
#: ([assumption]: IED Annex VI Part 8 pt 1.2 excludes start-up and shut-down without waste; the permit
#: defines them).
DEFAULT_OPERATING_FRACTION: Final = 0.5


@dataclass(frozen=True, slots=True)
class PollutantRule:
    """Daily ELV [mg/Nm3, 10 % O2 dry] and confidence interval as a fraction of it [-]; None: not set."""

    elv_mg_per_nm3: float | None
    ci_fraction: float | None

    @property
    def ci_mg_per_nm3(self) -> float | None:
        if self.elv_mg_per_nm3 is None or self.ci_fraction is None:
            return None
        return self.elv_mg_per_nm3 * self.ci_fraction


def default_pollutant_rule(name: str) -> PollutantRule:
    """IED Annex VI Part 4 daily ELV and Part 6 pt 1.3 CI fraction (CO: no ELV, set it in the plant file)."""
    return PollutantRule(pol.DEFAULT_DAILY_ELV_MG_PER_NM3.get(name), pol.CI_FRACTION_OF_ELV.get(name))


@dataclass(frozen=True, slots=True)
class FuelRule:
    """A kiln fuel for the mass balance: its rate signal [t/h], NCV [GJ/t], EF [t CO2/TJ], oxidation [-]."""

    signal_id: str
    name: str
    ncv_gj_per_t: float
    ef_t_per_tj: float
    oxidation_factor: float = 1.0


@dataclass(frozen=True, slots=True)
class KilnRules:
    """How one kiln's numbers are made. Every default is named with its source in the module constants."""

    convention: ReportingConvention = ReportingConvention.EU_MRR
    hour_valid_fraction: float = ETS_HOUR_MIN_AVAILABILITY
    reference_o2_pct: float = O2_REFERENCE_CEMENT_PCT
    pollutants: Mapping[str, PollutantRule] = field(default_factory=dict)
    half_hour_valid_fraction: float = pol.HALF_HOUR_MIN_AVAILABILITY
    operating_fraction: float = DEFAULT_OPERATING_FRACTION
    max_discarded_half_hours: int = pol.MAX_DISCARDED_HALF_HOURS_PER_DAY
    stuck_s: float = DEFAULT_STUCK_S
    #: Signals checked for stuck values (global indexes). None are by default here; the plant file's
    #: default is every signal of :data:`DEFAULT_STUCK_QUANTITIES` (see kilnwatch.plant).
    stuck_signals: frozenset[int] = frozenset()
    running_min_clinker_t_per_h: float = DEFAULT_RUNNING_MIN_CLINKER_T_PER_H
    ef_clinker_t_per_t: float = xc.CSI_DEFAULT_EF_T_PER_T
    ef_clinker_source: str = "CSI/GCCA default 525 kg CO2/t clinker (method B1)"
    raw_meal_per_clinker: float = xc.RAW_MEAL_PER_CLINKER_DEFAULT
    toc_pct: float = xc.TOC_DEFAULT_PCT
    fuels: tuple[FuelRule, ...] = ()
    #: The plant file's clinker composition [wt %] (None: not given), for manual CaO/MgO values that
    #: replace one of them (analytics.overrides).
    cao_pct: float | None = None
    mgo_pct: float | None = None
    cao_non_carbonate_pct: float = 0.0
    mgo_non_carbonate_pct: float = 0.0
    deviation_threshold_pct: float = xc.DEFAULT_DEVIATION_THRESHOLD_PCT
    #: The plant's time zone (IANA name) and the starts of its local years [ns] (analytics.plant_time):
    #: the substitution's reporting period; None: UTC years.
    timezone: str = "UTC"
    year_starts_ns: npt.NDArray[np.int64] | None = field(default=None, compare=False, repr=False)

    @property
    def co_counts_as_co2(self) -> bool:
        """MRR Art. 43(1) counts CO as CO2; the US conventions (Part 75/98 CO2 equations) do not."""
        return self.convention is ReportingConvention.EU_MRR

    def pollutant(self, name: str) -> PollutantRule:
        return self.pollutants.get(name) or default_pollutant_rule(name)

    def describe(self, signal_names: Mapping[int, str] | None = None) -> dict[str, Any]:
        """The rules as JSON-ready data for the API ``method`` block."""
        names = signal_names or {}
        return {
            "reporting_convention": self.convention.value,
            "co_counted_as_co2": self.co_counts_as_co2,
            "hour_valid_fraction": self.hour_valid_fraction,
            "reference_o2_pct_dry": self.reference_o2_pct,
            "pollutants": {
                n: {"elv_mg_per_nm3": r.elv_mg_per_nm3, "ci_fraction": r.ci_fraction}
                for n, r in sorted(self.pollutants.items())
            },
            "half_hour_valid_fraction": self.half_hour_valid_fraction,
            "operating_fraction": self.operating_fraction,
            "max_discarded_half_hours_per_day": self.max_discarded_half_hours,
            "timezone": self.timezone,
            "stuck_s": self.stuck_s,
            "stuck_signals": sorted(names.get(i, str(i)) for i in self.stuck_signals),
            "running_min_clinker_t_per_h": self.running_min_clinker_t_per_h,
            "mass_balance": {
                "available": bool(self.fuels),  # without fuels: no flow substitute, no cross-check
                "ef_clinker_t_per_t": self.ef_clinker_t_per_t,
                "ef_clinker_source": self.ef_clinker_source,
                "raw_meal_per_clinker": self.raw_meal_per_clinker,
                "toc_pct": self.toc_pct,
                "fuels": [
                    {
                        "name": f.name,
                        "signal": f.signal_id,
                        "ncv_gj_per_t": f.ncv_gj_per_t,
                        "ef_t_per_tj": f.ef_t_per_tj,
                        "oxidation_factor": f.oxidation_factor,
                    }
                    for f in self.fuels
                ],
                "deviation_threshold_pct": self.deviation_threshold_pct,
            },
        }
