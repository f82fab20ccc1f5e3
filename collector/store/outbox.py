"""The InfluxDB outbox: read, acknowledge and dead-letter its rows; watch its depth and budget.

Rows are written by :class:`collector.store.local.LocalStore` in the same transaction as the data
they carry. :class:`Outbox` is the draining side, on a connection of its own; use one instance
from one thread. It hands out consecutive rows oldest first and deletes them only when told
that InfluxDB accepted them (or that they are dead letters), so a crash at any moment leaves
every unacknowledged row in place to be sent again (InfluxDB overwrites a re-sent point).

Depth (rows, bytes) is counted incrementally: a full count reads the whole table, which at
gigabytes of backlog would take seconds. Row ids are SQLite rowids, which are reused once the
highest row is deleted; the read cursor and the counted-up-to mark are lowered whenever that
happens, inside the deleting transaction, so no later row is missed or counted twice.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from collector.health import HealthRegistry

from .dead_letters import DeadLetter
from .dead_letters import insert as insert_dead_letters
from .dead_letters import migrate as migrate_dead_letters
from .local import SCHEMA, connect

log = logging.getLogger(__name__)

INFLUX_SOURCE = "influx"  # dead_letter.source of points that InfluxDB rejected
_BUDGET_KEY = "outbox budget"
_LOUD_REPEAT_S = 60.0


@dataclass(frozen=True, slots=True)
class OutboxBatch:
    """Consecutive outbox rows ``first_id..last_id`` joined into one request body."""

    first_id: int
    last_id: int
    n_rows: int
    n_points: int
    body: bytes


@dataclass(frozen=True, slots=True)
class OutboxDepth:
    rows: int = 0
    bytes: int = 0
    oldest_created_ns: int | None = None  # when the oldest waiting row was stored [ns]

    def age_s(self, now_ns: int | None = None) -> float:
        """How long the oldest row has waited [s]; 0 when the outbox is empty."""
        if self.oldest_created_ns is None:
            return 0.0
        return max(0.0, ((now_ns or time.time_ns()) - self.oldest_created_ns) / 1e9)


class Outbox:
    def __init__(self, path: Path | str) -> None:
        self._conn = connect(path)
        # Debian's SQLite zeroes every freed page (secure_delete=1): a sent row's body was written
        # a second time on delete. FAST zeroes only within pages written anyway.
        self._conn.execute("PRAGMA secure_delete=FAST")
        self._conn.executescript(SCHEMA)
        migrate_dead_letters(self._conn)
        self._cursor = 0  # highest id handed out
        self._counted = 0  # highest id included in _rows/_bytes
        self._rows = 0
        self._bytes = 0

    def close(self) -> None:
        self._conn.close()

    def next_batch(self, max_points: int, max_bytes: int, scan_rows: int = 2000) -> OutboxBatch | None:
        """The oldest rows not yet handed out, up to ``max_points`` (at least one row)."""
        meta = self._conn.execute(
            "SELECT id, n_points, length(body) FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (self._cursor, scan_rows),
        ).fetchall()
        if not meta:
            return None
        points = size = 0
        last = meta[0][0]
        for row_id, n, length in meta:
            if points and (points + n > max_points or size + length > max_bytes):
                break
            points, size, last = points + n, size + length, row_id
        first = meta[0][0]
        bodies = self._conn.execute(
            "SELECT body FROM outbox WHERE id BETWEEN ? AND ? ORDER BY id", (first, last)
        ).fetchall()
        self._cursor = last
        body = b"".join(_with_newline(bytes(b)) for (b,) in bodies)
        return OutboxBatch(first, last, len(bodies), points, body)

    def ack(self, batch: OutboxBatch) -> None:
        """InfluxDB accepted the batch: delete its rows."""
        self.dead_letter(batch, ())

    def dead_letter(self, batch: OutboxBatch, rejected: Sequence[tuple[bytes, str]]) -> None:
        """Delete the batch's rows and keep the ``(line, reason)`` pairs InfluxDB rejected."""
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            n, size = c.execute(
                "SELECT count(*), coalesce(sum(length(body)), 0) FROM outbox WHERE id BETWEEN ? AND ?"
                " AND id <= ?",
                (batch.first_id, batch.last_id, self._counted),
            ).fetchone()
            c.execute("DELETE FROM outbox WHERE id BETWEEN ? AND ?", (batch.first_id, batch.last_id))
            insert_dead_letters(c, [DeadLetter(INFLUX_SOURCE, reason, line) for line, reason in rejected])
            (top,) = c.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        self._rows -= n
        self._bytes -= size
        # The next insert reuses top + 1: lower the marks so that row is fetched and counted.
        self._counted = min(self._counted, top)
        self._cursor = min(self._cursor, top)

    def rewind(self) -> None:
        """Hand out every row again from the oldest (after in-flight batches were abandoned)."""
        self._cursor = 0

    def depth(self) -> OutboxDepth:
        """Rows and bytes waiting, counting only rows added since the last call."""
        n, size, top = self._conn.execute(
            "SELECT count(*), coalesce(sum(length(body)), 0), max(id) FROM outbox WHERE id > ?",
            (self._counted,),
        ).fetchone()
        self._rows += n
        self._bytes += size
        if top is not None:
            self._counted = top
        oldest = self._conn.execute("SELECT created_ns FROM outbox ORDER BY id LIMIT 1").fetchone()
        return OutboxDepth(self._rows, self._bytes, oldest[0] if oldest else None)


