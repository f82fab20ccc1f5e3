"""The durable store: SQLite readings (first write wins), conflicts, dead letters, retention, the outbox."""
