"""Connections to the store file: WAL (readers never wait for the writer), a busy timeout (the
writers of the readings, the aggregates and the operators' tables take turns), usable from threads."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: Path | str, *, readonly: bool = False, mmap_bytes: int = 0) -> sqlite3.Connection:
    """``mmap_bytes``: how much of the file a read connection maps into memory (0: none); its pages
    are then read without a system call each, which counts them in the process's resident memory."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
        conn.execute(f"PRAGMA mmap_size={int(mmap_bytes)}")
    else:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn
