"""Unit conversion to each quantity's canonical unit: ``canonical = raw * scale + offset``.

Canonical units: flow m3/h (actual or standard per the signal's conditions), temperature [degC],
pressures [kPa] (static: gauge, barometric/absolute: absolute), gas components [vol %],
pollutants [mg/Nm3], clinker and fuel rates [t/h], status codes unitless.

:data:`DEFAULT_RANGE` is the physically possible range of each quantity in its canonical unit: a
signal whose plant file gives no ``range`` gets it, and values outside it are flagged out of range.
"""

from __future__ import annotations

import numpy as np

from .signals import Quantity

_FLOW = {"m3/h": 1.0, "nm3/h": 1.0, "m3/s": 3600.0, "nm3/s": 3600.0, "m3/min": 60.0}
_PRESSURE = {"kpa": 1.0, "pa": 1e-3, "hpa": 0.1, "mbar": 0.1, "bar": 100.0}
_VOL = {"%": 1.0, "vol %": 1.0, "vol%": 1.0, "% vol": 1.0, "ppm": 1e-4}
_MASS_CONC = {"mg/nm3": 1.0, "g/nm3": 1000.0}
_RATE = {"t/h": 1.0, "t/d": 1.0 / 24.0, "kg/h": 1e-3, "kg/s": 3.6}

CANONICAL_UNIT: dict[Quantity, str] = {
    Quantity.FLOW: "m3/h",
    Quantity.TEMPERATURE: "degC",
    Quantity.STATIC_PRESSURE: "kPa",
    Quantity.BAROMETRIC_PRESSURE: "kPa",
    Quantity.ABSOLUTE_PRESSURE: "kPa",
    Quantity.H2O: "vol %",
    Quantity.CO2: "vol %",
    Quantity.O2: "vol %",
    Quantity.CO: "mg/Nm3",
    Quantity.NOX: "mg/Nm3",
    Quantity.SO2: "mg/Nm3",
    Quantity.DUST: "mg/Nm3",
    Quantity.TOC: "mg/Nm3",
    Quantity.CLINKER_RATE: "t/h",
    Quantity.FUEL_RATE: "t/h",
    Quantity.STATUS: "",
}


#: Physically possible range of each quantity [canonical unit], for signals without their own range.
#: Generous on purpose (a plant's own ``range`` is tighter): it catches garbage, e.g. a flow of
#: 1e308 that would overflow the hourly CO2, not unusual operation.
DEFAULT_RANGE: dict[Quantity, tuple[float, float]] = {
    Quantity.FLOW: (0.0, 1e7),  # m3/h; a 12 000 t/d kiln's stack moves ~1.5e6 m3/h
    Quantity.TEMPERATURE: (-50.0, 1500.0),  # degC; also keeps T + 273.15 well away from 0
    Quantity.STATIC_PRESSURE: (-101.325, 1000.0),  # kPa gauge; not below vacuum
    Quantity.BAROMETRIC_PRESSURE: (50.0, 110.0),  # kPa; sea level to ~5500 m altitude
    Quantity.ABSOLUTE_PRESSURE: (10.0, 1100.0),  # kPa
    Quantity.H2O: (0.0, 100.0),  # vol %
    Quantity.CO2: (0.0, 100.0),
    Quantity.O2: (0.0, 100.0),
    Quantity.CO: (0.0, 1e7),  # mg/Nm3; 100 vol % CO is 1.25e6 mg/Nm3
    Quantity.NOX: (0.0, 1e7),
    Quantity.SO2: (0.0, 1e7),
    Quantity.DUST: (0.0, 1e7),
    Quantity.TOC: (0.0, 1e7),
    Quantity.CLINKER_RATE: (0.0, 1e4),  # t/h; the largest kilns make ~550 t/h
    Quantity.FUEL_RATE: (0.0, 1e4),  # t/h
    Quantity.STATUS: (-np.inf, np.inf),  # codes: the status map decides
}


def _table(quantity: Quantity) -> dict[str, float]:
    if quantity is Quantity.FLOW:
        return _FLOW
    if quantity in (Quantity.STATIC_PRESSURE, Quantity.BAROMETRIC_PRESSURE, Quantity.ABSOLUTE_PRESSURE):
        return _PRESSURE
    if quantity in (Quantity.H2O, Quantity.CO2, Quantity.O2):
        return _VOL
    if quantity in (Quantity.CO, Quantity.NOX, Quantity.SO2, Quantity.DUST, Quantity.TOC):
        return _MASS_CONC
    if quantity in (Quantity.CLINKER_RATE, Quantity.FUEL_RATE):
        return _RATE
    return {"": 1.0}


def accepted_units(quantity: Quantity) -> list[str]:
    """Units the configuration may give for a quantity (case-insensitive)."""
    if quantity is Quantity.TEMPERATURE:
        return ["degC", "°C", "C", "K"]
    return sorted(_table(quantity))


def conversion(quantity: Quantity, unit: str) -> tuple[float, float]:
    """(scale, offset) that bring ``unit`` to the canonical unit; ValueError if not accepted."""
    u = unit.strip().lower()
    if quantity is Quantity.TEMPERATURE:
        if u in ("degc", "°c", "c"):
            return 1.0, 0.0
        if u == "k":
            return 1.0, -273.15
        raise ValueError(
            f"unit {unit!r} is not a temperature unit; expected one of {accepted_units(quantity)}"
        )
    table = _table(quantity)
    if u not in table:
        raise ValueError(
            f"unit {unit!r} does not fit quantity {quantity.value!r}; "
            f"expected one of {accepted_units(quantity)}"
        )
    return table[u], 0.0
