"""Engineering units as servers and gateways give them, mapped to the unit spellings kilnwatch accepts."""

from __future__ import annotations

import re

#: OPC UA's namespace of UNECE Rec. 20 unit codes in EUInformation.NamespaceUri.
UNECE_URI = "http://www.opcfoundation.org/UA/units/un/cefact"

#: UNECE Rec. 20 code -> kilnwatch unit (analytics.units). mg/m3 (GP) is read as mg/Nm3: pollutant
#: concentrations are reported at standard conditions, which the draft asks to check.
UNECE: dict[str, str] = {
    "MQH": "m3/h",
    "MQS": "m3/s",
    "CEL": "degC",
    "KEL": "K",
    "KPA": "kPa",
    "PAL": "Pa",
    "A97": "hPa",
    "MBR": "mbar",
    "BAR": "bar",
    "P1": "%",
    "59": "ppm",
    "GP": "mg/Nm3",
    "A93": "g/Nm3",
    "E18": "t/h",
    "L71": "t/d",
    "E93": "kg/h",
    "KGS": "kg/s",
}

_SPELLINGS: dict[str, str] = {
    "m3/h": "m3/h",
    "m³/h": "m3/h",
    "nm3/h": "Nm3/h",
    "nm³/h": "Nm3/h",
    "m3/s": "m3/s",
    "m³/s": "m3/s",
    "nm3/s": "Nm3/s",
    "m3/min": "m3/min",
    "°c": "degC",
    "degc": "degC",
    "deg c": "degC",
    "c": "degC",
    "k": "K",
    "kpa": "kPa",
    "pa": "Pa",
    "hpa": "hPa",
    "mbar": "mbar",
    "bar": "bar",
    "%": "%",
    "vol%": "vol %",
    "vol %": "vol %",
    "% vol": "vol %",
    "%vol": "vol %",
    "%v": "vol %",
    "ppm": "ppm",
    "ppmv": "ppm",
    "mg/nm3": "mg/Nm3",
    "mg/nm³": "mg/Nm3",
    "mg/m3": "mg/Nm3",
    "mg/m³": "mg/Nm3",
    "g/nm3": "g/Nm3",
    "t/h": "t/h",
    "tph": "t/h",
    "t/d": "t/d",
    "tpd": "t/d",
    "kg/h": "kg/h",
    "kg/s": "kg/s",
}


def unece_code(unit_id: int) -> str:
    """The UNECE code packed in an EUInformation.UnitId (its characters as bytes), '' if none."""
    if unit_id <= 0:
        return ""
    chars = []
    while unit_id:
        chars.append(chr(unit_id & 0xFF))
        unit_id >>= 8
    code = "".join(reversed(chars))
    return code if code.isascii() and code.isprintable() else ""


def from_display_name(text: str) -> str | None:
    """kilnwatch's spelling of a unit name (``vol%`` -> ``vol %``), None if it is not one kilnwatch knows."""
    key = re.sub(r"\s+", " ", text.strip().lower())
    return _SPELLINGS.get(key) or _SPELLINGS.get(key.replace(" ", ""))


def from_eu_information(namespace_uri: str | None, unit_id: int, display_name: str) -> str | None:
    """kilnwatch's unit for an EUInformation: its display name when kilnwatch knows that spelling
    (it says more, e.g. ``vol%`` rather than the percent of code P1), else its UNECE code."""
    by_name = from_display_name(display_name) if display_name else None
    if by_name is not None:
        return by_name
    if namespace_uri and namespace_uri.rstrip("/") != UNECE_URI:
        return None
    return UNECE.get(unece_code(unit_id))
