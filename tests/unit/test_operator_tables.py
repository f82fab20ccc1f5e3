"""The annotation and manual-value tables: revised, never erased; reopened from the file; annotations
exported to the outbox as Grafana-ready line protocol."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from analytics.overrides import CLINKER_CAO_PCT, ManualEntry
from collector.store.annotations import AnnotationStore
from collector.store.local import LocalStore
from collector.store.manual_data import ManualDataStore

T0 = 1_767_225_600 * 10**9
H = 3600 * 10**9


def test_annotations_are_revised_and_exported(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    LocalStore(path, ["k.flow"]).close()  # the outbox table
    store = AnnotationStore(path, {"kiln1": "demo"}, export=True)
    a = store.create("kiln1", "kiln_stopped", T0, None, 'Stop "A"', "trip, ID fan", "olga", "trip")
    assert store.is_stopped("kiln1", T0 + 5 * H) and not store.is_stopped("kiln1", T0 - 1)
    assert not store.is_stopped("kiln2", T0)
    before, after = store.revise(a.id, "olga", end_ns=T0 + 2 * H)
    assert (before.end_ns, after.end_ns, after.revision) == (None, T0 + 2 * H, 1)
    assert not store.is_stopped("kiln1", T0 + 2 * H)
    with pytest.raises(ValueError):
        store.revise(a.id, "olga", end_ns=T0 - H)
    store.close()

    again = AnnotationStore(path)
    assert again.current("kiln1") == [after]
    assert [x.revision for x in again.history(a.id)] == [0, 1]
    assert again.stopped_ranges("kiln1") == [(T0, T0 + 2 * H)]
    again.close()

    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="revised"):
        conn.execute("UPDATE annotation SET title = 'x'")
    with pytest.raises(sqlite3.DatabaseError, match="revised"):
        conn.execute("DELETE FROM annotation")
    bodies = [b.decode() for (b,) in conn.execute("SELECT body FROM outbox ORDER BY id")]
    conn.close()
    assert bodies[0] == (
        "annotation,annotation_id=1,kiln=kiln1,kind=kiln_stopped,plant=demo "
        'title="Stop \\"A\\"",text="trip, ID fan",tags="kiln_stopped,kiln1",revision=0i,cancelled=false '
        f"{T0}\n"
    )
    assert f"time_end={(T0 + 2 * H) // 10**6}i,revision=1i" in bodies[1]


def test_manual_values_are_withdrawn_not_deleted(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = ManualDataStore(path)
    entry = ManualEntry("kiln1", CLINKER_CAO_PCT, 64.0, "wt %", T0, None, None, "lab 1")
    (r,) = store.add([entry], "olga", "api")
    assert [v.value for v in store.values("kiln1")] == [64.0]
    store.withdraw(r.id, "olga", "wrong sample")
    assert store.values("kiln1") == ()
    store.close()
    again = ManualDataStore(path)
    (current,) = again.current("kiln1")
    assert current.withdrawn and current.revision == 1 and current.entry == entry
    again.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM manual_value").fetchone() == (2,)
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute("DELETE FROM manual_value")
    conn.close()
