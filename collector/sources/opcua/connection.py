"""One OPC UA connection: building the client, resolving its nodes and the watchdog's verdict
(backoff and outage logging are the shared supervisor's).

The source runs one connection after another. asyncua's own auto-reconnect handles the
common restart; the watchdog decides when that is not enough and the client is rebuilt:

    connected, nothing received for stale_after_s        → rebuild ("stale")
    not connected for reconnect_stall_s                  → rebuild ("reconnect stalled")
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence
from typing import Final
from urllib.parse import urlsplit

from asyncua import Client, ua
from asyncua.client.ua_client import UaClientState

from .spec import OpcUaServerSpec

log = logging.getLogger(__name__)


class Rebuild(Exception):
    """The running client is to be torn down and built again; the message says why."""


def watchdog_verdict(
    *,
    connected: bool,
    now: float,
    last_activity: float,
    lost_since: float | None,
    stale_after_s: float,
    reconnect_stall_s: float,
) -> str | None:
    """Why the client must be rebuilt, or None while it is fine or still recovering by itself.

    ``now``, ``last_activity`` (last publish response, keep-alives included, or the time the
    connection was made) and ``lost_since`` are monotonic times [s].
    """
    if connected:
        quiet = now - last_activity
        if quiet >= stale_after_s:
            return f"nothing received for {quiet:.1f} s while connected"
        return None
    if lost_since is not None and now - lost_since >= reconnect_stall_s:
        return f"reconnect has not succeeded for {now - lost_since:.1f} s"
    return None


# -- building the client -----------------------------------------------------------------------

#: Keep-alives per stale period, so a quiet but healthy subscription is never taken for stale.
KEEPALIVES_PER_STALE: Final = 3
#: asyncua's default subscription lifetime [publishing intervals]; must be >= 3 keep-alives.
LIFETIME_COUNT: Final = 10_000


def make_client(spec: OpcUaServerSpec, instance_id: str, backoff_cap_s: float) -> Client:
    """An asyncua client with its auto-reconnect on (asyncua 2.1 has it off by default)."""
    client = Client(
        spec.url,
        timeout=spec.connect_timeout_s,
        # asyncua probes the server every interval with that as timeout; its 1 s default takes a
        # busy server for a dead one and reconnects for nothing
        watchdog_intervall=spec.connect_timeout_s,
        auto_reconnect=True,
        reconnect_max_delay=backoff_cap_s,
        reconnect_request_timeout=spec.connect_timeout_s,
    )
    client.name = client.description = f"kilnwatch {instance_id}"
    client.application_uri = f"urn:kilnwatch:{instance_id}"
    return client


def subscription_parameters(spec: OpcUaServerSpec) -> ua.CreateSubscriptionParameters:
    interval_ms = spec.publishing_interval_ms
    keepalive = max(1, math.ceil(spec.stale_after_s * 1000.0 / KEEPALIVES_PER_STALE / interval_ms))
    return ua.CreateSubscriptionParameters(
        RequestedPublishingInterval=interval_ms,
        RequestedLifetimeCount=max(LIFETIME_COUNT, 3 * keepalive),
        RequestedMaxKeepAliveCount=keepalive,
        MaxNotificationsPerPublish=0,
        PublishingEnabled=True,
        Priority=0,
    )


def parse_nodes(nodes: Sequence[str]) -> list[ua.NodeId]:
    """Node id strings like 'nsu=urn:plant:kiln;s=kiln1.flow'; ValueError unless by namespace URI."""
    parsed = [ua.NodeId.from_string(node) for node in nodes]
    for node, node_id in zip(nodes, parsed, strict=True):
        if not getattr(node_id, "NamespaceUri", None):
            raise ValueError(f"OPC UA node {node!r} is not addressed by namespace URI (nsu=...)")
    return parsed


def resolve_nodes(
    parsed: Sequence[ua.NodeId], namespace_array: Sequence[str]
) -> tuple[list[tuple[int, ua.NodeId]], dict[str, int], list[int]]:
    """Node ids by namespace URI → by the server's current index.

    Returns (position, node id) of each resolved node, the index used for each URI and the
    positions whose URI the server does not know.
    """
    index = {uri: i for i, uri in enumerate(namespace_array)}
    resolved: list[tuple[int, ua.NodeId]] = []
    used: dict[str, int] = {}
    missing: list[int] = []
    for position, node in enumerate(parsed):
        uri = getattr(node, "NamespaceUri", None)
        if uri is None or uri not in index:
            missing.append(position)
            continue
        used[uri] = index[uri]
        resolved.append((position, ua.NodeId(node.Identifier, ua.Int16(index[uri]), node.NodeIdType)))
    return resolved, used, missing


def monitor_request(spec: OpcUaServerSpec, handle: int, node_id: ua.NodeId) -> ua.MonitoredItemCreateRequest:
    """A data-change monitored item whose client handle is the node's position in the source."""
    params = ua.MonitoringParameters(
        ClientHandle=handle,
        SamplingInterval=spec.sampling_interval_ms,
        QueueSize=spec.queue_size,
        DiscardOldest=True,
    )
    return ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(NodeId=node_id, AttributeId=ua.AttributeIds.Value),
        MonitoringMode=ua.MonitoringMode.Reporting,
        RequestedParameters=params,
    )


def describe_error(err: BaseException) -> str:
    """A short reason for logs and health; never contains credentials."""
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, ua.UaStatusCodeError):
        return f"server answered {type(err).__name__}"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


async def close_client(client: Client, timeout_s: float) -> None:
    """Stop the client's tasks and drop its connection; a dead server is no error here."""
    try:
        async with asyncio.timeout(timeout_s):
            if client.state is UaClientState.CONNECTED:
                await client.disconnect()
            else:  # stops asyncua's supervisor without the transport calls that would fail
                await client.close_session()
    except Exception as err:
        log.debug("closing an OPC UA client: %s", describe_error(err))
    with contextlib.suppress(Exception):
        client.disconnect_socket()


def url_without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
