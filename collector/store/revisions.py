"""Shared by the operators' tables (annotations, manual values): rows that are revised, never erased.

Each change appends a row ``(id, revision, ...)``; the current state of an entry is its highest
revision. SQLite triggers refuse UPDATE and DELETE, as on the audit table, so the history of every
entry stays in the store file. Each table opens its own connection (API handlers write from worker
threads while the pipeline writes readings on its own connection; WAL mode serialises them).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from .connection import connect


def append_only(table: str) -> str:
    """Triggers that make ``table`` append-only."""
    return f"""
CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} rows are revised, never changed'); END;
CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} rows are revised, never deleted'); END;
"""


class RevisedTable:
    """A connection to the store file with the schema of one revised table applied. Thread-safe."""

    def __init__(self, path: Path | str, schema: str) -> None:
        self.path = Path(path)
        self._conn = connect(self.path)
        self._conn.executescript(schema)
        self.lock = threading.Lock()

    @property
    def conn(self) -> sqlite3.Connection:
        return self._conn

    def close(self) -> None:
        with self.lock:
            self._conn.close()
