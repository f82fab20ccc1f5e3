"""The audit trail: one append-only table of what people (and start-ups) changed.

Every acknowledge, shelve, annotation, manual value, import and configuration change seen at
start-up is one row: who (the token's name), when, what (``action`` on ``subject``), the state
before and after (JSON), and why. SQLite triggers refuse UPDATE and DELETE on the table, so nothing
in kilnwatch can rewrite or remove a row; the file's own permissions guard it against the rest.

The trail lives in the local store's file and opens its own connection: API handlers append from
worker threads while the pipeline writes readings on its own connection (WAL mode serialises them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .connection import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at_ns INTEGER NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, subject TEXT NOT NULL, before TEXT, after TEXT, reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON audit(at_ns);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at_ns: int
    actor: str
    action: str  # e.g. "alarm.acknowledge", "annotation.create", "manual.create", "config.loaded"
    subject: str  # what it acted on, e.g. "kiln1/co2_stale", "annotation/12"
    before: Any  # JSON-able state before (None: nothing)
    after: Any
    reason: str


class AuditTrail:
    """Append and read audit rows of one store file. Thread-safe."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn = connect(self.path)
        self._conn.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def record(
        self,
        actor: str,
        action: str,
        subject: str,
        *,
        before: Any = None,
        after: Any = None,
        reason: str = "",
        at_ns: int | None = None,
    ) -> AuditEntry:
        """Append one row and return it (with its id)."""
        at = time.time_ns() if at_ns is None else at_ns
        b = None if before is None else orjson.dumps(before, option=orjson.OPT_NON_STR_KEYS).decode()
        a = None if after is None else orjson.dumps(after, option=orjson.OPT_NON_STR_KEYS).decode()
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO audit(at_ns, actor, action, subject, before, after, reason)"
                " VALUES (?,?,?,?,?,?,?)",
                (at, actor, action, subject, b, a, reason),
            )
            row_id = int(cur.lastrowid or 0)
        return AuditEntry(row_id, at, actor, action, subject, before, after, reason)

    def entries(
        self,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        subject_prefix: str | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Rows in id order, filtered; ``action`` matches exactly or as a prefix ending in "."."""
        where, args = ["id > ?"], [after_id]
        if start_ns is not None:
            where.append("at_ns >= ?")
            args.append(start_ns)
        if end_ns is not None:
            where.append("at_ns < ?")
            args.append(end_ns)
        if actor is not None:
            where.append("actor = ?")
            args.append(actor)  # type: ignore[arg-type]
        if action is not None:
            if action.endswith("."):
                where.append("substr(action, 1, ?) = ?")
                args.extend([len(action), action])  # type: ignore[list-item]
            else:
                where.append("action = ?")
                args.append(action)  # type: ignore[arg-type]
        if subject_prefix is not None:
            where.append("substr(subject, 1, ?) = ?")
            args.extend([len(subject_prefix), subject_prefix])  # type: ignore[list-item]
        sql = (
            "SELECT id, at_ns, actor, action, subject, before, after, reason FROM audit WHERE "
            + " AND ".join(where)
            + " ORDER BY id LIMIT ?"
        )
        with self._lock:
            rows = self._conn.execute(sql, [*args, limit]).fetchall()
        return [_entry(r) for r in rows]

    def newest(self, action: str) -> AuditEntry | None:
        """The newest row of ``action`` (exact), or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id, at_ns, actor, action, subject, before, after, reason FROM audit"
                " WHERE action = ? ORDER BY id DESC LIMIT 1",
                (action,),
            ).fetchone()
        return None if row is None else _entry(row)


def _entry(row: Sequence[Any]) -> AuditEntry:
    i, at, actor, action, subject, before, after, reason = row
    return AuditEntry(
        i,
        at,
        actor,
        action,
        subject,
        None if before is None else orjson.loads(before),
        None if after is None else orjson.loads(after),
        reason,
    )
