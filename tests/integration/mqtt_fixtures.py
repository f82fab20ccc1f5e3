"""pytest plugin of the MQTT collector tests: the session's mosquitto, running, and a per-test prefix."""

from __future__ import annotations

import uuid

import pytest

from tests.fixtures.mosquitto import Mosquitto


@pytest.fixture
def broker(mosquitto: Mosquitto) -> Mosquitto:
    mosquitto.start()  # a no-op unless an earlier test left it stopped
    return mosquitto


@pytest.fixture
def prefix() -> str:
    """Topics and client ids of one test: the broker (and its sessions) outlive the test."""
    return f"kwtest/{uuid.uuid4().hex[:10]}"
