"""Prometheus metrics of the outbox and the InfluxDB writer, on the instance's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class InfluxMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.outbox_rows = Gauge("kilnwatch_outbox_rows", "Outbox rows waiting for InfluxDB", registry=r)
        self.outbox_bytes = Gauge(
            "kilnwatch_outbox_bytes", "Line protocol waiting in the outbox [bytes]", registry=r
        )
        self.outbox_oldest_age = Gauge(
            "kilnwatch_outbox_oldest_age_seconds", "How long the oldest outbox row has waited [s]", registry=r
        )
        self.outbox_budget_used = Gauge(
            "kilnwatch_outbox_budget_used_ratio",
            "Outbox use as a fraction of its budget (the larger of bytes and age); >= 1 holds MQTT acks",
            registry=r,
        )
        self.write_seconds = Histogram(
            "kilnwatch_influx_write_seconds",
            "Duration of one accepted write request to InfluxDB [s]",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.points_written = Counter(
            "kilnwatch_influx_points_written_total", "Points InfluxDB accepted", registry=r
        )
        self.retries = Counter(
            "kilnwatch_influx_retries_total",
            "Write requests retried, by reason (connection, http_429, http_5xx)",
            ["reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "kilnwatch_influx_dead_letter_points_total",
            "Points InfluxDB rejected as malformed, moved to the dead-letter table",
            registry=r,
        )
        self.config_error = Gauge(
            "kilnwatch_influx_config_error",
            "1 while InfluxDB refuses writes for a configuration reason (401/403/404)",
            registry=r,
        )
