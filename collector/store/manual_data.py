"""Manual data: lab and production values with validity periods, kept in the store file.

Clinker CaO/MgO (per day or per sample), a fuel's NCV and emission factor (per delivery), raw-meal
TOC, cement produced; the quantities, units and plausible ranges are those of
:data:`analytics.overrides.QUANTITIES`. A value is entered once and withdrawn by a new revision
(``withdrawn``), never changed or deleted (SQLite triggers refuse it): a correction is a new value
with the same validity start, which wins because it was entered later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from analytics.overrides import ManualEntry, ManualValue

from .revisions import RevisedTable, append_only

SCHEMA = """
CREATE TABLE IF NOT EXISTS manual_value (
    id INTEGER NOT NULL, revision INTEGER NOT NULL, kiln TEXT NOT NULL, quantity TEXT NOT NULL,
    fuel TEXT, value REAL NOT NULL, unit TEXT NOT NULL, valid_from_ns INTEGER NOT NULL,
    valid_to_ns INTEGER, sample TEXT NOT NULL, withdrawn INTEGER NOT NULL, source TEXT NOT NULL,
    actor TEXT NOT NULL, at_ns INTEGER NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (id, revision)
);
""" + append_only("manual_value")
_COLUMNS = (
    "id, revision, kiln, quantity, fuel, value, unit, valid_from_ns, valid_to_ns, sample, withdrawn,"
    " source, actor, at_ns, reason"
)


@dataclass(frozen=True, slots=True)
class ManualRecord:
    """One revision of a manual value as stored."""

    id: int
    revision: int
    entry: ManualEntry
    withdrawn: bool
    source: str  # "api" or "csv"
    actor: str
    at_ns: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self.entry)
        d.update(
            id=self.id,
            revision=self.revision,
            withdrawn=self.withdrawn,
            source=self.source,
            actor=self.actor,
            at_ns=self.at_ns,
            reason=self.reason,
        )
        return d


class ManualDataStore:
    """Manual values of one store file. Thread-safe; the current ones are held in memory."""

    def __init__(self, path: Path | str) -> None:
        self._table = RevisedTable(path, SCHEMA)
        self._lock = threading.Lock()
        with self._table.lock:
            rows = self._table.conn.execute(
                f"SELECT {_COLUMNS} FROM manual_value a WHERE revision ="
                " (SELECT MAX(revision) FROM manual_value b WHERE b.id = a.id)"
            ).fetchall()
        self._current = {r[0]: _record(r) for r in rows}

    def close(self) -> None:
        self._table.close()

    def add(
        self, entries: Sequence[ManualEntry], actor: str, source: str, reason: str = ""
    ) -> list[ManualRecord]:
        """Store new values (all in one transaction) and return them with their ids."""
        now = time.time_ns()
        with self._lock:
            first = max(self._current, default=0) + 1
            records = [
                ManualRecord(first + i, 0, e, False, source, actor, now, reason)
                for i, e in enumerate(entries)
            ]
            self._write(records)
            return records

    def withdraw(self, value_id: int, actor: str, reason: str = "") -> tuple[ManualRecord, ManualRecord]:
        """Withdraw a value (a new revision); (before, after). KeyError for an unknown id."""
        with self._lock:
            before = self._current[value_id]
            if before.withdrawn:
                raise ValueError(f"manual value {value_id} is withdrawn already")
            after = ManualRecord(
                before.id,
                before.revision + 1,
                before.entry,
                True,
                before.source,
                actor,
                time.time_ns(),
                reason,
            )
            self._write([after])
            return before, after

    def _write(self, records: Sequence[ManualRecord]) -> None:
        conn = self._table.conn
        rows = [
            (
                r.id,
                r.revision,
                r.entry.kiln,
                r.entry.quantity,
                r.entry.fuel,
                r.entry.value,
                r.entry.unit,
                r.entry.valid_from_ns,
                r.entry.valid_to_ns,
                r.entry.sample,
                int(r.withdrawn),
                r.source,
                r.actor,
                r.at_ns,
                r.reason,
            )
            for r in records
        ]
        with self._table.lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(f"INSERT INTO manual_value({_COLUMNS}) VALUES ({','.join('?' * 15)})", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        for r in records:
            self._current[r.id] = r

    def current(self, kiln: str) -> list[ManualRecord]:
        """The kiln's values (withdrawn ones too), by validity start."""
        with self._lock:
            found = [r for r in self._current.values() if r.entry.kiln == kiln]
        return sorted(found, key=lambda r: (r.entry.valid_from_ns, r.id))

    def values(self, kiln: str) -> tuple[ManualValue, ...]:
        """The kiln's values in force (not withdrawn), as the engine takes them."""
        return tuple(
            ManualValue(
                r.entry.quantity,
                r.entry.value,
                r.entry.valid_from_ns,
                r.entry.valid_to_ns,
                r.entry.fuel,
                r.id,
            )
            for r in self.current(kiln)
            if not r.withdrawn
        )


def _record(r: tuple[Any, ...]) -> ManualRecord:
    entry = ManualEntry(r[2], r[3], r[5], r[6], r[7], r[8], r[4], r[9])
    return ManualRecord(r[0], r[1], entry, bool(r[10]), r[11], r[12], r[13], r[14])
