"""The local durable store: SQLite in WAL mode.

Always present: readings with the value as it came (``raw``) beside the value kilnwatch
computed from it, the QAL2 functions in force (``calibration``), the aggregates ledger (minutes
and hours per kiln), the dead-letter table, and the readings refused because another value was
stored first for their signal and time (``conflict``). A stored reading is never replaced: the
first write wins (:mod:`collector.store.first_write`). The InfluxDB outbox lives in the same file
(see :mod:`collector.store.outbox`), so a reading and its outbox row commit together.

One ``LocalStore`` owns one write connection and must be used from one thread at a time
(the pipeline runs it on a single worker thread). Readers open their own connections.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson

from analytics.aggregates import HourAggregate, MinuteAggregate
from analytics.batch import ReadingBatch
from collector.conditioning import ValueCorrections
from collector.file_modes import private_file

from . import hourly_forms
from .conflicts import as_dead_letter, conflicts_of, insert_conflicts
from .connection import connect
from .dead_letters import DeadLetter
from .dead_letters import insert as insert_dead_letters
from .dead_letters import migrate as migrate_dead_letters
from .first_write import judge

SCHEMA = """
CREATE TABLE IF NOT EXISTS signal (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS reading (
    signal INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL, quality INTEGER NOT NULL, raw REAL,
    PRIMARY KEY (signal, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS calibration (
    signal TEXT NOT NULL, a REAL NOT NULL, b REAL NOT NULL, valid_min REAL NOT NULL,
    valid_max REAL NOT NULL, in_force_from_ns INTEGER NOT NULL, in_force_to_ns INTEGER NOT NULL,
    invalidate_outside INTEGER NOT NULL, recorded_ns INTEGER NOT NULL,
    PRIMARY KEY (signal, a, b, valid_min, valid_max, in_force_from_ns, in_force_to_ns)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS minute (
    kiln TEXT NOT NULL, ts INTEGER NOT NULL, revision INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (kiln, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hourly (
    kiln TEXT NOT NULL, ts INTEGER NOT NULL, revision INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (kiln, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letter (
    id INTEGER PRIMARY KEY, received_ns INTEGER NOT NULL, source TEXT NOT NULL, signal TEXT,
    reason TEXT NOT NULL, payload BLOB, payload_bytes INTEGER, payload_sha256 TEXT
);
CREATE INDEX IF NOT EXISTS dead_letter_received ON dead_letter(received_ns);
CREATE TABLE IF NOT EXISTS conflict (
    id INTEGER PRIMARY KEY, signal INTEGER NOT NULL, ts INTEGER NOT NULL,
    stored_value REAL, stored_quality INTEGER NOT NULL, value REAL, quality INTEGER NOT NULL,
    raw REAL, source TEXT NOT NULL, received_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS conflict_signal_ts ON conflict(signal, ts);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY, created_ns INTEGER NOT NULL, oldest_ns INTEGER NOT NULL,
    n_points INTEGER NOT NULL, body BLOB NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What :meth:`LocalStore.write` did with each row of the batch (masks in batch order)."""

    accepted: npt.NDArray[np.bool_]  # inserted
    duplicate: npt.NDArray[np.bool_]  # the same reading was stored: dropped
    conflict: npt.NDArray[np.bool_]  # another value was stored: refused, recorded in ``conflict``


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One stored reading: the value as it came (None: not recorded, or not a number), the value
    kilnwatch computed from it (calibrated, scaled to the canonical unit) and its quality."""

    ts_ns: int
    raw: float | None
    value: float | None
    quality: int


@dataclass(frozen=True, slots=True)
class Calibration:
    """A QAL2 function y = a + b*x as configured; None: no bound."""

    signal: str
    a: float
    b: float
    valid_min: float | None
    valid_max: float | None
    in_force_from_ns: int | None
    in_force_to_ns: int | None
    invalidate_outside: bool
    recorded_ns: int  # when kilnwatch first ran with it


#: Turns a batch (or aggregates) into line-protocol bytes for the outbox; None: no InfluxDB.
OutboxFormatter = Callable[[ReadingBatch], bytes]


class LocalStore:
    """Write side of the local store."""

    def __init__(
        self,
        path: Path | str,
        signal_names: Sequence[str],
        outbox_formatter: OutboxFormatter | None = None,
        *,
        group_readable: bool = False,
    ) -> None:
        """``outbox_formatter``: with an InfluxDB historian, the outbox row of accepted readings.
        ``group_readable``: the database file's mode lets kilnwatch's group read it (0640, else 0600)."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        private_file(self.path, group_readable, companions=("-wal", "-shm"))  # before SQLite creates it
        self._conn = connect(self.path)
        self._conn.executescript(SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(reading)")}
        if "raw" not in columns:  # a store written before raw values were kept
            self._conn.execute("ALTER TABLE reading ADD COLUMN raw REAL")
        migrate_dead_letters(self._conn)  # a store written before dead letters were cut to 4 KiB
        hourly_forms.migrate(self._conn)  # the report rows and change sequence of the stored hours
        self.signal_names = tuple(signal_names)
        self._conn.executemany("INSERT OR IGNORE INTO signal(name) VALUES (?)", [(n,) for n in signal_names])
        ids = dict(self._conn.execute("SELECT name, id FROM signal").fetchall())
        #: table index -> database signal id
        self.db_ids = np.array([ids[n] for n in signal_names], dtype=np.int64)
        self.outbox_formatter = outbox_formatter

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    def close(self) -> None:
        self._conn.close()

    # -- writes ---------------------------------------------------------------------------

    def write(
        self,
        batch: ReadingBatch,
        dead_letters: Iterable[DeadLetter] = (),
        outbox: Iterable[tuple[int, int, bytes]] = (),
        *,
        raw_value: npt.NDArray[np.float64] | None = None,
        sources: Sequence[tuple[str, int]] = (),
    ) -> WriteResult:
        """Commit readings, dead letters and outbox rows in one transaction (all or nothing).

        The first write wins: a reading whose signal and time are stored already is not written
        again; with the same value and quality it is a duplicate, otherwise a conflict, kept in
        the ``conflict`` table and as a dead letter with both values. Only the accepted readings
        go into the outbox. ``raw_value``: each reading's value as it came, row for row (None:
        not recorded). ``sources``: (source name, number of rows) in row order, for conflicts.
        """
        if raw_value is not None and len(raw_value) != len(batch):
            raise ValueError(f"{len(raw_value)} raw values for a batch of {len(batch)} readings")
        raw_all = np.full(len(batch), np.nan) if raw_value is None else _finite_or_nan(np.asarray(raw_value))
        with self._transaction() as c:
            # Rows go in key order: each signal's rows append to one place of the B-tree (~30 % less work).
            v = judge(c, self.db_ids[batch.signal], batch.ts, _finite_or_nan(batch.value), batch.quality)
            rows = v.order[v.accepted]
            c.executemany(
                "INSERT INTO reading VALUES (?, ?, ?, ?, ?)",
                zip(
                    self.db_ids[batch.signal[rows]].tolist(),
                    batch.ts[rows].tolist(),
                    _finite_or_nan(batch.value[rows]).tolist(),
                    batch.quality[rows].tolist(),
                    raw_all[rows].tolist(),
                    strict=True,
                ),
            )
            refused = conflicts_of(batch, v, raw_all, sources, self.signal_names) if v.conflict.any() else []
            insert_conflicts(c, refused, dict(zip(self.signal_names, self.db_ids.tolist(), strict=True)))
            insert_dead_letters(c, [*dead_letters, *(as_dead_letter(k) for k in refused)])
            if self.outbox_formatter is not None and len(rows):
                accepted = batch.take(np.sort(rows))
                c.execute(
                    "INSERT INTO outbox(created_ns, oldest_ns, n_points, body) VALUES (?, ?, ?, ?)",
                    (time.time_ns(), int(accepted.ts.min()), len(accepted), self.outbox_formatter(accepted)),
                )
            c.executemany(
                "INSERT INTO outbox(created_ns, oldest_ns, n_points, body) VALUES (?, ?, ?, ?)",
                [(time.time_ns(), oldest, n, body) for oldest, n, body in outbox],
            )
        return WriteResult(
            v.in_batch_order(v.accepted), v.in_batch_order(v.duplicate), v.in_batch_order(v.conflict)
        )

    def record_calibrations(self, signal_names: Sequence[str], corrections: ValueCorrections) -> None:
        """Keep the QAL2 functions of this configuration; each version once, with when it was first used."""
        c = corrections
        rows = [
            (
                signal_names[i],
                float(c.qal2_a[i]),
                float(c.qal2_b[i]),
                float(c.qal2_min[i]),
                float(c.qal2_max[i]),
                int(c.qal2_from_ns[i]),
                int(c.qal2_to_ns[i]),
                int(c.qal2_invalidate[i]),
                time.time_ns(),
            )
            for i in np.flatnonzero(c.has_qal2).tolist()
        ]
        with self._transaction() as conn:
            conn.executemany("INSERT OR IGNORE INTO calibration VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def write_aggregates(
        self,
        minutes: Iterable[MinuteAggregate] = (),
        hours: Iterable[HourAggregate] = (),
        outbox: Iterable[tuple[int, int, bytes]] = (),
    ) -> None:
        with self._transaction() as c:
            c.executemany(
                "INSERT OR REPLACE INTO minute VALUES (?, ?, ?, ?)",
                [(m.kiln, m.start_ns, m.revision, minute_json(m)) for m in minutes],
            )
            hourly_forms.write_hours(c, hours)
            c.executemany(
                "INSERT INTO outbox(created_ns, oldest_ns, n_points, body) VALUES (?, ?, ?, ?)",
                [(time.time_ns(), oldest, n, body) for oldest, n, body in outbox],
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)


def minute_json(m: MinuteAggregate) -> str:
    """A closed minute as stored: orjson walks the dataclasses itself (``asdict`` was 70 % of the
    aggregate writes while a backlog drains); a NaN would be null, i.e. no value."""
    return orjson.dumps(m, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _finite_or_nan(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """±inf as NaN: SQLite stores NaN as NULL, which is what a value that is not a number is."""
    return np.where(np.isfinite(x), x, np.nan)


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
