"""Time parameters of the API: ISO 8601 in, ns since epoch out, errors as 422 with a reason."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import HTTPException


def parse_time(value: str, name: str) -> int:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise HTTPException(
            422, detail=f"{name}={value!r} is not an ISO 8601 time such as 2026-11-28T10:00:00Z"
        ) from err
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1_000_000) * 1000


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


def time_range(start: str | None, end: str | None, default_span_ns: int, now_ns: int) -> tuple[int, int]:
    end_ns = parse_time(end, "end") if end else now_ns
    start_ns = parse_time(start, "start") if start else end_ns - default_span_ns
    if start_ns >= end_ns:
        raise HTTPException(422, detail=f"start ({iso(start_ns)}) must be before end ({iso(end_ns)})")
    if end_ns - start_ns > 3 * 366 * 24 * 3600 * 10**9:
        raise HTTPException(422, detail="a time range may span at most 3 years")
    return start_ns, end_ns
