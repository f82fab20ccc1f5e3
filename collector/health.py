"""Health of each source, as the supervisors see it; the API's /readyz reads it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class SourceHealth:
    """State of one source (an OPC UA server or an MQTT broker connection)."""

    name: str
    kind: str
    connected: bool = False
    last_value_wall: float | None = None
    last_event_ns: int | None = None
    connects: int = 0
    errors: int = 0
    last_error: str | None = None
    since_wall: float = field(default_factory=time.time)

    def mark_connected(self) -> None:
        self.connected = True
        self.connects += 1
        self.since_wall = time.time()

    def mark_disconnected(self, reason: str) -> None:
        self.connected = False
        self.last_error = reason
        self.since_wall = time.time()

    def mark_error(self, reason: str) -> None:
        self.errors += 1
        self.last_error = reason

    def mark_values(self, newest_event_ns: int) -> None:
        self.last_value_wall = time.time()
        if self.last_event_ns is None or newest_event_ns > self.last_event_ns:
            self.last_event_ns = newest_event_ns

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "connected": self.connected,
            "since": self.since_wall,
            "last_value_age_s": None if self.last_value_wall is None else time.time() - self.last_value_wall,
            "connects": self.connects,
            "errors": self.errors,
            "last_error": self.last_error,
        }


class HealthRegistry:
    """All sources of one kilnwatch instance, plus named problems (e.g. a writer's config error)."""

    def __init__(self) -> None:
        self.sources: dict[str, SourceHealth] = {}
        self.problems: dict[str, str] = {}
        self.warnings: dict[str, str] = {}

    def source(self, name: str, kind: str) -> SourceHealth:
        if name not in self.sources:
            self.sources[name] = SourceHealth(name=name, kind=kind)
        return self.sources[name]

    def warning_reasons(self) -> list[str]:
        return list(self.warnings.values())

    def not_ready_reasons(self) -> list[str]:
        reasons = [
            f"{s.kind} source {s.name} is not connected" + (f": {s.last_error}" if s.last_error else "")
            for s in self.sources.values()
            if not s.connected
        ]
        reasons.extend(self.problems.values())
        return reasons
