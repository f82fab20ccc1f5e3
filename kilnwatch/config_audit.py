"""The ``config.loaded`` audit row: the plant file's SHA-256 at start-up, written only when it differs
from the newest such row (with the previous hash as ``before``), so the trail shows each change of
configuration once, not every restart."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson

from collector.store.audit import AuditEntry, AuditTrail

from .config import PlantFile

ACTION = "config.loaded"
#: The actor of what the service itself saw.
SERVICE_ACTOR = "kilnwatch"


def plant_digest(plant: PlantFile, path: Path | str | None) -> tuple[str, str]:
    """(sha256 hex, what was hashed): the file's bytes, or for a plant built in code (the demo) its
    canonical JSON."""
    if path is not None:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest(), str(Path(path).resolve())
    canonical = orjson.dumps(plant.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest(), "<built-in plant>"


def record_config_loaded(audit: AuditTrail, sha256: str, source: str) -> AuditEntry | None:
    """Append the row when the hash differs from the newest ``config.loaded`` row; returns it, or None."""
    newest = audit.newest(ACTION)
    previous: dict[str, Any] | None = newest.after if newest is not None else None
    if previous is not None and previous.get("sha256") == sha256:
        return None
    return audit.record(
        SERVICE_ACTOR,
        ACTION,
        "plant",
        before=previous,
        after={"sha256": sha256, "file": source},
        reason="start-up" if previous is None else "the plant file changed",
    )
