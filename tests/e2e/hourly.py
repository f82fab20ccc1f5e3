"""Reading hourly rows of a running kilnwatch for the end-to-end tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import httpx

NS = 10**9
HOUR_NS = 3600 * NS
KILNS = ("kiln1", "kiln2")


def ns(iso: str) -> int:
    """ISO 8601 UTC (``...Z``) -> [ns since epoch]."""
    return round(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1e6) * 1000


def iso(t_ns: int) -> str:
    """[ns since epoch] -> ISO 8601 UTC with ``Z``."""
    return datetime.fromtimestamp(t_ns / NS, UTC).isoformat().replace("+00:00", "Z")


def hours_rows(
    get: Callable[..., httpx.Response], kiln: str, wanted: Iterable[int], ledger: bool = False
) -> dict[int, dict[str, Any]]:
    """The hourly rows of ``kiln`` whose hour starts at one of ``wanted`` [ns], by start."""
    wanted = set(wanted)
    params: dict[str, Any] = {"start": "2026-01-01T00:00:00Z"}
    if ledger:
        params["ledger"] = "true"
    rows = get(f"/api/v1/kilns/{kiln}/hourly", params=params).json()
    return {ns(r["hour"]): r for r in rows if ns(r["hour"]) in wanted}


def hour_of_every_kiln(get: Callable[..., httpx.Response], hour: int) -> dict[str, dict[str, Any]] | None:
    """The rows (with the ledger) of the hour starting at ``hour`` [ns] of every kiln, once all have it."""
    rows = {kiln: hours_rows(get, kiln, [hour], ledger=True).get(hour) for kiln in KILNS}
    return None if any(r is None for r in rows.values()) else rows  # type: ignore[return-value]


def stack_co2_t(row: dict[str, Any]) -> float:
    """The hour's measured CO2 [t]: ``co2_t_measured`` where the API reports it, else ``co2_t``."""
    measured = row.get("co2_t_measured")
    return float(row["co2_t"] if measured is None else measured)


def last_full_hour_end(now_ns: int) -> int:
    """End of the newest clock hour that has fully passed [ns]."""
    return now_ns // HOUR_NS * HOUR_NS


#: Simulated time replayed before the hour a test waits for [ns]: the service connects meanwhile.
REPLAY_LEAD_NS = 30 * 60 * NS


def replay_last_hour(now_ns: int) -> tuple[float, int]:
    """(backfill [h], start of the newest full clock hour [ns]): simulated time starts
    ``REPLAY_LEAD_NS`` before that hour, so that a service started with the simulators (it reads no
    server history) sees the whole hour even when it takes long to start."""
    hour = last_full_hour_end(now_ns) - HOUR_NS
    return (now_ns - hour + REPLAY_LEAD_NS) / HOUR_NS, hour
