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
Seconds = npt.NDArray[np.int64]
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
    """:meth:`PlantClock.local_iso` of many times [ns] at once."""
    secs, offsets = _local_offsets(starts, clock)
    text = _iso_array(secs, offsets)
    if text is not None:
        return text.astype(np.str_).tolist()
    local = np.datetime_as_string((secs + offsets).astype("datetime64[s]"), unit="s").tolist()
    suffix = {int(o): _suffix(int(o)) for o in np.unique(offsets).tolist()}
    return [t + suffix[o] for t, o in zip(local, offsets.tolist(), strict=True)]


def local_iso_json(starts: list[int], clock: PlantClock) -> list[bytes]:
    """:func:`local_isos` as JSON strings (quoted: an ISO time holds nothing to escape)."""
    secs, offsets = _local_offsets(starts, clock)
    text = _iso_array(secs, offsets, quote=True)
    if text is not None:
        return text.tolist()
    return [b'"%b"' % t.encode() for t in local_isos(starts, clock)]


def _local_offsets(starts: list[int], clock: PlantClock) -> tuple[Seconds, Seconds]:
    """UTC seconds of ``starts`` and the zone's offset at each [s]: looked up at the start of each UTC
    day they fall in and of the day after, and per time only in a day where the two differ (a zone
    never changes its offset twice within one day)."""
    secs = np.asarray(starts, dtype=np.int64) // NS_PER_S
    if not len(secs):
        return secs, secs.copy()
    days = secs // 86_400
    edges = np.union1d(days, days + 1)
    at_edge = np.array([_offset_s(int(d) * 86_400, clock.tz) for d in edges.tolist()], dtype=np.int64)
    at = np.searchsorted(edges, days)
    offsets = at_edge[at]
    for i in np.flatnonzero(offsets != at_edge[at + 1]).tolist():
        offsets[i] = _offset_s(int(secs[i]), clock.tz)
    return secs, offsets


def _iso_array(secs: Seconds, offsets: Seconds, quote: bool = False) -> npt.NDArray[np.bytes_] | None:
    """``YYYY-MM-DDTHH:MM:SS+HH:MM`` of UTC ``secs`` at ``offsets``, written digit by digit as
    columns of a byte matrix (no per-time Python); None where this form does not hold (a year
    outside 1000-9999, an offset in seconds as old local mean times had): the caller formats
    those one by one."""
    local = secs + offsets
    days = local // 86_400
    tod = local - days * 86_400
    day = days.astype("datetime64[D]")
    month_start = day.astype("datetime64[M]")
    year = month_start.astype("datetime64[Y]").astype(np.int64) + 1970
    if len(secs) and (
        year.min() < 1000 or year.max() > 9999 or (offsets % 60).any() or (np.abs(offsets) >= 86_400).any()
    ):
        return None
    q = int(quote)
    out = np.empty((len(secs), 25 + 2 * q), dtype=np.uint8)
    if q:
        out[:, 0] = out[:, -1] = ord('"')
    off_min = np.abs(offsets) // 60
    numbers = (
        (0, year, 4),
        (5, (month_start.astype(np.int64) % 12) + 1, 2),
        (8, (day - month_start).astype(np.int64) + 1, 2),
        (11, tod // 3600, 2),
        (14, tod // 60 % 60, 2),
        (17, tod % 60, 2),
        (20, off_min // 60, 2),
        (23, off_min % 60, 2),
    )
    for at, value, width in numbers:
        for k in range(width):
            out[:, q + at + k] = value // 10 ** (width - 1 - k) % 10 + ord("0")
    for at, char in ((4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"), (22, ":")):
        out[:, q + at] = ord(char)
    out[:, q + 19] = np.where(offsets < 0, ord("-"), ord("+"))
    return out.view(f"S{out.shape[1]}").ravel()


def _offset_s(s: int, tz: ZoneInfo) -> int:
    offset = datetime.fromtimestamp(s, tz=tz).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _suffix(offset_s: int) -> str:
    """The offset as ``isoformat`` writes it (+01:00, -03:30, +00:00)."""
    return datetime(2000, 1, 1, tzinfo=timezone(timedelta(seconds=offset_s))).isoformat()[19:]
