"""What operators tell the engine about a kiln: when it was stopped, and lab and production values.

Two kinds of override, both time-ranged and plain data (the wiring loads them from the store):

``StoppedRanges``  the kiln was stopped (``kiln_stopped`` annotations), as a DAHS operating-status
                   flag: its grid points do not count as running, and an hour whose annotated
                   operating share is below the kiln's ``operating_fraction`` is *not operating*
                   (no substitution, not in the substitution history)
``ManualValue``    a lab or production value with a validity period (clinker CaO/MgO, a fuel's NCV
                   or EF, raw-meal TOC, cement produced); it replaces the plant file's constant
                   in the mass balance of every hour whose start lies in its validity period

A value is in force from ``valid_from_ns`` until ``valid_to_ns`` (exclusive; None: open) or until
the next value of the same quantity (and fuel) starts, whichever comes first; of two values that
start at the same time the later entered (higher ``id``) wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

import numpy as np
import numpy.typing as npt

from . import crosscheck as xc
from .rules import FuelRule, KilnRules

CLINKER_CAO_PCT: Final = "clinker_cao_pct"
CLINKER_MGO_PCT: Final = "clinker_mgo_pct"
FUEL_NCV_GJ_PER_T: Final = "fuel_ncv_gj_per_t"
FUEL_EF_T_PER_TJ: Final = "fuel_ef_t_per_tj"
RAW_MEAL_TOC_PCT: Final = "raw_meal_toc_pct"
CEMENT_T: Final = "cement_t"
#: Quantities that need the fuel's name.
FUEL_QUANTITIES: Final = frozenset({FUEL_NCV_GJ_PER_T, FUEL_EF_T_PER_TJ})
#: Manual quantity -> (unit, plausible low, plausible high) [inclusive]. The ranges are plausibility
#: limits for cement plants [assumption]: clinker CaO 58-70 % and MgO 0.5-5 % are typical (CSI Cement
#: CO2 Protocol), kiln fuels have NCVs of 8-45 GJ/t (IPCC 2006 Vol. 2 Table 1.2: wood waste to gas oil),
#: EFs of 0-112 t/TJ (biomass 0 to petroleum coke / waste tyres in MRR Annex VI); TOC of raw meal
#: 0-1 % (40 CFR 98.83 default 0.2 %).
QUANTITIES: Final[dict[str, tuple[str, float, float]]] = {
    CLINKER_CAO_PCT: ("wt %", 50.0, 72.0),
    CLINKER_MGO_PCT: ("wt %", 0.0, 8.0),
    FUEL_NCV_GJ_PER_T: ("GJ/t", 5.0, 50.0),
    FUEL_EF_T_PER_TJ: ("t CO2/TJ", 0.0, 120.0),
    RAW_MEAL_TOC_PCT: ("wt %", 0.0, 2.0),
    CEMENT_T: ("t", 0.0, 1.0e6),
}
_NEVER_ENDS = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class StoppedRanges:
    """Merged, sorted [start, end) ranges [ns] in which a kiln was stopped."""

    starts: npt.NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    ends: npt.NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))

    @classmethod
    def of(cls, ranges: Iterable[tuple[int, int | None]]) -> StoppedRanges:
        """From (start, end) pairs in any order, overlapping or not; an end of None is open."""
        pairs = sorted((int(s), _NEVER_ENDS if e is None else int(e)) for s, e in ranges)
        starts: list[int] = []
        ends: list[int] = []
        for s, e in pairs:
            if e <= s:
                continue
            if ends and s <= ends[-1]:
                ends[-1] = max(ends[-1], e)
            else:
                starts.append(s)
                ends.append(e)
        return cls(np.array(starts, np.int64), np.array(ends, np.int64))

    def __bool__(self) -> bool:
        return bool(len(self.starts))

    def contains(self, t_ns: int) -> bool:
        i = int(np.searchsorted(self.starts, t_ns, side="right")) - 1
        return i >= 0 and t_ns < int(self.ends[i])

    def mask(self, start_ns: int, n_points: int, step_ns: int) -> npt.NDArray[np.bool_]:
        """Per grid point start + i * step: True where the kiln was stopped."""
        ts = start_ns + np.arange(n_points, dtype=np.int64) * step_ns
        i = np.searchsorted(self.starts, ts, side="right") - 1
        inside = i >= 0
        return inside & (ts < self.ends[np.maximum(i, 0)]) if len(self.starts) else np.zeros(n_points, bool)

    def covered_ns(self, lo: int, hi: int) -> int:
        """How much of [lo, hi) the ranges cover [ns]."""
        if not len(self.starts):
            return 0
        overlap = np.minimum(self.ends, hi) - np.maximum(self.starts, lo)
        return int(np.clip(overlap, 0, None).sum())


@dataclass(frozen=True, slots=True)
class ManualValue:
    """A lab or production value [unit of :data:`QUANTITIES`] in force from ``valid_from_ns``."""

    quantity: str
    value: float
    valid_from_ns: int
    valid_to_ns: int | None = None
    fuel: str | None = None
    id: int = 0


@dataclass(frozen=True, slots=True)
class ManualEntry:
    """What an operator enters: one value of one kiln [unit of :data:`QUANTITIES`]."""

    kiln: str
    quantity: str
    value: float
    unit: str
    valid_from_ns: int
    valid_to_ns: int | None = None
    fuel: str | None = None
    sample: str = ""  # the lab sample or delivery note it comes from


def value_at(
    values: Sequence[ManualValue], quantity: str, t_ns: int, fuel: str | None = None
) -> float | None:
    """The value of ``quantity`` (of ``fuel``) in force at ``t_ns``, None if none is."""
    best: ManualValue | None = None
    for v in values:
        if v.quantity != quantity or v.fuel != fuel or v.valid_from_ns > t_ns:
            continue
        if best is None or (v.valid_from_ns, v.id) > (best.valid_from_ns, best.id):
            best = v
    if best is None or (best.valid_to_ns is not None and t_ns >= best.valid_to_ns):
        return None
    return best.value


@dataclass(frozen=True, slots=True)
class KilnOverrides:
    """One kiln's stopped ranges and manual values, as the engine applies them."""

    stopped: StoppedRanges = field(default_factory=StoppedRanges)
    manual: tuple[ManualValue, ...] = ()

    def operating_share(self, lo: int, hi: int) -> float:
        """Share of [lo, hi) not covered by a stop [-]."""
        return 1.0 - self.stopped.covered_ns(lo, hi) / (hi - lo)

    def rules_at(self, rules: KilnRules, t_ns: int) -> KilnRules:
        """``rules`` with the manual values in force at ``t_ns`` in place of the plant file's constants."""
        if not self.manual:
            return rules
        changes: dict[str, object] = {}
        cao = value_at(self.manual, CLINKER_CAO_PCT, t_ns)
        mgo = value_at(self.manual, CLINKER_MGO_PCT, t_ns)
        if cao is not None or (mgo is not None and rules.cao_pct is not None):
            cao_used = cao if cao is not None else rules.cao_pct
            assert cao_used is not None
            mgo_used = mgo if mgo is not None else (rules.mgo_pct or 0.0)
            changes["ef_clinker_t_per_t"] = float(
                xc.clinker_emission_factor(
                    cao_used, mgo_used, rules.cao_non_carbonate_pct, rules.mgo_non_carbonate_pct
                )
            )
            changes["ef_clinker_source"] = (
                f"manual clinker CaO {cao_used} % / MgO {mgo_used} %, "
                "40 CFR 98.83 Eq. H-3 factors 0.785 / 1.092"
            )
        toc = value_at(self.manual, RAW_MEAL_TOC_PCT, t_ns)
        if toc is not None:
            changes["toc_pct"] = toc
        fuels = tuple(self._fuel_at(f, t_ns) for f in rules.fuels)
        if fuels != rules.fuels:
            changes["fuels"] = fuels
        return replace(rules, **changes) if changes else rules  # type: ignore[arg-type]

    def _fuel_at(self, fuel: FuelRule, t_ns: int) -> FuelRule:
        ncv = value_at(self.manual, FUEL_NCV_GJ_PER_T, t_ns, fuel.name)
        ef = value_at(self.manual, FUEL_EF_T_PER_TJ, t_ns, fuel.name)
        if ncv is None and ef is None:
            return fuel
        return replace(
            fuel,
            ncv_gj_per_t=fuel.ncv_gj_per_t if ncv is None else ncv,
            ef_t_per_tj=fuel.ef_t_per_tj if ef is None else ef,
        )
