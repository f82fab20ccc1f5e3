"""What the API reads, as small protocols that the wiring fills in (no import of the wiring)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from analytics.aggregates import HourAggregate, MinuteAggregate
from analytics.engine import SignalNow
from analytics.signals import KilnSpec, SignalTable


class LiveSource(Protocol):
    def newest_minute(self, kiln_id: str) -> MinuteAggregate | None: ...
    def recent_minutes(self, kiln_id: str, since_ns: int) -> list[MinuteAggregate]: ...
    def signal_now(self, index: int) -> SignalNow | None: ...


class HistorySource(Protocol):
    """The store's query side; called from a worker thread."""

    def hours(self, kiln: str, start_ns: int, end_ns: int) -> list[HourAggregate]: ...


class ReadinessSource(Protocol):
    def not_ready_reasons(self) -> list[str]: ...


@dataclass
class ApiContext:
    table: SignalTable
    kilns: Sequence[KilnSpec]
    live: LiveSource
    history: HistorySource
    readiness: ReadinessSource
    registry: CollectorRegistry
    #: Rules used for the numbers (density, validity thresholds, reference conditions...).
    method: dict[str, Any] = field(default_factory=dict)
    kiln_names: dict[str, str] = field(default_factory=dict)

    def kiln(self, kiln_id: str) -> KilnSpec | None:
        return next((k for k in self.kilns if k.id == kiln_id), None)
