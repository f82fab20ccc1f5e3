"""Substitution of invalid hours (MRR 2018/2066 Art. 45; docs/method.md § 8; WE8).

concentration (CO2, CO)  C_mean + 2 sigma of the valid hours of the reporting period so far
                         (Annex VIII Eq. 4); without two valid hours yet, CO2 falls back to the
                         mass balance ([assumption]) and CO is left out (reported as unavailable)
stack flow               from the mass balance: Q = calculated CO2 / (C x rho) (Art. 45(4);
                         crosscheck.flow_from_mass_balance); needs the hour's clinker and fuel rates

The reporting period is the calendar year, as for EU ETS annual emissions, in the plant's time zone:
the year starts come from :mod:`analytics.plant_time` as an int64 array (UTC years without one).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from . import crosscheck as xc
from . import kiln_params as kp
from .aggregates import CalculatedCO2, HourAggregate, ParameterStats
from .averaging import SUBSTITUTION_DDOF, SUBSTITUTION_SIGMAS
from .conventions import hour_mass
from .emissions import intensity_kg_per_t
from .rules import KilnRules

MEAN_PLUS_2SIGMA = "mean_plus_2sigma"
MASS_BALANCE = "mass_balance"
UNAVAILABLE = "unavailable"
CONCENTRATIONS = (kp.CO2_DRY, kp.CO_DRY)


def period_start_ns(t_ns: int, year_starts_ns: npt.NDArray[np.int64] | None = None) -> int:
    """Start of the reporting period (calendar year) holding ``t_ns`` [ns]: the last of the sorted
    ``year_starts_ns`` at or before it (local years, see analytics.plant_time), else the UTC year."""
    if year_starts_ns is None:
        year = np.datetime64(t_ns, "ns").astype("datetime64[Y]")
        return int(year.astype("datetime64[ns]").astype(np.int64))
    i = int(np.searchsorted(year_starts_ns, t_ns, side="right")) - 1
    if i < 0:
        raise ValueError(f"{t_ns} ns lies before the first tabulated year start")
    return int(year_starts_ns[i])


class SubstitutionHistory:
    """Valid hourly means of the concentrations, by hour start, for Eq. 4; the reporting period
    is the calendar year that ``year_starts_ns`` delimits (UTC years without it)."""

    def __init__(self, year_starts_ns: npt.NDArray[np.int64] | None = None) -> None:
        self._means: dict[str, dict[int, float]] = {p: {} for p in CONCENTRATIONS}
        self.year_starts_ns = year_starts_ns
        # the means as arrays (dict order), built on demand and dropped when the means change
        self._arrays: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}

    def period_start(self, t_ns: int) -> int:
        """Start of the reporting period holding ``t_ns`` [ns]."""
        return period_start_ns(t_ns, self.year_starts_ns)

    def record(self, hour: HourAggregate, valid_fraction: float) -> None:
        for name, means in self._means.items():
            s = hour.params.get(name)
            if (
                s is not None
                and s.mean is not None
                and np.isfinite(s.mean)
                and s.availability >= valid_fraction
            ):
                if means.get(hour.start_ns) != s.mean:
                    means[hour.start_ns] = s.mean
                    self._arrays.pop(name, None)
            elif means.pop(hour.start_ns, None) is not None:
                self._arrays.pop(name, None)

    def substitute(self, name: str, hour_start_ns: int) -> float | None:
        """C_mean + 2 sigma [unit of the concentration] of the valid hours before the hour, same period."""
        lo = self.period_start(hour_start_ns)
        arrays = self._arrays.get(name)
        if arrays is None:
            means = self._means[name]
            arrays = self._arrays[name] = (
                np.fromiter(means.keys(), dtype=np.int64, count=len(means)),
                np.fromiter(means.values(), dtype=float, count=len(means)),
            )
        ts, vs = arrays
        values = vs[(ts >= lo) & (ts < hour_start_ns)]
        if len(values) < 2:
            return None
        result = _mean_plus_two_sigma(values)
        return result if math.isfinite(result) else None

    def forget_before(self, t_ns: int) -> None:
        self._arrays.clear()
        for means in self._means.values():
            for t in [t for t in means if t < t_ns]:
                del means[t]


def _mean_plus_two_sigma(x: npt.NDArray[np.float64]) -> float:
    """:func:`analytics.averaging.mean_plus_two_sigma` of finite values, all valid, at least
    ddof + 1 of them: the same operations in the same order (so the same number), without the
    masks and axes of the general function (it runs once per substituted hour)."""
    n = float(len(x))
    shift = float(x.sum() / len(x))
    d = x - shift
    s1, s2 = float(d.sum()), float((d * d).sum())
    var = (s2 - s1 * s1 / n) / (n - SUBSTITUTION_DDOF)
    return s1 / n + shift + SUBSTITUTION_SIGMAS * math.sqrt(max(var, 0.0))


def calculated_co2(params: dict[str, ParameterStats], rules: KilnRules) -> CalculatedCO2:
    """The hour's CO2 by mass balance [t]: calcination + kiln fuels + raw-meal TOC (WE10).

    Uses the hour's mean clinker and fuel rates over their valid points. Without configured fuels the
    balance is incomplete and gives no total.
    """
    cli = params.get(kp.CLINKER_RATE)
    if cli is None or cli.mean is None:
        return CalculatedCO2()
    clinker = cli.mean
    calcination = float(xc.calcination_co2(clinker, rules.ef_clinker_t_per_t))
    toc = float(xc.toc_co2(clinker, rules.raw_meal_per_clinker, rules.toc_pct))
    fuel: float | None = None
    if rules.fuels:
        stats = [params.get(f.signal_id) for f in rules.fuels]
        rates = [s.mean for s in stats if s is not None and s.mean is not None]
        if len(rates) == len(rules.fuels):
            fuel = float(
                xc.fuel_co2(
                    rates,
                    [f.ncv_gj_per_t for f in rules.fuels],
                    [f.ef_t_per_tj for f in rules.fuels],
                    [f.oxidation_factor for f in rules.fuels],
                )
            )
    total = None if fuel is None else calcination + fuel + toc
    return CalculatedCO2(calcination, fuel, toc, total, clinker)


def _mark(stats: ParameterStats, value: float | None, method: str) -> None:
    stats.substituted = value is not None
    stats.substitute = value
    stats.substitution_method = method


def apply_hour_rules(
    hour: HourAggregate, history: SubstitutionHistory, rules: KilnRules, density_kg_per_nm3: float
) -> HourAggregate:
    """Substitute the invalid parameters of a measured hour and set its reported CO2 (in place).

    ``history`` must hold the hours before this one; the hour itself is not recorded here.
    """
    vf = rules.hour_valid_fraction
    p = hour.params
    flow, co2 = p[kp.FLOW_N_DRY], p[kp.CO2_DRY]
    co = p.get(kp.CO_DRY)
    hour.calculated = calc = calculated_co2(p, rules)
    methods: dict[str, str] = {}

    c = co2.mean if co2.availability >= vf else None
    if c is None:
        c = history.substitute(kp.CO2_DRY, hour.start_ns)
        if c is not None:
            _mark(co2, c, MEAN_PLUS_2SIGMA)
            methods[kp.CO2_DRY] = MEAN_PLUS_2SIGMA
    q = flow.mean if flow.availability >= vf else None
    if q is None:
        if calc.total_t is not None and c is not None and c > 0:
            q = float(xc.flow_from_mass_balance(calc.total_t, c, density_kg_per_nm3))
            _mark(flow, q, MASS_BALANCE)
        methods[kp.FLOW_N_DRY] = MASS_BALANCE if q is not None else UNAVAILABLE
    if c is None:
        if calc.total_t is not None and q is not None and q > 0:
            c = calc.total_t / (q * density_kg_per_nm3 / 1000.0) * 100.0
            _mark(co2, c, MASS_BALANCE)
        methods[kp.CO2_DRY] = MASS_BALANCE if c is not None else UNAVAILABLE
    co_value = None
    if co is not None:
        co_value = co.mean if co.availability >= vf else history.substitute(kp.CO_DRY, hour.start_ns)
        if co.availability < vf:
            _mark(co, co_value, MEAN_PLUS_2SIGMA)
            methods[kp.CO_DRY] = MEAN_PLUS_2SIGMA if co_value is not None else UNAVAILABLE

    mass = hour_mass(q, c, co_value, rules.convention, density_kg_per_nm3)
    hour.co2_t, hour.co_as_co2_t, hour.co2_short_tons = mass
    if hour.co2_t is None and q is None and c is None and calc.total_t is not None:
        hour.co2_t = calc.total_t  # both flow and CO2 invalid, no history: the balance itself
        methods = {**methods, kp.FLOW_N_DRY: MASS_BALANCE, kp.CO2_DRY: MASS_BALANCE}
    counted = [kp.FLOW_N_DRY, kp.CO2_DRY] + ([kp.CO_DRY] if rules.co_counts_as_co2 else [])
    hour.co2_t_substituted = hour.co2_t is not None and any(
        methods.get(k) in (MEAN_PLUS_2SIGMA, MASS_BALANCE) for k in counted
    )
    order = (kp.FLOW_N_DRY, kp.CO2_DRY, kp.CO_DRY)
    hour.substitution_method = ";".join(f"{k}={methods[k]}" for k in order if k in methods) or None
    hour.intensity_kg_per_t = None
    if hour.co2_t is not None and hour.clinker_t is not None and hour.clinker_t > 0:
        hour.intensity_kg_per_t = float(intensity_kg_per_t(hour.co2_t, hour.clinker_t))
    return hour
