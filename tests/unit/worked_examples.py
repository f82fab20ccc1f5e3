"""The worked examples of domain.md § 6, from tests/data/worked_examples.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

WE_FILE = Path(__file__).parents[1] / "data" / "worked_examples.json"
WE: dict[str, dict[str, Any]] = {e["id"]: e for e in json.loads(WE_FILE.read_text())}
#: Four significant figures, with margin for the printed rounding of the examples.
RTOL = 5e-5


def inp(we: str, key: str) -> Any:
    return WE[we]["inputs"][key]["value"]


def mid(we: str, key: str) -> Any:
    return WE[we]["intermediate"][key]["value"]


def exp(we: str, key: str) -> Any:
    return WE[we]["expected"][key]["value"]
