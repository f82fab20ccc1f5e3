"""Time parameters of the API: ISO 8601 in, ns since epoch out, errors as 422 with a reason.

Times are accepted from 1970-01-01 to 2200-01-01 (UTC): ns since the epoch then fit in the
store's 64-bit integers with room for the spans the routes add."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from fastapi import HTTPException

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_RANGE = f"from {EARLIEST.isoformat().replace('+00:00', 'Z')} to {LATEST.isoformat().replace('+00:00', 'Z')}"


def _in_range(t: datetime, name: str, value: str) -> int:
    if not EARLIEST <= t <= LATEST:
        raise HTTPException(422, detail=f"{name}={value!r} is outside the supported times ({_RANGE})")
    return int(t.timestamp() * 1_000_000) * 1000


def parse_time(value: str, name: str) -> int:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError) as err:
        raise HTTPException(
            422, detail=f"{name}={value!r} is not an ISO 8601 time such as 2026-11-28T10:00:00Z"
        ) from err
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return _in_range(t, name, value)


def parse_day(value: str, name: str) -> int:
    """A UTC day ``YYYY-MM-DD``: its start [ns]."""
    try:
        d = date.fromisoformat(value)
    except (ValueError, OverflowError) as err:
        raise HTTPException(422, detail=f"{name}={value!r} is not a date such as 2026-11-28") from err
    return _in_range(datetime(d.year, d.month, d.day, tzinfo=UTC), name, value)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso(ns: int) -> str:
    """ISO 8601 UTC to the microsecond (exact: no detour through a float)."""
    return (_EPOCH + timedelta(microseconds=ns // 1000)).isoformat().replace("+00:00", "Z")


def time_range(start: str | None, end: str | None, default_span_ns: int, now_ns: int) -> tuple[int, int]:
    end_ns = parse_time(end, "end") if end else now_ns
    start_ns = parse_time(start, "start") if start else end_ns - default_span_ns
    if start_ns >= end_ns:
        raise HTTPException(422, detail=f"start ({iso(start_ns)}) must be before end ({iso(end_ns)})")
    if end_ns - start_ns > 3 * 366 * 24 * 3600 * 10**9:
        raise HTTPException(422, detail="a time range may span at most 3 years")
    return start_ns, end_ns
