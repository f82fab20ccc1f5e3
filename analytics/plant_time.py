"""The plant's local calendar as UTC instants: day, month and year boundaries [ns] for the kernels.

Only this module asks ``zoneinfo``; the kernels (:mod:`analytics.periods`, :mod:`analytics.reporting`,
:mod:`analytics.substitution`) take the boundaries as integers or int64 arrays.

Hours stay UTC clock hours. A local day (month, year) starts at the first UTC hour that starts on or
after its local midnight: in a zone with a whole-hour offset that is the local midnight itself; in a
zone with a half- or quarter-hour offset (Asia/Kolkata, Asia/Kathmandu) each hour is counted in the
local day in which it starts, so the day runs from 00:30 (00:15) local time to the same time the next
day. A local midnight that does not exist (a clock change at midnight) starts the day at the first
instant after the gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

NS_PER_S = 1_000_000_000
HOUR_NS = 3600 * NS_PER_S
DEFAULT_ZONE = "UTC"
#: Years whose starts are tabulated for the substitution's reporting period.
FIRST_YEAR, LAST_YEAR = 1970, 2200
#: How a period boundary is placed; reported in the method block.
BOUNDARY_RULE = (
    "days, months and years are local calendar periods of the plant's time zone (IANA, zoneinfo); hours "
    "stay UTC clock hours; a period starts at the first UTC hour starting on or after its local midnight, "
    "so with a half- or quarter-hour offset (e.g. Asia/Kolkata) an hour counts in the local day in which "
    "it starts and the day runs 00:30-00:30 local time; a day with a clock change has 23 or 25 hours "
    "(46 or 50 half-hours)"
)


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValueError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: expected an IANA name such as Asia/Baku") from None


def _ns(t: datetime) -> int:
    return int(t.timestamp()) * NS_PER_S


def _ceil_hour(ns: int) -> int:
    return -(-ns // HOUR_NS) * HOUR_NS


def _local_dt(ns: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ns // NS_PER_S, tz=UTC).astimezone(tz)


@dataclass(frozen=True)
class PlantClock:
    """Local calendar of one time zone."""

    name: str = DEFAULT_ZONE

    @cached_property
    def tz(self) -> ZoneInfo:
        return zone(self.name)

    def midnight_ns(self, d: date) -> int:
        """Start of local day ``d`` [ns]: the first UTC hour starting at or after its midnight."""
        # fold=0 resolves a midnight inside a gap with the offset before it: the instant of the change
        return _ceil_hour(_ns(datetime(d.year, d.month, d.day, tzinfo=self.tz)))

    def date_of(self, ns: int) -> date:
        """The local day whose period holds the instant ``ns``."""
        d = _local_dt(ns, self.tz).date()
        return d - timedelta(days=1) if ns < self.midnight_ns(d) else d

    def day_bounds(self, first: date, last: date) -> npt.NDArray[np.int64]:
        """Starts of the local days ``first`` .. ``last`` and the end of ``last`` [ns]: n + 1 values."""
        n = (last - first).days + 1
        return np.array([self.midnight_ns(first + timedelta(days=i)) for i in range(n + 1)], dtype=np.int64)

    def days_over(self, lo_ns: int, hi_ns: int) -> npt.NDArray[np.int64]:
        """Bounds of the local days that overlap [lo_ns, hi_ns) (see :meth:`day_bounds`)."""
        return self.day_bounds(self.date_of(lo_ns), self.date_of(max(lo_ns, hi_ns - 1)))

    def month_bounds(self, first: date, last: date) -> npt.NDArray[np.int64]:
        """Starts of the local months holding ``first`` .. ``last`` and the end of the last [ns]."""
        n = (last.year - first.year) * 12 + last.month - first.month + 1
        firsts = (divmod(first.year * 12 + first.month - 1 + i, 12) for i in range(n + 1))
        return np.array([self.midnight_ns(date(y, m + 1, 1)) for y, m in firsts], dtype=np.int64)

    @cached_property
    def year_starts_ns(self) -> npt.NDArray[np.int64]:
        """Starts of the local years FIRST_YEAR .. LAST_YEAR [ns], for the substitution's period."""
        return np.array(
            [self.midnight_ns(date(y, 1, 1)) for y in range(FIRST_YEAR, LAST_YEAR + 1)], dtype=np.int64
        )

    def local_iso(self, ns: int) -> str:
        """ISO 8601 local time with its offset, e.g. 2026-03-29T00:00:00+01:00."""
        return _local_dt(ns, self.tz).isoformat()

    def local_of(self, utc_iso: str) -> str:
        """An ISO 8601 time (e.g. a row's ``hour``, ``...Z``) as local time with its offset."""
        return datetime.fromisoformat(utc_iso.replace("Z", "+00:00")).astimezone(self.tz).isoformat()

    def utc_offset(self, ns: int) -> str:
        """The offset in force at ``ns``, e.g. +04:00."""
        return _local_dt(ns, self.tz).isoformat()[19:] or "+00:00"


def period_bounds(clock: PlantClock, start_ns: int, end_ns: int) -> dict[str, str]:
    """A report row's period in UTC (``start``, ``end``) and local time (``start_local``, ``end_local``)."""
    utc = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=start_ns // NS_PER_S)).isoformat()
    utc_end = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=end_ns // NS_PER_S)).isoformat()
    return {
        "start": utc.replace("+00:00", "Z"),
        "end": utc_end.replace("+00:00", "Z"),
        "start_local": clock.local_iso(start_ns),
        "end_local": clock.local_iso(end_ns),
    }


def local_isos(starts: list[int], clock: PlantClock) -> list[str]:
    """:meth:`PlantClock.local_iso` of many times [ns] at once: the offset is looked up at both ends
    of each UTC day they fall in, and per time only in a day where it changes (a zone never changes
    its offset twice within one day)."""
    if not starts:
        return []
    secs = np.asarray(starts, dtype=np.int64) // NS_PER_S
    days = secs // 86_400
    uniq = np.unique(days)
    first = np.array([_offset_s(int(d) * 86_400, clock.tz) for d in uniq.tolist()], dtype=np.int64)
    last = np.array([_offset_s(int(d) * 86_400 + 86_399, clock.tz) for d in uniq.tolist()], dtype=np.int64)
    at = np.searchsorted(uniq, days)
    offsets = first[at]
    for i in np.flatnonzero(first[at] != last[at]).tolist():
        offsets[i] = _offset_s(int(secs[i]), clock.tz)
    text = np.datetime_as_string((secs + offsets).astype("datetime64[s]"), unit="s").tolist()
    suffix = {int(o): _suffix(int(o)) for o in np.unique(offsets).tolist()}
    return [t + suffix[o] for t, o in zip(text, offsets.tolist(), strict=True)]


def _offset_s(s: int, tz: ZoneInfo) -> int:
    offset = datetime.fromtimestamp(s, tz=UTC).astimezone(tz).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _suffix(offset_s: int) -> str:
    """The offset as ``isoformat`` writes it (+01:00, -03:30, +00:00)."""
    return datetime(2000, 1, 1, tzinfo=timezone(timedelta(seconds=offset_s))).isoformat()[19:]
