"""Annotations: time-ranged notes on a kiln's timeline, kept in the store file, revised, never erased.

Kinds: ``kiln_stopped`` (the kiln did not operate: its hours are not substituted and its analyser
alarms are suppressed), ``maintenance``, ``analyser_swap``, ``fuel_change``, ``note``. An annotation
is created with a start and an optional end (open: still going on); ending it or cancelling it
appends a revision, so every state it ever had stays in the table (SQLite triggers refuse UPDATE
and DELETE). With an InfluxDB historian each revision also goes into the outbox, in the same
transaction, as a point of the ``annotation`` measurement (see
:func:`collector.outputs.historian.line_protocol.annotation_line`).

For the alarm engine: :meth:`AnnotationStore.is_stopped` says from memory (no query) whether a
current ``kiln_stopped`` annotation covers a time::

    ctx.annotations.is_stopped("kiln1", time.time_ns())  # -> bool
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from collector.outputs.historian.line_protocol import annotation_line

from .revisions import RevisedTable, append_only

KILN_STOPPED: Final = "kiln_stopped"
KINDS: Final = (KILN_STOPPED, "maintenance", "analyser_swap", "fuel_change", "note")

SCHEMA = """
CREATE TABLE IF NOT EXISTS annotation (
    id INTEGER NOT NULL, revision INTEGER NOT NULL, kiln TEXT NOT NULL, kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL, end_ns INTEGER, title TEXT NOT NULL, text TEXT NOT NULL,
    cancelled INTEGER NOT NULL, actor TEXT NOT NULL, at_ns INTEGER NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (id, revision)
);
CREATE INDEX IF NOT EXISTS annotation_kiln ON annotation(kiln, start_ns);
""" + append_only("annotation")
_COLUMNS = "id, revision, kiln, kind, start_ns, end_ns, title, text, cancelled, actor, at_ns, reason"


@dataclass(frozen=True, slots=True)
class Annotation:
    """One revision of an annotation; ``end_ns`` None: open (still going on)."""

    id: int
    revision: int
    kiln: str
    kind: str
    start_ns: int
    end_ns: int | None
    title: str
    text: str
    cancelled: bool
    actor: str  # who made this revision
    at_ns: int  # when
    reason: str

    def covers(self, lo: int, hi: int) -> bool:
        """Whether this (not cancelled) annotation overlaps [lo, hi)."""
        return not self.cancelled and self.start_ns < hi and (self.end_ns is None or self.end_ns > lo)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AnnotationStore:
    """Annotations of one store file. Thread-safe; the current ones are held in memory.

    ``plants``: kiln -> plant id (the ``plant`` tag of exported points); ``export``: write each
    revision into the InfluxDB outbox too.
    """

    def __init__(self, path: Path | str, plants: dict[str, str] | None = None, export: bool = False) -> None:
        self._table = RevisedTable(path, SCHEMA)
        self._plants = plants or {}
        self._export = export
        self._lock = threading.Lock()
        self._current: dict[int, Annotation] = {}
        with self._table.lock:
            rows = self._table.conn.execute(
                f"SELECT {_COLUMNS} FROM annotation a WHERE revision ="
                " (SELECT MAX(revision) FROM annotation b WHERE b.id = a.id)"
            ).fetchall()
        self._current = {r[0]: _annotation(r) for r in rows}

    def close(self) -> None:
        self._table.close()

    def create(
        self,
        kiln: str,
        kind: str,
        start_ns: int,
        end_ns: int | None,
        title: str,
        text: str,
        actor: str,
        reason: str = "",
    ) -> Annotation:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
        if end_ns is not None and end_ns <= start_ns:
            raise ValueError("the end must be after the start")
        with self._lock:
            new_id = max(self._current, default=0) + 1
            a = Annotation(
                new_id, 0, kiln, kind, start_ns, end_ns, title, text, False, actor, time.time_ns(), reason
            )
            self._append(a)
            return a

    def revise(
        self,
        annotation_id: int,
        actor: str,
        *,
        end_ns: int | None = None,
        cancel: bool = False,
        reason: str = "",
    ) -> tuple[Annotation, Annotation]:
        """End (``end_ns``) or cancel an annotation: a new revision. Returns (before, after);
        KeyError for an unknown id, ValueError for a change that cannot be made."""
        with self._lock:
            before = self._current[annotation_id]
            if before.cancelled:
                raise ValueError(f"annotation {annotation_id} is cancelled")
            end = before.end_ns if end_ns is None else end_ns
            if end is not None and end <= before.start_ns:
                raise ValueError("the end must be after the start")
            if not cancel and end_ns is None:
                raise ValueError("nothing to change: give an end or cancel")
            after = Annotation(
                before.id,
                before.revision + 1,
                before.kiln,
                before.kind,
                before.start_ns,
                end,
                before.title,
                before.text,
                cancel,
                actor,
                time.time_ns(),
                reason,
            )
            self._append(after)
            return before, after

    def _append(self, a: Annotation) -> None:
        """Write one revision (and its outbox row) in one transaction, then hold it as current."""
        conn = self._table.conn
        with self._table.lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    f"INSERT INTO annotation({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        a.id,
                        a.revision,
                        a.kiln,
                        a.kind,
                        a.start_ns,
                        a.end_ns,
                        a.title,
                        a.text,
                        int(a.cancelled),
                        a.actor,
                        a.at_ns,
                        a.reason,
                    ),
                )
                if self._export:
                    line = annotation_line(
                        a.id,
                        self._plants.get(a.kiln, ""),
                        a.kiln,
                        a.kind,
                        a.start_ns,
                        a.end_ns,
                        a.title,
                        a.text,
                        a.revision,
                        a.cancelled,
                    )
                    conn.execute(
                        "INSERT INTO outbox(created_ns, oldest_ns, n_points, body) VALUES (?, ?, ?, ?)",
                        (time.time_ns(), a.start_ns, 1, line.encode()),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._current[a.id] = a

    # -- reading --------------------------------------------------------------------------

    def get(self, annotation_id: int) -> Annotation | None:
        with self._lock:
            return self._current.get(annotation_id)

    def current(self, kiln: str, start_ns: int | None = None, end_ns: int | None = None) -> list[Annotation]:
        """The current revision of the kiln's annotations (cancelled ones too) overlapping
        [start, end) (default: all), by start."""
        lo = start_ns if start_ns is not None else -(2**63)
        hi = end_ns if end_ns is not None else 2**63 - 1
        with self._lock:
            found = [
                a
                for a in self._current.values()
                if a.kiln == kiln and a.start_ns < hi and (a.end_ns is None or a.end_ns > lo)
            ]
        return sorted(found, key=lambda a: (a.start_ns, a.id))

    def history(self, annotation_id: int) -> list[Annotation]:
        """Every revision of one annotation, oldest first."""
        with self._table.lock:
            rows = self._table.conn.execute(
                f"SELECT {_COLUMNS} FROM annotation WHERE id = ? ORDER BY revision", (annotation_id,)
            ).fetchall()
        return [_annotation(r) for r in rows]

    def stopped_ranges(self, kiln: str) -> list[tuple[int, int | None]]:
        """[start, end) of the kiln's current ``kiln_stopped`` annotations (end None: open)."""
        with self._lock:
            return [
                (a.start_ns, a.end_ns)
                for a in self._current.values()
                if a.kiln == kiln and a.kind == KILN_STOPPED and not a.cancelled
            ]

    def is_stopped(self, kiln: str, ts_ns: int) -> bool:
        """Whether a current ``kiln_stopped`` annotation of ``kiln`` covers ``ts_ns`` (from memory)."""
        return any(s <= ts_ns and (e is None or ts_ns < e) for s, e in self.stopped_ranges(kiln))


def _annotation(r: tuple[Any, ...]) -> Annotation:
    return Annotation(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]), r[9], r[10], r[11])
