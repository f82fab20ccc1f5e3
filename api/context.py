"""What the API reads, as small protocols that the wiring fills in (no import of the wiring)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry

from analytics.aggregates import HourAggregate, MinuteAggregate
from analytics.engine import SignalNow
from analytics.signals import KilnSpec, SignalTable
from api.events import Broadcaster
from api.limits import ApiLimits
from api.page_config import AlarmSettings, PageSettings, StreamSettings
from api.security.auth import AuthConfig


class LiveSource(Protocol):
    #: Grows with every change of what the methods below return.
    changes: int

    def newest_minute(self, kiln_id: str) -> MinuteAggregate | None: ...
    def recent_minutes(self, kiln_id: str, since_ns: int) -> list[MinuteAggregate]: ...
    def signal_now(self, index: int) -> SignalNow | None: ...


class ProvisionalSource(Protocol):
    """Each kiln's running minute as it was last computed (the wiring computes it once a second)."""

    def row(self, kiln_id: str) -> dict[str, Any] | None:
        """The ``tables.RUNNING_MINUTE`` row of the kiln's running minute, None without one."""
        ...


class HistorySource(Protocol):
    """The store's query side; called from a worker thread."""

    def hours(self, kiln: str, start_ns: int, end_ns: int) -> list[HourAggregate]: ...


class ReadinessSource(Protocol):
    def not_ready_reasons(self) -> list[str]: ...
    def warning_reasons(self) -> list[str]: ...


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
    #: Closed minutes and hours as they happen: {"type": "minute"|"hour", "kiln": id, "start_ns": int}.
    events: Broadcaster = field(default_factory=Broadcaster)
    #: Source health for alarms: name -> {"connected", "kind", "last_error", ...}.
    sources: Any = None
    #: Alarm limits and times of the control-room page and /api/v1/alarms.
    alarms: AlarmSettings = field(default_factory=AlarmSettings)
    #: Keep-alive and reconnect timing of /api/v1/stream.
    stream: StreamSettings = field(default_factory=StreamSettings)
    #: Rows per JSON page, concurrent reports, stream clients (default: KILNWATCH_API_* or built-in).
    limits: ApiLimits = field(default_factory=ApiLimits)
    #: What the control-room page is told (the plant's time zone).
    page: PageSettings = field(default_factory=PageSettings)
    #: Tokens and allowed hosts (default: no tokens, any Host: the wiring decides for a server).
    auth: AuthConfig = field(default_factory=AuthConfig)
    #: The append-only audit trail (collector.store.audit.AuditTrail); None: nothing is recorded.
    audit: Any = None
    #: Durable alarm lifecycle state (collector.store.alarm_state.AlarmStateStore); None: in memory only.
    alarm_store: Any = None
    #: ``is_stopped(kiln_id, now_ns) -> bool``: the kiln is not operating (its alarms are suppressed by
    #: design); None: the engine's operating state (the newest minute ran no grid point).
    is_stopped: Any = None
    #: Operators' annotations (collector.store.annotations.AnnotationStore); None: none kept.
    annotations: Any = None
    #: Lab and production values (collector.store.manual_data.ManualDataStore); None: none kept.
    manual: Any = None
    #: Called on the loop after a kiln's stops or manual values changed: (kiln, start_ns, end_ns or
    #: None for "up to now"); the wiring gives them to the engine, which recomputes those hours.
    overrides_changed: Any = None
    #: Grouping, fuel classes and targets of the KPI report (analytics.kpi.KpiSetup); None: by plant.
    kpi: Any = None
    #: The running minutes (provisional values of /live and the stream); None: none are shown.
    provisional: ProvisionalSource | None = None

    #: /live bodies by kiln: (live.changes when built, body, end of its minute [s since 1970]).
    live_bodies: dict[str, tuple[int, dict[str, Any], float | None]] = field(default_factory=dict, repr=False)

    def kiln(self, kiln_id: str) -> KilnSpec | None:
        return next((k for k in self.kilns if k.id == kiln_id), None)


class StoredHourRows(Protocol):
    """Hourly report rows as the store keeps them, column by column (``collector.store.hourly_forms``)."""

    ts: list[int]
    change_seq: list[int]
    #: "report": the JSON row, "flat": its CSV cells as JSON, "line": its RFC 4180 line (local times
    #: as markers, ``analytics.stored_rows``)
    text: list[bytes]
    newest_seq: int  # the store's newest change number when the rows were read


@runtime_checkable
class ChangeSource(Protocol):
    """A history that numbers its changes and keeps the hourly report rows (the local store);
    called from a worker thread."""

    def newest_change_seq(self) -> int: ...
    def hourly_rows(
        self,
        kiln: str,
        start_ns: int,
        end_ns: int,
        changed_since: int | None = None,
        limit: int = -1,
        form: Literal["report", "flat", "line"] = "report",
    ) -> StoredHourRows: ...
    def changed_hours(
        self, kilns: Sequence[str], changed_since: int, start_ns: int, end_ns: int
    ) -> list[int]: ...
