"""The outbox's draining side on a real SQLite file: each row handed out once, oldest first,
depth counted right, also when SQLite reuses the ids of deleted rows."""

from __future__ import annotations

from pathlib import Path

from collector.store.local import LocalStore
from collector.store.outbox import INFLUX_SOURCE, Outbox, exact_depth
from collector.store.reader import StoreReader


def _store(tmp_path: Path) -> tuple[LocalStore, Outbox]:
    store = LocalStore(tmp_path / "kw.sqlite3", [])
    return store, Outbox(store.path)


def _add(store: LocalStore, *labels: str) -> None:
    store.write_aggregates(outbox=[(0, 1, f"line {x}\n".encode()) for x in labels])


def _check_depth(store: LocalStore, outbox: Outbox) -> int:
    tracked, exact = outbox.depth(), exact_depth(store.connection)
    assert tracked == exact
    return tracked.rows


def test_batches_are_oldest_first_and_limited(tmp_path: Path) -> None:
    store, outbox = _store(tmp_path)
    _add(store, "a", "b", "c", "d", "e")
    first = outbox.next_batch(max_points=2, max_bytes=10**6)
    second = outbox.next_batch(max_points=10, max_bytes=len("line c\nline d\n"))
    third = outbox.next_batch(max_points=10, max_bytes=1)  # one row even if larger than the limit
    assert first and second and third
    assert (first.body, first.n_rows, first.n_points) == (b"line a\nline b\n", 2, 2)
    assert second.body == b"line c\nline d\n"
    assert third.body == b"line e\n"
    assert outbox.next_batch(10, 10**6) is None
    outbox.rewind()  # after abandoning in-flight batches, they are handed out again
    again = outbox.next_batch(10, 10**6)
    assert again and again.body == b"line a\nline b\nline c\nline d\nline e\n"


def test_acks_in_any_order_with_reused_ids_lose_nothing(tmp_path: Path) -> None:
    store, outbox = _store(tmp_path)
    _add(store, "0", "1", "2", "3")
    assert _check_depth(store, outbox) == 4
    low, high = outbox.next_batch(2, 10**6), outbox.next_batch(2, 10**6)
    assert low and high and outbox.next_batch(2, 10**6) is None

    outbox.ack(high)  # the highest ids go: SQLite gives the next row id 3 again
    _add(store, "4")
    assert _check_depth(store, outbox) == 3
    newer = outbox.next_batch(10, 10**6)
    assert newer and newer.body == b"line 4\n" and newer.first_id == 3

    outbox.ack(low)
    outbox.ack(newer)
    assert _check_depth(store, outbox) == 0
    _add(store, "5", "6")  # the table was empty: ids start at 1 again
    assert _check_depth(store, outbox) == 2
    last = outbox.next_batch(10, 10**6)
    assert last and last.body == b"line 5\nline 6\n"

    outbox.dead_letter(last, [(b"line 5", "HTTP 400: unable to parse")])
    assert _check_depth(store, outbox) == 0
    letters = StoreReader(store.path).dead_letters(INFLUX_SOURCE)
    assert [(d.payload, d.reason) for d in letters] == [(b"line 5", "HTTP 400: unable to parse")]


def test_deleting_sent_rows_does_not_write_their_bodies_again(tmp_path: Path) -> None:
    """A sent row's freed pages are not zeroed through the WAL (Debian's SQLite default)."""
    store, outbox = _store(tmp_path)
    body = b"reading,kiln=k1 value=1 1\n" * 80_000  # ~2 MB, nearly all overflow pages
    store.write_aggregates(outbox=[(0, 80_000, body)])
    store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = Path(f"{store.path}-wal")
    assert wal.stat().st_size == 0
    batch = outbox.next_batch(100_000, 10**7)
    assert batch is not None and batch.n_points == 80_000
    outbox.ack(batch)
    assert _check_depth(store, outbox) == 0
    assert wal.stat().st_size < len(body) // 10
