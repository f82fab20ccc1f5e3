"""Modes of kilnwatch's own files: the data directory 0700 and its files 0600, or 0750/0640 when
the operator lets kilnwatch's group read them (``KILNWATCH_DATA_GROUP_READABLE``)."""

from __future__ import annotations

import os
from pathlib import Path


def dir_mode(group_readable: bool) -> int:
    return 0o750 if group_readable else 0o700


def file_mode(group_readable: bool) -> int:
    return 0o640 if group_readable else 0o600


def private_dir(path: Path, group_readable: bool = False) -> Path:
    """Create ``path`` (and missing parents) and give it the data directory's mode."""
    path.mkdir(parents=True, exist_ok=True, mode=dir_mode(group_readable))
    os.chmod(path, dir_mode(group_readable))
    return path


def private_file(path: Path, group_readable: bool = False, *, companions: tuple[str, ...] = ()) -> Path:
    """Create ``path`` empty if it is missing, and give it and its existing ``companions`` (suffixes,
    such as SQLite's ``-wal`` and ``-shm``) the file mode. SQLite creates its WAL and shared-memory
    files with the mode of the database file, so setting the database's is enough for new ones."""
    mode = file_mode(group_readable)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, mode))
    for p in (path, *(path.with_name(path.name + s) for s in companions)):
        if p.exists():
            os.chmod(p, mode)
    return path