def _with_newline(body: bytes) -> bytes:
    return body if body.endswith(b"\n") else body + b"\n"


def exact_depth(conn: sqlite3.Connection) -> OutboxDepth:
    """A full count (for tests and tools; reads the whole table)."""
    n, size, oldest = conn.execute(
        "SELECT count(*), coalesce(sum(length(body)), 0), min(created_ns) FROM outbox"
    ).fetchone()
    return OutboxDepth(n, size, oldest)


class OutboxBudget:
    """The operator's limit on the outbox, in bytes and in age of the oldest row.

    Near the limit (``warn_fraction`` of either) it warns in the log and in ``health.warnings``;
    beyond it, :meth:`allows_acks` turns False (the pipeline holds MQTT acknowledgements back,
    so the broker keeps the messages) and it logs an error every minute and reports in
    ``health.problems``. It never deletes data.
    """

    def __init__(
        self, max_bytes: int, max_age_s: float, warn_fraction: float, health: HealthRegistry
    ) -> None:
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.warn_fraction = warn_fraction
        self.health = health
        self.state = "ok"  # "ok" | "near" | "over"
        self.used = 0.0  # the larger of bytes/max_bytes and age/max_age
        self._last_loud = 0.0

    def allows_acks(self) -> bool:
        return self.state != "over"

    def update(self, depth: OutboxDepth, now_ns: int | None = None) -> bool:
        """Take a new depth; True when the outbox just came back within budget."""
        age = depth.age_s(now_ns)
        self.used = max(depth.bytes / self.max_bytes, age / self.max_age_s)
        was = self.state
        self.state = "over" if self.used >= 1.0 else "near" if self.used >= self.warn_fraction else "ok"
        text = (
            f"InfluxDB outbox holds {depth.rows} rows, {depth.bytes / 1e6:.1f} MB, oldest {age / 3600:.2f} h "
            f"(budget {self.max_bytes / 1e6:.1f} MB, {self.max_age_s / 3600:.2f} h)"
        )
        self.health.warnings.pop(_BUDGET_KEY, None)
        self.health.problems.pop(_BUDGET_KEY, None)
        if self.state == "over":
            self.health.problems[_BUDGET_KEY] = f"{text}: over budget, MQTT acknowledgements held back"
            if was != "over" or time.monotonic() - self._last_loud >= _LOUD_REPEAT_S:
                self._last_loud = time.monotonic()
                log.error(
                    "%s: OVER BUDGET; holding MQTT acknowledgements back until InfluxDB catches up", text
                )
        elif self.state == "near":
            self.health.warnings[_BUDGET_KEY] = f"{text}: {self.used:.0%} of budget"
            if was == "ok":
                log.warning("%s: %.0f%% of budget", text, 100 * self.used)
        if was == "over" and self.state != "over":
            log.warning("%s: back within budget; MQTT acknowledgements resume", text)
        elif was == "near" and self.state == "ok":
            log.info("%s: well within budget again", text)
        return was == "over" and self.state != "over"
