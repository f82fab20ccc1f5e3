"""The audit trail keeps what was appended, in order, and cannot be changed or emptied."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from collector.store.audit import AuditTrail


def test_rows_come_back_in_order_with_their_states(tmp_path: Path) -> None:
    trail = AuditTrail(tmp_path / "s.db")
    first = trail.record(
        "alice", "alarm.acknowledge", "kiln1/stale", before={"ack": False}, after={"ack": True}
    )
    trail.record("bob", "annotation.create", "annotation/1", after={"kind": "kiln_stopped"}, reason="stop")
    rows = trail.entries()
    assert [r.id for r in rows] == [first.id, first.id + 1]
    assert rows[0].before == {"ack": False} and rows[0].after == {"ack": True}
    assert rows[1].reason == "stop" and rows[1].before is None
    assert [r.actor for r in trail.entries(action="annotation.")] == ["bob"]
    assert [r.actor for r in trail.entries(subject_prefix="kiln1/")] == ["alice"]
    assert trail.entries(after_id=rows[-1].id) == []
    trail.close()


def test_no_row_can_be_updated_or_deleted(tmp_path: Path) -> None:
    trail = AuditTrail(tmp_path / "s.db")
    trail.record("alice", "manual.create", "manual/1", after={"v": 1})
    trail.close()
    conn = sqlite3.connect(tmp_path / "s.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit SET actor = 'mallory'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit")
    assert conn.execute("SELECT actor FROM audit").fetchall() == [("alice",)]
