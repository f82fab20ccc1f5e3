"""Prometheus metrics of one kilnwatch instance, on its own registry (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Counters and gauges shared by the collectors, the pipeline and the store."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.readings = Counter(
            "kilnwatch_readings_total", "Readings received, by source", ["source"], registry=r
        )
        self.rejected = Counter(
            "kilnwatch_rejected_total",
            "Inputs rejected as malformed or implausible, by source, signal and reason",
            ["source", "signal", "reason"],
            registry=r,
        )
        self.flagged = Counter(
            "kilnwatch_flagged_total",
            "Readings kept but flagged (bad status, out of range, NaN), by signal and reason",
            ["signal", "reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "kilnwatch_dead_letters_total", "Rows written to the dead-letter table", ["source"], registry=r
        )
        self.duplicates = Counter(
            "kilnwatch_duplicate_readings_total",
            "Readings offered again with the value and quality already stored for their signal and time:"
            " dropped",
            ["source", "signal"],
            registry=r,
        )
        self.conflicts = Counter(
            "kilnwatch_conflicting_readings_total",
            "Readings offered with another value or quality than the one stored for their signal and time:"
            " refused, kept in the conflict table and as dead letters",
            ["source", "signal"],
            registry=r,
        )
        self.source_connected = Gauge(
            "kilnwatch_source_connected", "1 while a source is connected", ["source"], registry=r
        )
        self.reconnects = Counter(
            "kilnwatch_source_reconnects_total",
            "Connections (re)built by supervisors",
            ["source"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "kilnwatch_pipeline_queue_depth", "Batches waiting in the pipeline queue", registry=r
        )
        self.store_seconds = Histogram(
            "kilnwatch_store_write_seconds", "Time to commit one group of batches to SQLite", registry=r
        )
        self.late_readings = Counter(
            "kilnwatch_late_readings_total",
            "Readings older than an already closed minute",
            ["kiln"],
            registry=r,
        )
        self.minutes_closed = Counter(
            "kilnwatch_minutes_closed_total", "Minutes closed by the engine", ["kiln"], registry=r
        )
