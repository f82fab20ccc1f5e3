"""Read side of the local store: one read-only connection per thread, so API handlers never
share a cursor."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from analytics import stored_rows
from analytics.aggregates import HourAggregate, MinuteAggregate, hour_from_dict, minute_from_dict
from analytics.batch import ReadingBatch

from . import hourly_forms
from .conflicts import Conflict, read_conflicts
from .dead_letters import DeadLetter
from .dead_letters import read as read_dead_letters
from .local import AuditRow, Calibration, connect

#: How much of the store file a report connection maps (address space; the pages are the kernel's
#: file cache, shared with every other reader of the file).
REPORT_MMAP_BYTES = 256 << 20

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True)
class StoredHourRows:
    """Hourly report rows as stored, column by column (:mod:`collector.store.hourly_forms`), and the
    newest change sequence of the store when they were read."""

    ts: list[int]
    change_seq: list[int]
    #: ``report``: the rows as JSON without ``ledger`` and ``hour_local``; ``flat``: the CSV cells as
    #: a JSON array without ``hour_local``
    text: list[bytes]
    newest_seq: int


class StoreReader:
    """Read side: one read-only connection per thread, so API handlers never share a cursor."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()

    def _conn(self, mapped: bool = False) -> sqlite3.Connection:
        """This thread's connection; ``mapped``: the one for report rows, with the file mapped into
        memory, so a year of rows is read in 25 ms instead of 32 (decision 0036), kept apart so
        that only report pages are mapped."""
        name = "report_conn" if mapped else "conn"
        conn = getattr(self._local, name, None)
        if conn is None:
            conn = connect(self.path, readonly=True, mmap_bytes=REPORT_MMAP_BYTES if mapped else 0)
            setattr(self._local, name, conn)
        return conn

    def hours(self, kiln: str, start_ns: int, end_ns: int) -> list[HourAggregate]:
        rows = self._conn().execute(
            "SELECT data FROM hourly WHERE kiln = ? AND ts >= ? AND ts < ? ORDER BY ts",
            (kiln, start_ns, end_ns),
        )
        return [hour_from_dict(json.loads(d)) for (d,) in rows]

    def hourly_rows(
        self,
        kiln: str,
        start_ns: int,
        end_ns: int,
        changed_since: int | None = None,
        limit: int = -1,
        form: Literal["report", "flat", "line"] = "report",
    ) -> StoredHourRows:
        """The report rows of one kiln's hours in [start, end), oldest first; with ``changed_since``
        only the hours written or revised after that number. At most ``limit`` rows (-1: all). One
        read transaction: ``newest_seq`` covers every row returned."""
        conn = self._conn(mapped=True)
        if not self._has_forms(conn):
            return self._hourly_rows_computed(kiln, start_ns, end_ns, limit, form)
        column = {"report": "report", "flat": "flat", "line": "line"}[form]
        q = f"SELECT ts, change_seq, {column} FROM hourly_report WHERE kiln = ? AND ts >= ? AND ts < ?"
        args: list[object] = [kiln, start_ns, end_ns]
        if changed_since is not None:
            q += " AND change_seq > ?"
            args.append(changed_since)
        conn.execute("BEGIN")
        try:
            rows = conn.execute(q + " ORDER BY ts LIMIT ?", (*args, limit)).fetchall()
            newest = hourly_forms.newest_seq(conn)
        finally:
            conn.execute("COMMIT")
        if not rows:
            return StoredHourRows([], [], [], newest)
        ts, seq, text = (list(c) for c in zip(*rows, strict=True))
        return StoredHourRows(ts, seq, text, newest)

    def _hourly_rows_computed(
        self, kiln: str, start_ns: int, end_ns: int, limit: int, form: str
    ) -> StoredHourRows:
        """A store written before the report rows were kept (read-only here: not migrated)."""
        hours = self.hours(kiln, start_ns, end_ns)[: None if limit < 0 else limit]
        which = ("report", "flat", "line").index(form)
        text = [stored_rows.forms(h)[which] for h in hours]
        return StoredHourRows([h.start_ns for h in hours], [0] * len(hours), text, 0)

    def _has_forms(self, conn: sqlite3.Connection) -> bool:
        has = getattr(self._local, "has_forms", None)
        if not has:  # checked again until it holds: the service migrates a store when it opens it
            q = "SELECT 1 FROM sqlite_master WHERE name = 'hourly_report'"
            has = self._local.has_forms = conn.execute(q).fetchone() is not None
        return bool(has)

    def newest_change_seq(self) -> int:
        """The store's newest hourly change sequence (0: none)."""
        return hourly_forms.newest_seq(self._conn())

    def changed_hours(
        self, kilns: Sequence[str], changed_since: int, start_ns: int, end_ns: int
    ) -> list[int]:
        """Starts of the hours of ``kilns`` in [start, end) written or revised after ``changed_since``,
        oldest first, each once."""
        conn = self._conn()
        if not self._has_forms(conn):
            return []
        q = (
            f"SELECT DISTINCT ts FROM hourly_report WHERE kiln IN ({','.join('?' * len(kilns))})"
            " AND change_seq > ? AND ts >= ? AND ts < ? ORDER BY ts"
        )
        return [ts for (ts,) in conn.execute(q, (*kilns, changed_since, start_ns, end_ns))]

    def minutes(self, kiln: str, start_ns: int, end_ns: int) -> list[MinuteAggregate]:
        rows = self._conn().execute(
            "SELECT data FROM minute WHERE kiln = ? AND ts >= ? AND ts < ? ORDER BY ts",
            (kiln, start_ns, end_ns),
        )
        return [minute_from_dict(json.loads(d)) for (d,) in rows]

    def readings(
        self,
        signal_names: Sequence[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> tuple[list[str], ReadingBatch]:
        """Raw readings in [start, end) as (names, batch) where batch.signal indexes ``names``."""
        names_by_id = dict(self._conn().execute("SELECT id, name FROM signal").fetchall())
        wanted = list(names_by_id.values()) if signal_names is None else list(signal_names)
        position: dict[str, int] = {}
        for i, name in enumerate(wanted):
            position.setdefault(name, i)
        ids = [i for i, name in names_by_id.items() if name in position]
        q = f"SELECT signal, ts, value, quality FROM reading WHERE signal IN ({','.join('?' * len(ids))})"
        args: list[int] = list(ids)
        if start_ns is not None:
            q += " AND ts >= ?"
            args.append(start_ns)
        if end_ns is not None:
            q += " AND ts < ?"
            args.append(end_ns)
        rows = self._conn().execute(q + " ORDER BY signal, ts", args).fetchall()
        if not rows:
            return wanted, ReadingBatch.empty()
        # One object array, then typed columns: ts stays exact (not through float64), NULL -> NaN.
        columns = np.array(rows, dtype=object)
        lookup = np.zeros(max(ids) + 1, dtype=np.int32)
        lookup[ids] = [position[names_by_id[i]] for i in ids]
        return wanted, ReadingBatch(
            lookup[columns[:, 0].astype(np.int64)],
            columns[:, 1].astype(np.int64),
            columns[:, 2].astype(np.float64),
            columns[:, 3].astype(np.uint8),
        )

    def newest_timestamps(self) -> dict[str, int]:
        """Per signal name, the source time of its newest stored reading [ns]."""
        rows = self._conn().execute(
            "SELECT name, (SELECT max(ts) FROM reading WHERE reading.signal = signal.id) FROM signal"
        )
        return {name: ts for name, ts in rows if ts is not None}

    def first_timestamp(self, signal_names: Sequence[str], start_ns: int) -> int | None:
        """The source time of the oldest stored reading of these signals at or after ``start_ns``
        [ns]; None when there is none. One index seek per signal."""
        q = (
            "SELECT min((SELECT min(ts) FROM reading WHERE reading.signal = signal.id AND ts >= ?))"
            f" FROM signal WHERE name IN ({','.join('?' * len(signal_names))})"
        )
        row = self._conn().execute(q, (start_ns, *signal_names)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def count_readings(self, signal_name: str | None = None) -> int:
        if signal_name is None:
            return int(self._conn().execute("SELECT count(*) FROM reading").fetchone()[0])
        row = (
            self._conn()
            .execute(
                "SELECT count(*) FROM reading JOIN signal ON signal.id = reading.signal"
                " WHERE signal.name = ?",
                (signal_name,),
            )
            .fetchone()
        )
        return int(row[0])

    def audit(
        self, signal_name: str, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[AuditRow]:
        """One signal's stored readings in [start, end), in time order, with their raw values."""
        rows = self._conn().execute(
            "SELECT ts, raw, value, quality FROM reading JOIN signal ON signal.id = reading.signal"
            " WHERE signal.name = ? AND ts >= ? AND ts < ? ORDER BY ts",
            (
                signal_name,
                _INT64_MIN if start_ns is None else start_ns,
                _INT64_MAX if end_ns is None else end_ns,
            ),
        )
        return [AuditRow(*row) for row in rows]

    def calibrations(self) -> list[Calibration]:
        """Every QAL2 function kilnwatch has run with, oldest first."""
        rows = self._conn().execute("SELECT * FROM calibration ORDER BY recorded_ns, signal")
        return [
            Calibration(
                signal,
                a,
                b,
                None if math.isinf(lo) else lo,
                None if math.isinf(hi) else hi,
                None if since == _INT64_MIN else since,
                None if until == _INT64_MAX else until,
                bool(invalidate),
                recorded,
            )
            for signal, a, b, lo, hi, since, until, invalidate, recorded in rows
        ]

    def dead_letters(self, source: str | None = None) -> list[DeadLetter]:
        """Dead letters, oldest first; each payload cut to its first 4 KiB (``size``: its length)."""
        return read_dead_letters(self._conn(), source)

    def conflicts(
        self, signal_name: str | None = None, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[Conflict]:
        """Readings refused because another value was stored first, by signal time in [start, end)."""
        return read_conflicts(self._conn(), signal_name, *_span(start_ns, end_ns))

    def count_conflicts(
        self,
        signal_names: Sequence[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> int:
        """How many readings of these signals (None: all) in [start, end) were refused as conflicts."""
        q = "SELECT count(*) FROM conflict JOIN signal ON signal.id = conflict.signal"
        q += " WHERE ts >= ? AND ts < ?"
        args: list[object] = [*_span(start_ns, end_ns)]
        if signal_names is not None:
            q += f" AND name IN ({','.join('?' * len(signal_names))})"
            args.extend(signal_names)
        return int(self._conn().execute(q, args).fetchone()[0])


def _span(start_ns: int | None, end_ns: int | None) -> tuple[int, int]:
    return (_INT64_MIN if start_ns is None else start_ns, _INT64_MAX if end_ns is None else end_ns)
