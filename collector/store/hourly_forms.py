"""The hourly report's rows kept beside each stored hour, and the hour's change sequence.

``hourly_report`` holds, for each row of ``hourly`` (the hour's full record, ``data``), its report
row as :mod:`analytics.stored_rows` makes it: ``report`` (JSON), ``flat`` (the CSV cells) and
``line`` (the RFC 4180 line). A year
of hours then splices 1.5 KiB of stored text per hour instead of decoding 7 KiB of record and
building a row object; the table is apart from ``hourly`` so that a report reads only its small
rows (decision 0031).

``change_seq``: a store-wide counter (``store_meta``), raised for every hour written or revised; an
hour written again with the same record keeps its number. The write connection takes the counter
inside its write transaction (``BEGIN IMMEDIATE``), so numbers commit in order: a reader that saw
number N has seen every change up to N.

The report rows are tied to the hourly schema (:func:`analytics.stored_rows.form_id`); when it
differs from the one the rows were written with, they are written again on opening, with new
numbers (their content changed).
"""

import json
import logging
import sqlite3
from collections.abc import Iterable
from typing import Any

from analytics import stored_rows
from analytics.aggregates import HourAggregate, hour_from_dict

log = logging.getLogger("kilnwatch")

META = "CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"
# A rowid table: its 1.5 KiB rows fit a page (a WITHOUT ROWID row spills above ~1 KiB), half the read time.
TABLE = """
CREATE TABLE IF NOT EXISTS hourly_report (
    kiln TEXT NOT NULL, ts INTEGER NOT NULL, change_seq INTEGER NOT NULL, report BLOB NOT NULL,
    flat BLOB NOT NULL, line BLOB NOT NULL, PRIMARY KEY (kiln, ts)
);
CREATE INDEX IF NOT EXISTS hourly_report_seq ON hourly_report(change_seq);
"""
_SEQ_KEY = "hourly_change_seq"
_FORM_KEY = "hourly_form"
_BACKFILL_CHUNK = 500


def migrate(conn: sqlite3.Connection) -> None:
    """Report rows and numbers for the stored hours without (a store written before they were kept,
    or with another hourly schema), numbered in time order. Idempotent."""
    conn.execute(META)
    conn.executescript(TABLE)
    current = stored_rows.form_id()
    stored = conn.execute("SELECT value FROM store_meta WHERE key = ?", (_FORM_KEY,)).fetchone()
    if stored is not None and stored[0] != current:  # derived data: made again, with its table
        conn.execute("DROP TABLE hourly_report")
        conn.executescript(TABLE)
    done = 0
    while True:
        rows = conn.execute(
            "SELECT h.kiln, h.ts, h.data FROM hourly h LEFT JOIN hourly_report r USING (kiln, ts)"
            " WHERE r.ts IS NULL ORDER BY h.ts, h.kiln LIMIT ?",
            (_BACKFILL_CHUNK,),
        ).fetchall()
        if not rows:
            break
        conn.execute("BEGIN IMMEDIATE")
        try:
            first = next_seq(conn, len(rows))
            conn.executemany(
                "INSERT INTO hourly_report VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (k, ts, first + i, *stored_rows.forms(hour_from_dict(json.loads(d))))
                    for i, (k, ts, d) in enumerate(rows)
                ],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done += len(rows)
    if done:
        log.info("store: report rows and change numbers of %d stored hours written", done)
    conn.execute("INSERT OR REPLACE INTO store_meta VALUES (?, ?)", (_FORM_KEY, current))


def next_seq(conn: sqlite3.Connection, n: int) -> int:
    """Reserve ``n`` numbers; the first of them. Inside the caller's write transaction."""
    row = conn.execute("SELECT value FROM store_meta WHERE key = ?", (_SEQ_KEY,)).fetchone()
    last = int(row[0]) if row else 0
    conn.execute("INSERT OR REPLACE INTO store_meta VALUES (?, ?)", (_SEQ_KEY, str(last + n)))
    return last + 1


def newest_seq(conn: sqlite3.Connection) -> int:
    """The newest number given out (0: none yet, or a store written before numbers)."""
    try:
        row = conn.execute("SELECT value FROM store_meta WHERE key = ?", (_SEQ_KEY,)).fetchone()
    except sqlite3.OperationalError:  # no store_meta: a store written before numbers
        return 0
    return int(row[0]) if row else 0


def write_hours(conn: sqlite3.Connection, hours: Iterable[HourAggregate]) -> None:
    """Insert or revise hours inside the caller's write transaction. An hour written again with the
    same record keeps its report row and number: it is no revision."""
    changed: list[tuple[Any, ...]] = []
    for h in hours:
        cur = conn.execute(
            "INSERT INTO hourly VALUES (?, ?, ?, ?) ON CONFLICT (kiln, ts) DO UPDATE"
            " SET revision = excluded.revision, data = excluded.data WHERE hourly.data IS NOT excluded.data",
            (h.kiln, h.start_ns, h.revision, json.dumps(h.to_dict())),
        )
        if cur.rowcount:
            changed.append((h.kiln, h.start_ns, *stored_rows.forms(h)))
    if not changed:
        return
    first = next_seq(conn, len(changed))
    conn.executemany(
        "INSERT OR REPLACE INTO hourly_report VALUES (?, ?, ?, ?, ?, ?)",
        [(k, ts, first + i, *made) for i, (k, ts, *made) in enumerate(changed)],
    )
