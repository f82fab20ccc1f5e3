"""Dead letters: inputs that could not become readings, kept with the reason.

A dead letter keeps at most the first :data:`HEAD_BYTES` of its payload, plus the payload's full
length and SHA-256, so that a huge or hostile payload costs the store 4 KiB and can still be
identified. Retention (:mod:`collector.store.retention`) prunes them by age and to a byte budget.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

#: Bytes of a payload kept in a dead letter.
HEAD_BYTES = 4096
#: What one row costs against the byte budget: its variable-length columns plus a fixed overhead.
ROW_COST_SQL = "(coalesce(length(payload), 0) + length(reason) + length(source) + 64)"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An input that could not become a reading: the head of its raw payload and the reason.

    ``size`` and ``sha256`` describe the whole payload (None: not yet computed from ``payload``,
    which is then the whole payload; :meth:`kept` fills them and cuts the payload).
    """

    source: str
    reason: str
    payload: bytes
    signal: str | None = None
    received_ns: int = 0
    size: int | None = None
    sha256: str | None = None

    def kept(self) -> DeadLetter:
        """The letter as stored: payload cut to :data:`HEAD_BYTES`, with the whole one's length and hash."""
        if self.size is not None and self.sha256 is not None and len(self.payload) <= HEAD_BYTES:
            return self
        size = len(self.payload) if self.size is None else self.size
        digest = self.sha256 or hashlib.sha256(self.payload).hexdigest()
        return replace(self, payload=bytes(self.payload[:HEAD_BYTES]), size=size, sha256=digest)


def insert(c: sqlite3.Connection, letters: Iterable[DeadLetter]) -> None:
    rows = []
    for d in letters:
        k = d.kept()
        rows.append(
            (k.received_ns or time.time_ns(), k.source, k.signal, k.reason, k.payload, k.size, k.sha256)
        )
    c.executemany(
        "INSERT INTO dead_letter(received_ns, source, signal, reason, payload, payload_bytes, payload_sha256)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def read(c: sqlite3.Connection, source: str | None = None) -> list[DeadLetter]:
    q = "SELECT source, reason, payload, signal, received_ns, payload_bytes, payload_sha256 FROM dead_letter"
    rows = c.execute(
        q + (" WHERE source = ?" if source else "") + " ORDER BY id", (source,) if source else ()
    )
    return [DeadLetter(s, r, bytes(p or b""), sig, ns, n, h) for s, r, p, sig, ns, n, h in rows]


def migrate(c: sqlite3.Connection) -> None:
    """Bring a dead-letter table written before payloads were cut to the current form: add the
    length and hash columns and cut every longer payload, one row at a time."""
    columns = {row[1] for row in c.execute("PRAGMA table_info(dead_letter)")}
    if "payload_bytes" in columns:
        return
    c.execute("BEGIN IMMEDIATE")
    try:
        c.execute("ALTER TABLE dead_letter ADD COLUMN payload_bytes INTEGER")
        c.execute("ALTER TABLE dead_letter ADD COLUMN payload_sha256 TEXT")
        ids = [i for (i,) in c.execute("SELECT id FROM dead_letter WHERE length(payload) > ?", (HEAD_BYTES,))]
        for row_id in ids:
            (payload,) = c.execute("SELECT payload FROM dead_letter WHERE id = ?", (row_id,)).fetchone()
            payload = bytes(payload)
            c.execute(
                "UPDATE dead_letter SET payload = ?, payload_bytes = ?, payload_sha256 = ? WHERE id = ?",
                (payload[:HEAD_BYTES], len(payload), hashlib.sha256(payload).hexdigest(), row_id),
            )
        c.execute(
            "UPDATE dead_letter SET payload_bytes = coalesce(length(payload), 0) WHERE payload_bytes IS NULL"
        )
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise
