"""The worked examples of docs/method.md § 14, from tests/data/worked_examples.json.

Tests check them as tables: each :func:`row` is one value computed by kilnwatch and the value the
example gives for it, with the tolerance of that comparison; :func:`assert_reproduces` compares.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from numpy.testing import assert_allclose

WE_FILE = Path(__file__).parents[1] / "data" / "worked_examples.json"
WE: dict[str, dict[str, Any]] = {e["id"]: e for e in json.loads(WE_FILE.read_text())}
#: Four significant figures, with margin for the printed rounding of the examples.
RTOL = 5e-5
#: assert_allclose's own default relative tolerance, for rows that compare to it.
RTOL_DEFAULT = 1e-7
#: Marks a row compared exactly (``==``; ``is`` for booleans).
EXACT = None

ROW_ARGS = ("computed", "expected", "rtol", "atol")


def inp(we: str, key: str) -> Any:
    return WE[we]["inputs"][key]["value"]


def mid(we: str, key: str) -> Any:
    return WE[we]["intermediate"][key]["value"]


def exp(we: str, key: str) -> Any:
    return WE[we]["expected"][key]["value"]


def row(
    id: str, computed: Callable[[], Any], expected: Any, rtol: float | None = RTOL, atol: float = 0.0
) -> Any:
    """One table row: ``computed()`` must reproduce ``expected`` within ``rtol``/``atol``
    (``rtol=EXACT``: exactly)."""
    return pytest.param(computed, expected, rtol, atol, id=id)


def assert_reproduces(computed: Callable[[], Any], expected: Any, rtol: float | None, atol: float) -> None:
    got = computed()
    if rtol is EXACT:
        if isinstance(expected, bool):
            assert got is expected
        else:
            assert got == expected
        return
    assert_allclose(got, expected, rtol=rtol, atol=atol)
