"""The results server's address space, declared once: every variable with its type, unit and meaning,
and the OPC UA status a value carries (Good / Uncertain / Bad following kilnwatch's validity)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from asyncua import ua

from .view import KILN_ALARMS, AlarmState, KilnResults

NAMESPACE: Final = "urn:kilnwatch:results"
ROOT: Final = "results"
UNECE_URI: Final = "http://www.opcfoundation.org/UA/units/un/cefact"
#: kilnwatch's units -> UNECE Rec. 20 codes (none for kg/t: its EUInformation has a display name only).
UNECE: Final = {"t/h": "E18", "t": "TNE", "s": "SEC", "1": "C62"}
_ISO_Z = "+00:00"


def unece_unit_id(code: str) -> int:
    """EUInformation.UnitId of a UNECE code: its characters as bytes of one integer (OPC UA Part 8)."""
    out = 0
    for ch in code:
        out = (out << 8) | ord(ch)
    return out


def eu_information(unit: str) -> ua.EUInformation:
    code = UNECE.get(unit)
    return ua.EUInformation(
        NamespaceUri=UNECE_URI if code else None,
        UnitId=ua.Int32(unece_unit_id(code) if code else -1),
        DisplayName=ua.LocalizedText(unit),
        Description=ua.LocalizedText(unit),
    )


def parse_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", _ISO_Z))


def utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def status_code(code: int) -> ua.StatusCode:
    return ua.StatusCode(ua.UInt32(code))


def live_status(r: KilnResults) -> ua.StatusCode:
    """Good: a valid minute, fresh; Uncertain: valid but old (stale or catching up); Bad: invalid."""
    if r.minute_start_ns is None:
        return status_code(ua.StatusCodes.BadWaitingForInitialData)
    if not r.live["valid"]:
        return status_code(ua.StatusCodes.Bad)
    if r.stale:
        return status_code(ua.StatusCodes.UncertainLastUsableValue)
    return status_code(ua.StatusCodes.Good)


def hour_status(r: KilnResults) -> ua.StatusCode:
    """Good: a valid hour; Uncertain: invalid but reported with substitutes; Bad: invalid, no value."""
    if r.hour is None:
        return status_code(ua.StatusCodes.BadWaitingForInitialData)
    if r.hour["valid"]:
        return status_code(ua.StatusCodes.Good)
    if r.hour["co2_t"] is not None and r.hour["co2_t_substituted"]:
        return status_code(ua.StatusCodes.UncertainSubstituteValue)
    return status_code(ua.StatusCodes.Bad)


def _present(part: str) -> Callable[[KilnResults], ua.StatusCode]:
    def status(r: KilnResults) -> ua.StatusCode:
        missing = r.minute_start_ns is None if part == "live" else r.hour is None
        code = ua.StatusCodes.BadWaitingForInitialData if missing else ua.StatusCodes.Good
        return status_code(code)

    return status


@dataclass(frozen=True)
class KilnVariable:
    """One variable of a kiln: ``<kiln>.<folder>.<name>``; ``get`` its value from the kiln's results."""

    folder: str  # live | hour
    name: str
    variant: ua.VariantType
    unit: str
    description: str
    get: Callable[[KilnResults], Any]
    status: Callable[[KilnResults], ua.StatusCode]


def _live(key: str) -> Callable[[KilnResults], Any]:
    return lambda r: r.live[key]


def _hour(key: str) -> Callable[[KilnResults], Any]:
    return lambda r: None if r.hour is None else r.hour[key]


_D, _B, _T, _U = ua.VariantType.Double, ua.VariantType.Boolean, ua.VariantType.DateTime, ua.VariantType.UInt32
KILN_VARIABLES: Final = (
    KilnVariable("live", "co2_t_per_h", _D, "t/h", "CO2 of the newest closed minute", _live("co2_t_per_h"),
                 live_status),
    KilnVariable("live", "clinker_t_per_h", _D, "t/h", "clinker of the newest closed minute",
                 _live("clinker_t_per_h"), live_status),
    KilnVariable("live", "intensity_kg_per_t", _D, "kg/t", "CO2 per tonne of clinker, newest minute",
                 _live("intensity_kg_per_t"), live_status),
    KilnVariable("live", "valid", _B, "", "the newest minute is valid", _live("valid"), _present("live")),
    KilnVariable("live", "minute_start", _T, "", "start of the newest closed minute (UTC)",
                 lambda r: parse_iso(r.live["time"]), _present("live")),
    KilnVariable("live", "age_s", _D, "s", "wall clock minus the end of that minute", _live("age_s"),
                 _present("live")),
    KilnVariable("hour", "hour_start", _T, "", "start of the newest closed hour (UTC)",
                 lambda r: parse_iso(None if r.hour is None else r.hour["hour"]), _present("hour")),
    KilnVariable("hour", "co2_t", _D, "t", "reported CO2 of that hour (substitutes, CO as CO2)",
                 _hour("co2_t"), hour_status),
    KilnVariable("hour", "clinker_t", _D, "t", "clinker produced in that hour", _hour("clinker_t"),
                 hour_status),
    KilnVariable("hour", "intensity_kg_per_t", _D, "kg/t", "CO2 per tonne of clinker of that hour",
                 _hour("intensity_kg_per_t"), hour_status),
    KilnVariable("hour", "valid", _B, "", "the hour met the validity rule", _hour("valid"), _present("hour")),
    KilnVariable("hour", "completeness", _D, "1", "lowest availability of the required parameters",
                 _hour("completeness"), _present("hour")),
    KilnVariable("hour", "revision", _U, "", "times late data recomputed the hour", _hour("revision"),
                 _present("hour")),
)  # fmt: skip


#: The value of a variable that has none yet (its status says why): OPC UA's null of each type.
_EMPTY: Final[dict[ua.VariantType, Any]] = {
    ua.VariantType.Double: float("nan"),
    ua.VariantType.Boolean: False,
    ua.VariantType.UInt32: 0,
    ua.VariantType.String: "",
    ua.VariantType.DateTime: datetime(1601, 1, 1, tzinfo=UTC),
}


def variant(value: Any, kind: ua.VariantType) -> ua.Variant:
    """A value of its declared type (the server refuses another); a missing one is its type's null."""
    if value is None:
        return ua.Variant(_EMPTY[kind], kind)
    if kind is ua.VariantType.Double:
        return ua.Variant(float(value), kind)
    return ua.Variant(value, kind)


def source_time(folder: str, name: str, r: KilnResults, now_ns: int) -> datetime:
    """A result belongs to its minute or hour (the start, as OPC UA aggregates are stamped); the age
    is of now."""
    if name == "age_s":
        return utc(now_ns)
    start = r.minute_start_ns if folder == "live" else r.hour_start_ns
    return utc(now_ns if start is None else start)


def alarm_values(state: AlarmState) -> tuple[bool, str]:
    return state.active, state.message


__all__ = ["KILN_ALARMS", "KILN_VARIABLES", "NAMESPACE", "KilnVariable", "eu_information"]
