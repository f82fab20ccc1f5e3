"""Kiln-level parameters derived point by point on the grid from the kiln's role signals.

``flow_n_dry``  normal dry stack flow [Nm3/h]: actual wet flow normalised with the stack
                temperature, absolute pressure and H2O of the same grid point (WE1, WE2)
``co2_dry``     CO2 concentration, dry basis [vol %]
``clinker_rate`` clinker production [t/h]
``co_dry``      CO concentration, dry basis [mg/Nm3] (when the kiln has a CO analyser)
``o2_dry``      O2 concentration, dry basis [vol %] (when the kiln has an O2 analyser)
``<p>_ref``     pollutant p (nox, so2, dust, toc, co) at the reference O2, dry [mg/Nm3]
                (IED Annex VI Part 7; WE6): needs the O2 analyser; never applied to CO2

A derived point is valid only where every input point is valid. Dry conversion and O2 correction
are applied per grid point, before averaging [assumption, docs/method.md § 5.6].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from . import corrections as corr
from . import emissions as em
from .gridding import GridSamples
from .rules import POLLUTANT_QUANTITIES
from .signals import KilnSpec, Quantity, SignalInfo

FLOW_N_DRY = "flow_n_dry"
CO2_DRY = "co2_dry"
CLINKER_RATE = "clinker_rate"
CO_DRY = "co_dry"
O2_DRY = "o2_dry"
REF_SUFFIX = "_ref"

Series = tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]


def required_roles(kiln: KilnSpec, signals: Sequence[SignalInfo]) -> list[Quantity]:
    """Roles this kiln needs for its CO2 mass flow, given its signals' bases and conditions."""
    need = [Quantity.FLOW, Quantity.CO2, Quantity.CLINKER_RATE]
    flow = signals[kiln.roles[Quantity.FLOW]] if Quantity.FLOW in kiln.roles else None
    co2 = signals[kiln.roles[Quantity.CO2]] if Quantity.CO2 in kiln.roles else None
    if flow is not None and flow.conditions != "standard":
        need.append(Quantity.TEMPERATURE)
        if Quantity.ABSOLUTE_PRESSURE not in kiln.roles:
            need.append(Quantity.BAROMETRIC_PRESSURE)
    if (flow is not None and flow.moisture_basis != "dry") or (
        co2 is not None and co2.moisture_basis == "wet"
    ):
        need.append(Quantity.H2O)
    return need


def check_kiln(kiln: KilnSpec, signals: Sequence[SignalInfo]) -> None:
    missing = [r.value for r in required_roles(kiln, signals) if r not in kiln.roles]
    if missing:
        raise ValueError(f"kiln {kiln.id} cannot compute CO2 mass flow: no signal for {', '.join(missing)}")


def pollutant_signals(kiln: KilnSpec, signals: Sequence[SignalInfo]) -> dict[str, int]:
    """Pollutant name -> the kiln's first signal measuring it (global index)."""
    out: dict[str, int] = {}
    for g in kiln.signals:
        name = POLLUTANT_QUANTITIES.get(signals[g].quantity)
        if name is not None and name not in out:
            out[name] = g
    return out


def ref_name(pollutant: str) -> str:
    return pollutant + REF_SUFFIX


def derive(
    kiln: KilnSpec,
    signals: Sequence[SignalInfo],
    row: dict[int, int],
    samples: GridSamples,
    reference_o2_pct: float | None = None,
) -> dict[str, Series]:
    """Derived series for one kiln; ``row`` maps a global signal index to its row in ``samples``.

    With ``reference_o2_pct`` and an O2 analyser, also each pollutant at that O2 [mg/Nm3, dry].
    """

    def get(role: Quantity) -> Series:
        r = row[kiln.roles[role]]
        return samples.value[r], samples.valid[r]

    out: dict[str, Series] = {}
    flow_info = signals[kiln.roles[Quantity.FLOW]]
    q, ok = get(Quantity.FLOW)
    h2o: Series | None = get(Quantity.H2O) if Quantity.H2O in kiln.roles else None
    if flow_info.conditions != "standard":
        t, t_ok = get(Quantity.TEMPERATURE)
        if Quantity.ABSOLUTE_PRESSURE in kiln.roles:
            p, p_ok = get(Quantity.ABSOLUTE_PRESSURE)
        else:
            p, p_ok = get(Quantity.BAROMETRIC_PRESSURE)
            if Quantity.STATIC_PRESSURE in kiln.roles:
                ps, ps_ok = get(Quantity.STATIC_PRESSURE)
                p, p_ok = p + ps, p_ok & ps_ok
        q, ok = em.actual_to_standard_flow(q, t, p), ok & t_ok & p_ok
    if flow_info.moisture_basis != "dry" and h2o is not None:
        q, ok = em.wet_to_dry_flow(q, h2o[0]), ok & h2o[1]
    out[FLOW_N_DRY] = _clean(q, ok)

    c, c_ok = get(Quantity.CO2)
    if signals[kiln.roles[Quantity.CO2]].moisture_basis == "wet" and h2o is not None:
        c, c_ok = em.wet_to_dry_concentration(c, h2o[0]), c_ok & h2o[1]
    out[CO2_DRY] = _clean(c, c_ok)
    out[CLINKER_RATE] = _clean(*get(Quantity.CLINKER_RATE))

    if Quantity.CO in kiln.roles:
        co, co_ok = get(Quantity.CO)
        if signals[kiln.roles[Quantity.CO]].moisture_basis == "wet" and h2o is not None:
            co, co_ok = em.wet_to_dry_concentration(co, h2o[0]), co_ok & h2o[1]
        out[CO_DRY] = _clean(co, co_ok)

    if Quantity.O2 in kiln.roles:
        o2, o2_ok = _dry(signals, kiln.roles[Quantity.O2], get(Quantity.O2), h2o)
        out[O2_DRY] = _clean(o2, o2_ok)
        if reference_o2_pct is not None:
            for name, g in pollutant_signals(kiln, signals).items():
                c, c_ok = _dry(signals, g, (samples.value[row[g]], samples.valid[row[g]]), h2o)
                with np.errstate(invalid="ignore", divide="ignore"):
                    ref = corr.o2_reference_correction(c, o2, reference_o2_pct)
                out[ref_name(name)] = _clean(ref, c_ok & o2_ok)
    return out


def _dry(signals: Sequence[SignalInfo], g: int, series: Series, h2o: Series | None) -> Series:
    """A concentration on a dry basis: wet values divided by the dry fraction of the same point."""
    c, ok = series
    if signals[g].moisture_basis == "wet" and h2o is not None:
        return em.wet_to_dry_concentration(c, h2o[0]), ok & h2o[1]
    return c, ok


def _clean(values: npt.NDArray[np.float64], valid: npt.NDArray[np.bool_]) -> Series:
    with np.errstate(invalid="ignore"):
        ok = valid & np.isfinite(values)
    return values, ok
