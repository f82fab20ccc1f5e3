"""Shared test configuration: real servers on 127.0.0.1 come from the fixture plugins below."""

from __future__ import annotations

import importlib.util

pytest_plugins = [
    name
    for name in (
        "tests.fixtures.ports",
        "tests.fixtures.mosquitto",
        "tests.fixtures.victoria",
        "tests.fixtures.service",
    )
    if importlib.util.find_spec(name) is not None
]
