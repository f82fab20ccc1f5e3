"""Durable alarm lifecycle state in the store file: open occurrences, the alarm history, and the
notification queue.

``alarm_state``   one row per alarm occurrence still of interest (active, shelved, or cleared but not
                  acknowledged): who acknowledged it and when, until when it is shelved and why. A
                  restart reads it back, so acknowledgements and shelves survive.
``alarm_event``   the alarm history, append-only: raised, cleared, acknowledged, shelved, unshelved,
                  suppressed, released, with who and when.
``notification``  messages to deliver (webhook, e-mail), kept until delivered: each has its attempt
                  count and the time of the next attempt.

Opens its own connection (WAL), like the audit trail: the API appends from its event loop and
worker threads while the pipeline writes readings on its own connection.
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
CREATE TABLE IF NOT EXISTS alarm_state (
    key TEXT PRIMARY KEY, data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alarm_event (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at_ns INTEGER NOT NULL, key TEXT NOT NULL,
    kind TEXT NOT NULL, kiln TEXT, event TEXT NOT NULL, actor TEXT, detail TEXT
);
CREATE INDEX IF NOT EXISTS alarm_event_at ON alarm_event(at_ns);
CREATE TABLE IF NOT EXISTS notification (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_ns INTEGER NOT NULL, channel TEXT NOT NULL,
    body TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_ns INTEGER NOT NULL,
    delivered_ns INTEGER, last_error TEXT
);
CREATE INDEX IF NOT EXISTS notification_pending ON notification(delivered_ns, id);
"""


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    id: int
    at_ns: int
    key: str
    kind: str
    kiln: str | None
    event: str  # raised, cleared, acknowledged, shelved, unshelved, suppressed, released
    actor: str | None  # the token's name for an operator's action; None for the system
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    created_ns: int
    channel: str  # "webhook" or "email"
    body: dict[str, Any]
    attempts: int
    next_ns: int
    delivered_ns: int | None
    last_error: str | None


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


class AlarmStateStore:
    """The three tables of one store file (``":memory:"`` for a context without a store). Thread-safe."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._conn = connect(self.path)
        self._conn.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- occurrences ------------------------------------------------------------------------

    def states(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute("SELECT key, data FROM alarm_state").fetchall()
        return {k: orjson.loads(d) for k, d in rows}

    def save(
        self,
        upserts: dict[str, dict[str, Any]],
        deletes: Sequence[str],
        events: Sequence[tuple[int, str, str, str | None, str, str | None, dict[str, Any]]],
        notifications: Sequence[tuple[str, dict[str, Any]]],
        now_ns: int | None = None,
    ) -> None:
        """One transaction: occurrence rows written or dropped, history events and notifications
        appended (events: (at_ns, key, kind, kiln, event, actor, detail); notifications: (channel, body))."""
        now = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT INTO alarm_state(key, data) VALUES (?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET data = excluded.data",
                    [(k, _dumps(v)) for k, v in upserts.items()],
                )
                self._conn.executemany("DELETE FROM alarm_state WHERE key = ?", [(k,) for k in deletes])
                self._conn.executemany(
                    "INSERT INTO alarm_event(at_ns, key, kind, kiln, event, actor, detail)"
                    " VALUES (?,?,?,?,?,?,?)",
                    [(*e[:6], _dumps(e[6])) for e in events],
                )
                self._conn.executemany(
                    "INSERT INTO notification(created_ns, channel, body, next_ns) VALUES (?,?,?,?)",
                    [(now, channel, _dumps(body), now) for channel, body in notifications],
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    # -- history ----------------------------------------------------------------------------

    def events(
        self,
        start_ns: int | None = None,
        end_ns: int | None = None,
        kiln: str | None = None,
        event: str | None = None,
        limit: int = 10_000,
    ) -> list[AlarmEvent]:
        """History events in time order, filtered."""
        where, args = ["1"], []  # type: tuple[list[str], list[Any]]
        for clause, value in (
            ("at_ns >= ?", start_ns),
            ("at_ns < ?", end_ns),
            ("kiln = ?", kiln),
            ("event = ?", event),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = (
            "SELECT id, at_ns, key, kind, kiln, event, actor, detail FROM alarm_event WHERE "
            + " AND ".join(where)
            + " ORDER BY at_ns, id LIMIT ?"
        )
        with self._lock:
            rows = self._conn.execute(sql, [*args, limit]).fetchall()
        return [
            AlarmEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6], orjson.loads(r[7]) if r[7] else {})
            for r in rows
        ]

    # -- notifications ----------------------------------------------------------------------

    def due(self, channel: str, now_ns: int, limit: int = 50) -> list[Notification]:
        """Undelivered messages of ``channel`` in the order they were queued, up to the first one
        not yet due (messages go out in order: a later one never overtakes an earlier one)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, created_ns, channel, body, attempts, next_ns, delivered_ns, last_error"
                " FROM notification WHERE delivered_ns IS NULL AND channel = ? ORDER BY id LIMIT ?",
                (channel, limit),
            ).fetchall()
        out = []
        for r in rows:
            if r[5] > now_ns:
                break
            out.append(Notification(r[0], r[1], r[2], orjson.loads(r[3]), r[4], r[5], r[6], r[7]))
        return out

    def delivered(self, notification_id: int, now_ns: int | None = None) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE notification SET delivered_ns = ?, attempts = attempts + 1 WHERE id = ?",
                (time.time_ns() if now_ns is None else now_ns, notification_id),
            )

    def failed(self, notification_id: int, error: str, next_ns: int) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE notification SET attempts = attempts + 1, next_ns = ?, last_error = ? WHERE id = ?",
                (next_ns, error[:500], notification_id),
            )

    def notifications(self, channel: str | None = None) -> list[Notification]:
        """Every queued message (delivered or not), oldest first."""
        sql = (
            "SELECT id, created_ns, channel, body, attempts, next_ns, delivered_ns, last_error"
            " FROM notification"
        )
        args: tuple[str, ...] = ()
        if channel is not None:
            sql += " WHERE channel = ?"
            args = (channel,)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY id", args).fetchall()
        return [Notification(r[0], r[1], r[2], orjson.loads(r[3]), r[4], r[5], r[6], r[7]) for r in rows]

    def pending(self, channel: str | None = None) -> int:
        sql = "SELECT count(*) FROM notification WHERE delivered_ns IS NULL"
        args: tuple[str, ...] = ()
        if channel is not None:
            sql += " AND channel = ?"
            args = (channel,)
        with self._lock:
            return int(self._conn.execute(sql, args).fetchone()[0])
