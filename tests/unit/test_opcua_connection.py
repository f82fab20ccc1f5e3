"""The OPC UA connection: watchdog verdict, node resolution, subscription parameters."""

from __future__ import annotations

import pytest
from asyncua import ua
from pydantic import ValidationError

from collector.sources.opcua.connection import (
    resolve_nodes,
    subscription_parameters,
    url_without_credentials,
    watchdog_verdict,
)
from collector.sources.opcua.spec import OpcUaServerSpec

URL = "opc.tcp://127.0.0.1:4840/"


@pytest.mark.parametrize(
    ("connected", "last_activity", "lost_since", "rebuild"),
    [
        (True, 95.0, None, None),  # quiet for 5 s of 10 allowed
        (True, 89.0, None, "nothing received for 11.0 s"),  # stale
        (False, 50.0, 95.0, None),  # asyncua still reconnecting, within its allowance
        (False, 50.0, 79.0, "reconnect has not succeeded for 21.0 s"),  # reconnect stalled
        (False, 50.0, None, None),  # not yet noticed as lost
    ],
)
def test_watchdog_verdict(
    connected: bool, last_activity: float, lost_since: float | None, rebuild: str | None
) -> None:
    verdict = watchdog_verdict(
        connected=connected,
        now=100.0,
        last_activity=last_activity,
        lost_since=lost_since,
        stale_after_s=10.0,
        reconnect_stall_s=20.0,
    )
    if rebuild is None:
        assert verdict is None
    else:
        assert verdict is not None and rebuild in verdict


def test_nodes_resolve_by_uri_whatever_the_index() -> None:
    parsed = [
        ua.NodeId.from_string(s) for s in ("nsu=urn:kiln;s=flow", "nsu=urn:gone;i=5", "nsu=urn:kiln;i=42")
    ]
    resolved, used, missing = resolve_nodes(
        parsed, ["http://opcfoundation.org/UA/", "urn:a", "urn:b", "urn:kiln"]
    )
    assert resolved == [(0, ua.NodeId.from_string("ns=3;s=flow")), (2, ua.NodeId.from_string("ns=3;i=42"))]
    assert used == {"urn:kiln": 3}
    assert missing == [1]
    resolved, used, _ = resolve_nodes(parsed, ["http://opcfoundation.org/UA/", "urn:kiln"])
    assert resolved[0] == (0, ua.NodeId.from_string("ns=1;s=flow"))
    assert used == {"urn:kiln": 1}


def test_keepalives_arrive_well_within_the_stale_time() -> None:
    p = subscription_parameters(OpcUaServerSpec(url=URL, publishing_interval_ms=200, stale_after_s=30))
    assert p.RequestedPublishingInterval == 200
    assert p.RequestedMaxKeepAliveCount * 0.2 == pytest.approx(10.0)  # a keep-alive every 10 s
    assert p.RequestedLifetimeCount >= 3 * p.RequestedMaxKeepAliveCount


@pytest.mark.parametrize(
    "settings",
    [
        {"security_policy": "Basic256Sha256"},  # mode missing
        {"security_mode": "Sign"},  # policy missing
        {"security_policy": "Basic256Sha256", "security_mode": "Sign"},  # no certificate
    ],
)
def test_inconsistent_security_settings_are_rejected(settings: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        OpcUaServerSpec(url=URL, **settings)  # type: ignore[arg-type]


def test_urls_are_logged_without_credentials() -> None:
    assert url_without_credentials("opc.tcp://user:pw@plc.local:4840/ua") == "opc.tcp://plc.local:4840/ua"
    assert url_without_credentials(URL) == URL
