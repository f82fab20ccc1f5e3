"""The InfluxDB historian: line protocol, the outbox writer, its error classes and metrics."""
