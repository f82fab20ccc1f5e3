"""Measured hours (and their IED half-hours) of a whole window of minute columns in one pass.

The same numbers as :func:`analytics.hours.hour_from_minutes` and
:func:`analytics.periods.half_hours_from_minutes`, hour for hour: the minutes are laid on an
[hour, minute of the hour] grid, counts and extremes reduce over it, and the sums of the means go
through a cumulative sum along the minutes, which adds in time order as the per-hour path does
(a pairwise sum would differ in the last bits). Python builds only the output objects.

Also the hours' mass balance (:func:`analytics.substitution.calculated_co2`) and which hours need
no substitution: for those the reported hour is the measured one.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import crosscheck as xc
from . import emissions as em
from . import kiln_params as kp
from .aggregates import CalculatedCO2, HalfHourAggregate, HourAggregate, ParameterStats, PollutantHalfHour
from .conventions import hour_mass
from .hours import HOUR_NS
from .ledger import LEDGER_REASONS
from .minute_columns import MinuteColumns
from .minutes import MINUTE_NS
from .periods import HALF_HOUR_NS
from .rules import KilnRules
from .us_units import ReportingConvention
from .validity import numbers_usable

Floats = npt.NDArray[np.float64]
_MISSING = LEDGER_REASONS[0]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The output is tens of thousands of acyclic objects: without the cycle collector running
    over the (large) heap every few hundred of them, building them takes a third of the time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True, slots=True)
class _Sums:
    """Per parameter and period: valid points, their mean (NaN: none), min, max ([P, periods])."""

    n: npt.NDArray[np.int64]
    mean: Floats
    lo: Floats
    hi: Floats


def _grid(
    a: npt.NDArray[Any], slot: npt.NDArray[np.int64], periods: int, fill: Any, per_period: int = 60
) -> npt.NDArray[Any]:
    """[P, n] minute columns on a [P, periods, per_period] grid (``slot``: each minute's place),
    ``fill`` where there is no minute."""
    if len(slot) == periods * per_period:  # no minute missing (slots sorted, unique): no copy
        return a.reshape(len(a), periods, per_period)
    g = np.full((len(a), periods * per_period), fill, dtype=a.dtype)
    g[:, slot] = a
    return g.reshape(len(a), periods, per_period)


def _sums(cols: MinuteColumns, slot: npt.NDArray[np.int64], periods: int, per_period: int) -> _Sums:
    n = _grid(cols.n_valid, slot, periods, 0, per_period).sum(axis=2)
    total = np.cumsum(_grid(cols.total, slot, periods, 0.0, per_period), axis=2)[:, :, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    lo = _grid(cols.lo, slot, periods, np.inf, per_period).min(axis=2)
    return _Sums(n, mean, lo, _grid(cols.hi, slot, periods, -np.inf, per_period).max(axis=2))


def _reason_dicts(counts: npt.NDArray[np.int64], first: npt.NDArray[np.int64]) -> dict[str, int]:
    """A ledger dict with the keys in the order the minutes name them first (as hours.combine)."""
    order = sorted(np.flatnonzero(counts).tolist(), key=lambda r: (first[r], r))
    return {LEDGER_REASONS[r]: int(counts[r]) for r in order}


@dataclass(slots=True)
class ColumnHours:
    """The measured hours (half-hours set, revision given) and, per hour, whether it needs the
    substitution rules (else its reported numbers are the measured ones) and its mass balance."""

    hours: list[HourAggregate]
    needs_rules: list[bool]
    calculated: list[CalculatedCO2]
    usable: list[bool]  # numbers_usable of the measured numbers


def measured_hours(
    kiln: str,
    plant: str,
    cols: MinuteColumns,
    revisions: Sequence[int],
    points_per_minute: int,
    co2_density: float,
    rules: KilnRules,
    pollutants: Sequence[str],
) -> ColumnHours:
    """Every hour that has minutes in ``cols``, in time order; ``revisions`` one per such hour."""
    pph = points_per_minute * 60
    vf = rules.hour_valid_fraction
    hour_of = cols.start_ns // HOUR_NS * HOUR_NS
    starts = np.unique(hour_of)
    h = len(starts)
    hidx = np.searchsorted(starts, hour_of)
    minute = (cols.start_ns - hour_of) // MINUTE_NS
    slot = hidx * 60 + minute
    names = cols.names
    p = len(names)
    s = _sums(cols, slot, h, 60)

    # integer sums need no order
    bounds = np.flatnonzero(np.r_[True, hidx[1:] != hidx[:-1]])
    seen = _grid(cols.n_expected, slot, h, 0).sum(axis=2)
    received = _grid(cols.received, slot, h, 0).sum(axis=2)
    has_received = np.asarray(_grid(cols.has_received, slot, h, False).any(axis=2))
    mi, pi, ri, count = cols.reason_at
    reasons = np.zeros((h, p, len(LEDGER_REASONS)), dtype=np.int64)
    np.add.at(reasons, (hidx[mi], pi, ri), count)
    reasons[:, :, 0] += np.maximum(pph - seen, 0).T
    # first minute of the hour naming each reason, for the dicts' key order (missing: named last)
    first = np.full(reasons.shape, 61, dtype=np.int64)
    np.minimum.at(first, (hidx[mi], pi, ri), minute[mi])

    idx = {name: i for i, name in enumerate(names)}

    def column(name: str) -> tuple[Floats, npt.NDArray[np.int64]]:
        i = idx.get(name)
        if i is None:
            return np.full(h, np.nan), np.zeros(h, np.int64)
        return s.mean[i], s.n[i]

    flow, n_flow = column(kp.FLOW_N_DRY)
    co2, n_co2 = column(kp.CO2_DRY)
    cli, n_cli = column(kp.CLINKER_RATE)
    co, n_co = column(kp.CO_DRY)
    has_co = kp.CO_DRY in idx
    convention = rules.convention
    eu = convention is ReportingConvention.EU_MRR
    with np.errstate(over="ignore", invalid="ignore"):
        co_t = em.co2_from_co_t_per_h(flow, co) * 1.0
        co2_t = em.co2_mass_flow_t_per_h(flow, co2, co2_density) * 1.0
        co2_t = np.where(np.isnan(co), co2_t, co2_t + co_t) if eu else co2_t
        intensity = np.where(cli > 0, em.intensity_kg_per_t(co2_t, cli), np.nan)
    availability = [n_flow / pph, n_co2 / pph, n_cli / pph]
    usable = numbers_usable(co2_t, cli, intensity)
    valid = np.logical_and.reduce([a >= vf for a in availability]) & usable
    completeness = np.minimum.reduce(availability)
    running_n = np.add.reduceat(cols.n_running, bounds)
    running_k = np.add.reduceat(cols.has_running.astype(np.int64), bounds)
    # the hour is as measured unless a concentration or the flow misses the validity rule
    means_ok = ~np.isnan(flow) & ~np.isnan(co2)
    needs_rules = ~((n_flow / pph >= vf) & (n_co2 / pph >= vf) & means_ok)
    if has_co:
        needs_rules |= ~((n_co / pph >= vf) & ~np.isnan(co))
    calc = _calculated(cli, [column(f.signal_id)[0] for f in rules.fuels], rules)

    def opt(x: float) -> float | None:
        return None if x != x else x  # NaN -> None

    L = np.ndarray.tolist
    co2_l, co_l, int_l, flow_l, cli_l = L(co2_t), L(co_t), L(intensity), L(flow), L(cli)
    co2m_l, com_l = L(co2), L(co)
    valid_l, comp_l, usable_l = L(valid), L(completeness), L(usable)
    run_n, run_k = L(running_n), L(running_k)
    half = _half_hours(cols, slot, h, starts, points_per_minute, rules, pollutants)
    # the hours' parameters column by column (one list per parameter), then one dict per hour
    columns = [
        _parameter_column(s.mean[i], s.n[i], s.lo[i], s.hi[i], received[i], has_received[i], pph)
        for i in range(p)
    ]
    for j, i in np.argwhere(reasons.any(axis=2)).tolist():
        columns[i][j].reasons = _reason_dicts(reasons[j, i], first[j, i])
    rows = list(zip(*columns, strict=True)) if columns else [()] * h
    out: list[HourAggregate] = []
    for j in range(h):
        params = dict(zip(names, rows[j], strict=True))
        for name in (kp.FLOW_N_DRY, kp.CO2_DRY, kp.CLINKER_RATE):
            params.setdefault(name, ParameterStats(None, 0, pph))
        f, c, k = opt(flow_l[j]), opt(co2m_l[j]), opt(cli_l[j])
        co_mean = opt(com_l[j])
        if eu:
            total = None if f is None or c is None else co2_l[j]
            co_part = None if f is None or co_mean is None else co_l[j]
            short = None
        else:
            total, co_part, short = hour_mass(f, c, co_mean, convention, co2_density)
        inten = None
        if total is not None and k is not None and k > 0:
            inten = int_l[j] if eu else float(em.intensity_kg_per_t(total, k))
        is_valid = (
            valid_l[j]
            if eu
            else all(a[j] >= vf for a in availability) and bool(numbers_usable(total, k, inten))
        )
        measured = total if total is None or co_part is None or not eu else total - co_part
        out.append(
            HourAggregate(
                kiln=kiln,
                plant=plant,
                start_ns=int(starts[j]),
                co2_t=total,
                clinker_t=k,
                intensity_kg_per_t=inten,
                valid=bool(is_valid),
                completeness=comp_l[j],
                params=params,
                revision=revisions[j],
                co_as_co2_t=co_part,
                co2_t_measured=measured,
                convention=convention.value,
                co2_short_tons=short,
                running_fraction=run_n[j] / (run_k[j] * points_per_minute) if run_k[j] else None,
                half_hours=half[j],
            )
        )
    return ColumnHours(out, L(needs_rules | (not eu)), calc, usable_l)


def _opt(x: float) -> float | None:
    return None if x in (np.inf, -np.inf) else x


def _parameter_column(
    mean: Floats,
    n: npt.NDArray[np.int64],
    lo: Floats,
    hi: Floats,
    received: npt.NDArray[np.int64],
    has_received: npt.NDArray[np.bool_],
    expected: int,
) -> list[ParameterStats]:
    """One parameter's stats in every hour, as :func:`analytics.hours.combine` gives them."""
    got = [r if k else None for r, k in zip(received.tolist(), has_received.tolist(), strict=True)]
    return [
        ParameterStats(m, c, expected, _opt(a), _opt(b), {}, r)
        if c
        else ParameterStats(None, 0, expected, None, None, {}, r)
        for m, c, a, b, r in zip(mean.tolist(), n.tolist(), lo.tolist(), hi.tolist(), got, strict=True)
    ]


def _calculated(cli: Floats, fuels: Sequence[Floats], rules: KilnRules) -> list[CalculatedCO2]:
    """:func:`analytics.substitution.calculated_co2` of every hour."""
    calcination = xc.calcination_co2(cli, rules.ef_clinker_t_per_t)
    toc = xc.toc_co2(cli, rules.raw_meal_per_clinker, rules.toc_pct)
    fuel = np.full(len(cli), np.nan)
    if rules.fuels:
        rates = np.stack(fuels, axis=-1)
        fuel = xc.fuel_co2(
            rates,
            [f.ncv_gj_per_t for f in rules.fuels],
            [f.ef_t_per_tj for f in rules.fuels],
            [f.oxidation_factor for f in rules.fuels],
        )
        fuel = np.where(np.isnan(rates).any(axis=-1), np.nan, fuel)
    out = []
    for k, ca, fu, to in zip(cli.tolist(), calcination.tolist(), fuel.tolist(), toc.tolist(), strict=True):
        if k != k:
            out.append(CalculatedCO2())
        elif fu != fu:
            out.append(CalculatedCO2(ca, None, to, None, k))
        else:
            out.append(CalculatedCO2(ca, fu, to, ca + fu + to, k))
    return out


def _half_hours(
    cols: MinuteColumns,
    slot: npt.NDArray[np.int64],
    h: int,
    starts: npt.NDArray[np.int64],
    points_per_minute: int,
    rules: KilnRules,
    pollutants: Sequence[str],
) -> list[list[HalfHourAggregate]]:
    """:func:`analytics.periods.half_hours_from_minutes` of every hour."""
    expected = 30 * points_per_minute
    halves = slot // 30
    run_n = np.bincount(halves, weights=cols.n_running * cols.has_running, minlength=2 * h).astype(np.int64)
    run_k = np.bincount(halves, weights=cols.has_running, minlength=2 * h).astype(np.int64)
    fraction = np.where(run_k > 0, run_n / np.maximum(run_k * points_per_minute, 1), np.nan)
    operating = (run_k == 0) | (fraction >= rules.operating_fraction)
    idx = {name: i for i, name in enumerate(cols.names)}
    wanted = [(name, idx.get(kp.ref_name(name))) for name in pollutants]
    rows = [i for _, i in wanted if i is not None]
    per: dict[str, tuple[list[float | None], list[int], list[bool], list[float | None], list[bool]]] = {}
    if rows:
        sub = MinuteColumns(
            cols.start_ns,
            tuple(cols.names[i] for i in rows),
            cols.n_valid[rows],
            cols.n_expected[rows],
            cols.total[rows],
            cols.lo[rows],
            cols.hi[rows],
            cols.received[rows],
            cols.has_received[rows],
            cols.reason_at,
            cols.n_running,
            cols.has_running,
        )
        s = _sums(sub, slot, 2 * h, 30)
    for name, i in wanted:
        rule = rules.pollutant(name)
        ci, elv = rule.ci_mg_per_nm3, rule.elv_mg_per_nm3
        if i is None:
            none: list[float | None] = [None] * (2 * h)
            per[name] = (none, [0] * (2 * h), [False] * (2 * h), none, [False] * (2 * h))
            continue
        r = rows.index(i)
        mean, n = s.mean[r], s.n[r]
        ok = ~np.isnan(mean) & (n / expected >= rules.half_hour_valid_fraction)
        if ci is not None:
            v = mean - ci
            validated = np.where(ok, np.where(v < 0.0, 0.0, v), np.nan)
        else:
            validated = np.full(2 * h, np.nan)
        above = np.isfinite(validated) & (elv is not None) & (validated > (np.nan if elv is None else elv))
        per[name] = (
            [None if x != x else x for x in mean.tolist()],
            n.tolist(),
            ok.tolist(),
            [None if x != x else x for x in validated.tolist()],
            above.tolist(),
        )
    frac_l = [None if x != x else x for x in fraction.tolist()]
    op_l = operating.tolist()
    out: list[list[HalfHourAggregate]] = []
    for j in range(h):
        pair = []
        for k in (2 * j, 2 * j + 1):
            half = HalfHourAggregate(int(starts[j]) + (k - 2 * j) * HALF_HOUR_NS, op_l[k], frac_l[k])
            for name, _ in wanted:
                rule = rules.pollutant(name)
                mean_l, n_l, ok_l, val_l, above_l = per[name]
                half.pollutants[name] = PollutantHalfHour(
                    mean_l[k],
                    n_l[k],
                    expected,
                    ok_l[k],
                    rule.ci_mg_per_nm3,
                    val_l[k],
                    rule.elv_mg_per_nm3,
                    above_l[k],
                )
            pair.append(half)
        out.append(pair)
    return out
