"""OPC UA source: one supervised asyncua client and one subscription per server.

``OpcUaSource.run`` connects, resolves the namespace URIs of its nodes to the server's current
indexes, subscribes them and hands readings on as one :class:`ReadingBatch` per flush. asyncua's
auto-reconnect handles a restarting server; the watchdog (:mod:`collector.sources.opcua.connection`)
tears the client down and builds a new one when the subscription goes quiet, the reconnect
stalls or the namespaces moved. Whenever the connection is lost, every node gets one NaN
reading with quality BAD | COMM_LOSS just after the newest source time seen, so that event
time sees the signals go bad instead of holding their last values. After every connect, what
the server's history holds since the newest value of each node is read back
(:mod:`collector.sources.opcua.history`), from the newest stored value at start-up (``resume_from_ns``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from asyncua import Client, ua
from asyncua.client.ua_client import UaClientState
from asyncua.common.subscription import DataChangeEvent, OverflowPolicy, StatusChangeEvent, Subscription

from collector.health import SourceHealth
from collector.metrics import Metrics

from ..registry import SourceContext, SourcePlan
from ..sink import Sink
from ..supervisor import Availability, ConfigurationError, Failed, check_readable
from . import connection as conn
from .connection import Rebuild, watchdog_verdict
from .history import read_missed
from .quality import NO_TS, NodeStats, Outbox, Readings, comm_loss_batch
from .security import configure_security
from .spec import OpcUaServerSpec
from .trust import SecuritySetupError, ServerTrust, UntrustedServer

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S: Final = 0.05
FLUSH_ITEMS: Final = 5000
#: Readings held for a sink that makes the source wait (about 21 bytes each); beyond this,
#: new notifications are dropped, counted per signal and logged. OPC UA cannot be paused.
MAX_HELD_READINGS: Final = 2_000_000
#: asyncua's own event queue, drained at once by the consumer; overflows are counted too.
EVENT_QUEUE_SIZE: Final = 100_000
TEARDOWN_TIMEOUT_S: Final = 2.0


class OpcUaSource:
    """Readings of ``nodes`` on one OPC UA server, as batches into ``sink``.

    One ``run()`` is one client from connect to teardown; it raises :class:`Failed` when that
    ends, and the supervisor runs it again. A node id that cannot be parsed or a certificate,
    key or password file that cannot be read raises :class:`ConfigurationError` here.
    """

    def __init__(
        self,
        name: str,
        spec: OpcUaServerSpec,
        nodes: Sequence[tuple[int, str]],
        sink: Sink,
        health: SourceHealth,
        metrics: Metrics,
        instance_id: str = "kilnwatch",
        *,
        signal_names: Sequence[str] | None = None,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        flush_items: int = FLUSH_ITEMS,
        max_held_readings: int = MAX_HELD_READINGS,
        resume_from_ns: Mapping[int, int] | None = None,
    ) -> None:
        self.name, self.spec, self.sink = name, spec, sink
        self.health, self.metrics, self.instance_id = health, metrics, instance_id
        self.nodes = [(int(sig), node) for sig, node in nodes]
        try:
            self._parsed = conn.parse_nodes([node for _, node in self.nodes])
        except ValueError as err:
            raise ConfigurationError(f"OPC UA source {name}: {err}") from err
        if spec.security_policy != "None":
            check_readable(
                f"OPC UA source {name}",
                {
                    "certificate": spec.certificate,
                    "private_key": spec.private_key,
                    "private_key_password_file": spec.private_key_password_file,
                },
            )
        self._signals = np.array([sig for sig, _ in self.nodes], dtype=np.int32)
        self._labels = [signal_names[sig] if signal_names is not None else node for sig, node in self.nodes]
        self._flush_interval_s, self._flush_items = flush_interval_s, flush_items
        self._outbox = Outbox(self._signals, max_held_readings)
        self._flush_lock = asyncio.Lock()
        self._wake_flusher = asyncio.Event()
        self._stats = NodeStats(len(self.nodes))
        #: Per node: the newest source time held before this run (from the store), for the history read.
        resume = resume_from_ns or {}
        self._resume_ns = np.array([resume.get(sig, NO_TS) for sig, _ in self.nodes], np.int64)
        self._missed_after: npt.NDArray[np.int64] | None = None
        self._read_history = asyncio.Event()
        self._resolved: list[tuple[int, ua.NodeId]] = []
        self._up = False
        self._verified = asyncio.Event()
        self._last_activity = time.monotonic()
        self._dropped = 0
        self._reported: set[str] = set()
        self.status = Availability(
            f"OPC UA source {name} ({conn.url_without_credentials(spec.url)})",
            log,
            health,
            metrics.source_connected.labels(name).set,
        )
        self._task: asyncio.Task[None] | None = None
        self._trust = ServerTrust(spec, name)
        #: A failure reason that was logged where it arose (a refused server certificate).
        self._logged_reason: str | None = None
        if spec.security_policy == "None" and spec.username is not None:
            log.warning(
                "OPC UA source %s sends the user's password in plain text (allow_plaintext_password)", name
            )

    async def run(self) -> None:
        self._task = asyncio.current_task()
        try:
            reason = await self._session()
        except asyncio.CancelledError:
            self._up = False
            self.metrics.source_connected.labels(self.name).set(0)
            self.health.mark_disconnected("stopped")
            await self._flush()
            raise
        finally:
            self._task = None
        raise Failed(reason, logged=reason == self._logged_reason)

    async def stop(self) -> None:
        """End ``run()`` (what was collected goes to the sink first)."""
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait([task])

    async def _session(self) -> str:
        """One client from connect to teardown; returns why it ended."""
        client = conn.make_client(self.spec, self.instance_id, self.status.backoff.cap)
        reason = "subscription ended"
        try:
            async with asyncio.timeout(3 * self.spec.connect_timeout_s):
                await configure_security(client, self.spec, self._trust)
                await client.connect()
                sub, namespaces = await self._subscribe(client)
            self._mark_up()
            await self._serve(client, sub, namespaces)
        except (Rebuild, SecuritySetupError) as err:
            reason = str(err)
        except UntrustedServer as err:
            reason = self._logged_reason = str(err)
        except Exception as err:  # the supervisor's one catch-all: any failure means rebuild
            reason = conn.describe_error(err)
        finally:
            await conn.close_client(client, TEARDOWN_TIMEOUT_S)
        # not reached when cancelled: a stopping process is no lost connection
        await self._connection_lost(reason)
        return reason

    async def _subscribe(self, client: Client) -> tuple[Subscription, dict[str, int]]:
        ns_array: list[str] = await client.get_namespace_array()
        resolved, namespaces, missing = conn.resolve_nodes(self._parsed, ns_array)
        for handle in missing:
            self._report(handle, "its namespace URI is not on the server")
        if not resolved:
            raise Rebuild("none of the configured nodes is on the server")
        sub = await client.create_subscription(
            conn.subscription_parameters(self.spec),
            None,
            queue_maxsize=EVENT_QUEUE_SIZE,
            overflow=OverflowPolicy.DISCONNECT,
        )
        sub.set_overflow_disconnect_handler(lambda: self._drop("any", "client_queue_overflow"))
        self._resolved = resolved
        requests = [conn.monitor_request(self.spec, handle, node_id) for handle, node_id in resolved]
        results = await sub.create_monitored_items(requests)
        failed = [(h, r) for (h, _), r in zip(resolved, results, strict=True) if isinstance(r, ua.StatusCode)]
        for handle, status in failed:
            self._report(handle, f"the server refused it: {status.name}")
        if len(failed) == len(resolved):
            raise Rebuild("the server refused every monitored item")
        return sub, namespaces

    async def _serve(self, client: Client, sub: Subscription, namespaces: dict[str, int]) -> None:
        tasks = [
            asyncio.create_task(self._consume(sub)),
            asyncio.create_task(self._flush_periodically()),
            asyncio.create_task(self._watch(client, sub, namespaces)),
        ]
        history = asyncio.create_task(self._history(client))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (*tasks, history):
                task.cancel()
            await asyncio.gather(*tasks, history, return_exceptions=True)
        for task in done:
            if (err := task.exception()) is not None:
                raise err

    async def _watch(self, client: Client, sub: Subscription, namespaces: dict[str, int]) -> None:
        tick = min(0.5, self.spec.stale_after_s / 4, self.spec.reconnect_stall_s / 4)
        lost_since: float | None = None
        async with client.subscribe_state() as states:
            while True:
                with contextlib.suppress(TimeoutError):
                    await states.next_change(tick)
                connected = client.state is UaClientState.CONNECTED
                if connected and not self._up:
                    # asyncua reconnected by itself: hold notifications until the indexes are checked
                    self._verified.clear()
                    ns_array = await client.get_namespace_array()
                    if conn.resolve_nodes(self._parsed, ns_array)[1] != namespaces:
                        raise Rebuild("the server's namespace indexes changed")
                    lost_since = None
                    self._mark_up()
                elif not connected and self._up:
                    lost_since = time.monotonic()
                    await self._connection_lost(f"connection lost ({client.state.value})")
                verdict = watchdog_verdict(
                    connected=connected,
                    now=time.monotonic(),
                    last_activity=max(self._last_activity, sub.last_publish_at or 0.0),
                    lost_since=lost_since,
                    stale_after_s=self.spec.stale_after_s,
                    reconnect_stall_s=self.spec.reconnect_stall_s,
                )
                if verdict is not None:
                    raise Rebuild(verdict)

    async def _consume(self, sub: Subscription) -> None:
        outbox, collecting, verified = self._outbox, self._outbox.collecting, self._verified
        async for event in sub:
            if not verified.is_set():
                await verified.wait()
            if type(event) is DataChangeEvent:
                item = event.data.monitored_item
                if outbox.full:
                    self._drop(self._labels[item.ClientHandle], "sink_full")
                    continue
                collecting.add(item.ClientHandle, item.Value)
                if len(collecting) >= self._flush_items:
                    self._seal()
                    self._wake_flusher.set()
            elif isinstance(event, StatusChangeEvent) and event.notification.Status.is_bad():
                raise Rebuild(f"the server ended the subscription: {event.notification.Status.name}")

    async def _flush_periodically(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_flusher.wait(), self._flush_interval_s)
            self._wake_flusher.clear()
            await self._flush()

    async def _history(self, client: Client) -> None:
        """After each connect: read back what each node's history holds since its newest value."""
        while True:
            await self._read_history.wait()
            self._read_history.clear()
            after, self._missed_after = self._missed_after, None
            if after is None or not self.spec.history_backfill_h:
                continue
            floor = time.time_ns() - round(self.spec.history_backfill_h * 3600 * 1e9)
            read, without = 0, []
            for handle, node_id in self._resolved:
                if after[handle] == NO_TS:
                    continue  # nothing held yet: nothing known to be missed
                got = await read_missed(client, node_id, max(int(after[handle]), floor))
                if isinstance(got, str):
                    without.append(f"{self._labels[handle]} ({got})")
                    continue
                if got and self._outbox.full:
                    self._drop(self._labels[handle], "sink_full", len(got))
                    continue
                self._outbox.collecting.extend(handle, got)
                read += len(got)
                self._wake_flusher.set()
            if read:
                log.info("OPC UA source %s: %d missed values read from the server's history", self.name, read)
            if without and "history" not in self._reported:
                self._reported.add("history")
                log.info("OPC UA source %s: no history to read for %s", self.name, ", ".join(without))

    def _mark_up(self) -> None:
        # What each node missed starts after the newest value held now (before new notifications).
        self._missed_after = np.maximum(self._stats.newest_ns, self._resume_ns)
        self._read_history.set()
        self._up = True
        self._verified.set()
        self._last_activity = time.monotonic()
        self.metrics.reconnects.labels(self.name).inc()
        if not self.status.up():
            log.info("OPC UA source %s connected; %d nodes subscribed", self.name, len(self.nodes))

    async def _connection_lost(self, reason: str) -> None:
        """Health down and one COMM_LOSS reading per node; once per outage."""
        if not self._up:
            return
        self._up = False
        self.status.down(reason)
        await self._flush(markers=True)

    def _drop(self, label: str, reason: str, count: int = 1) -> None:
        first = not self._dropped
        self._dropped += count
        self.metrics.rejected.labels(self.name, label, reason).inc(count)
        if first:
            log.error(
                "OPC UA source %s: the sink is not taking readings; dropping new ones (%s)", self.name, reason
            )

    def _report(self, handle: int, problem: str) -> None:
        message = f"node {self.nodes[handle][1]} ({self._labels[handle]}) not subscribed: {problem}"
        self.health.mark_error(message)
        if message not in self._reported:
            self._reported.add(message)
            log.error("OPC UA source %s: %s", self.name, message)

    def _seal(self) -> None:
        readings = self._outbox.seal()
        if readings is not None:
            self._account(readings)

    async def _flush(self, markers: bool = False) -> None:
        """Hand what was collected to the sink; with ``markers``, one COMM_LOSS reading per node after it."""
        async with self._flush_lock:
            self._seal()
            if markers and self._stats.newest_source_ns is not None:
                self._outbox.push(comm_loss_batch(self._signals, self._stats.newest_source_ns + 1))
            # a put cancelled by a rebuild or a stop leaves its batch at the head for the next flush
            while (batch := self._outbox.head()) is not None:
                await self.sink.put(batch, source=self.name)
                self._outbox.pop()
            if self._dropped:
                log.warning(
                    "OPC UA source %s: %d notifications dropped while the sink was full",
                    self.name,
                    self._dropped,
                )
                self._dropped = 0

    def _account(self, readings: Readings) -> None:
        batch, handles = readings.batch, readings.handles
        self.metrics.readings.labels(self.name).inc(len(batch))
        self._stats.add(readings)
        self._last_activity = time.monotonic()
        self.health.mark_values(int(batch.ts.max()))
        if readings.non_numeric.any():
            bad_handles, counts = np.unique(handles[readings.non_numeric], return_counts=True)
            for handle, count in zip(bad_handles.tolist(), counts.tolist(), strict=True):
                self.metrics.rejected.labels(self.name, self._labels[handle], "non_numeric").inc(count)

    def state(self) -> dict[str, Any]:
        """Health of this source plus per-node counts, for /readyz and diagnostics."""
        nodes = {
            node: {"signal": self._labels[i], **self._stats.row(i)} for i, (_, node) in enumerate(self.nodes)
        }
        h = self.health
        return {
            **h.as_dict(),
            "last_value_time": h.last_value_wall,
            "last_event_ns": h.last_event_ns,
            "nodes": nodes,
        }


def build(plan: SourcePlan, context: SourceContext) -> OpcUaSource:
    """The registry's builder: one OPC UA server of the plant file."""
    ids, newest = context.signal_names, context.newest_ns
    return OpcUaSource(
        name=plan.source_name,
        spec=plan.spec,
        nodes=[(i, b.node) for i, b in plan.bindings],
        sink=context.sink,
        health=context.health.source(plan.source_name, plan.kind),
        metrics=context.metrics,
        instance_id=context.instance_id,
        signal_names=ids,
        resume_from_ns={i: newest[ids[i]] for i, _ in plan.bindings if ids[i] in newest},
    )
