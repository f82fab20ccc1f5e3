"""OPC UA server of the simulated kilns (asyncua), with source timestamps in simulated time.

Nodes live in namespace `urn:kilnwatch:simulator` with string ids `<kiln>.<key>` (clients address them as
`nsu=urn:kilnwatch:simulator;s=kiln1.stack.co2`), plus `<kiln>.cems.status` (Int32: 0 ok, 1 maintenance,
2 calibration, 3 fault) and `<kiln>.truth.co2_t_per_h`, the model's own CO2 mass flow for demos.

Every `wall_interval_s` the server computes all model ticks between the last published one and the sim
clock's now in one numpy batch, applies the scenario, and writes each value in time order as a DataValue
whose SourceTimestamp is the tick's simulated time. `stop()` and `start()` may be called again on the same
port; the clock keeps running meanwhile, so the ticks of the stop are never published (an event-time gap).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import cast

import numpy as np
from asyncua import Node, Server, ua

from simulators.clock import SimClock
from simulators.model import SIGNAL_KEYS, SIGNAL_RANGES, SIGNAL_UNITS, TRUTH_KEY, KilnModel
from simulators.opcua_stop import STOP_STEP_S, bounded, stop_server
from simulators.scenarios import Scenario

NAMESPACE_URI = "urn:kilnwatch:simulator"
STATUS_KEY = "cems.status"
_NS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: UNECE Rec. 20 codes of the units, for the nodes' EngineeringUnits (the rest give a display name only).
_UNECE = {"m3/h": "MQH", "degC": "CEL", "kPa": "KPA", "vol%": "P1", "t/h": "E18"}
_UNECE_URI = "http://www.opcfoundation.org/UA/units/un/cefact"
_log = logging.getLogger(__name__)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("%s stopped publishing", task.get_name(), exc_info=task.exception())


def unece_unit_id(code: str) -> int:
    """EUInformation.UnitId of a UNECE code: its characters as bytes of one integer (OPC UA Part 8)."""
    out = 0
    for ch in code:
        out = (out << 8) | ord(ch)
    return out


async def _add_eu_properties(var: Node, idx: int, unit: str, rng: tuple[float, float]) -> None:
    """The AnalogItem properties a plant's server gives its measurements: EngineeringUnits, EURange."""
    code = _UNECE.get(unit)
    eu = ua.EUInformation(
        NamespaceUri=_UNECE_URI if code else None,
        UnitId=ua.Int32(unece_unit_id(code) if code else -1),
        DisplayName=ua.LocalizedText(unit),
        Description=ua.LocalizedText(unit),
    )
    ns, name = ua.Int16(idx), str(var.nodeid.Identifier)
    await var.add_property(
        ua.NodeId(ua.String(f"{name}.EngineeringUnits"), ns),
        ua.QualifiedName("EngineeringUnits", 0),
        eu,
        datatype=ua.NodeId(ua.Int32(ua.ObjectIds.EUInformation)),
    )
    await var.add_property(
        ua.NodeId(ua.String(f"{name}.EURange"), ns),
        ua.QualifiedName("EURange", 0),
        ua.Range(Low=rng[0], High=rng[1]),
        datatype=ua.NodeId(ua.Int32(ua.ObjectIds.Range)),
    )


def node_string_id(kiln: str, key: str) -> str:
    """String node id of a kiln signal, e.g. `kiln1.stack.co2`."""
    return f"{kiln}.{key}"


class _SharedDataValue(ua.DataValue):
    """A DataValue that monitored items share instead of deep-copying.

    asyncua deep-copies every written DataValue once per monitored item, which was about 70 % of the
    server's CPU with one subscriber. These values are built here, written once and never mutated, so
    sharing them is safe.
    """

    __slots__ = ()

    def __deepcopy__(self, memo: dict[int, object]) -> _SharedDataValue:
        return self


@dataclass
class ServerStats:
    ticks: int = 0
    values_written: int = 0
    last_tick_ns: int = 0
    busy_s: float = 0.0
    """Wall time spent computing and writing [s]."""


class SimOpcUaServer:
    """asyncua server publishing the kiln models on a `SimClock`. Use `async with` or `start()`/`stop()`."""

    def __init__(
        self,
        kilns: Sequence[KilnModel],
        clock: SimClock,
        host: str = "127.0.0.1",
        port: int = 4840,
        tick_s: float = 1.0,
        scenario: Scenario | None = None,
        wall_interval_s: float = 0.1,
        max_ticks_per_step: int = 100,
        history_values: int = 0,
    ) -> None:
        """``history_values``: per node, that many past values kept for HistoryRead (0: none), as a
        plant's server with history does; they go when the server restarts."""
        self.kilns = list(kilns)
        self.clock = clock
        self.host, self.port = host, port
        self.tick_ns = round(tick_s * _NS)
        self.scenario = scenario or Scenario()
        self.wall_interval_s = wall_interval_s
        self.max_ticks_per_step = max_ticks_per_step
        self.history_values = history_values
        self.stats = ServerStats()
        self._server: Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._nodeids: dict[str, list[ua.NodeId]] = {}
        self._status_nodeid: dict[str, ua.NodeId] = {}
        self._next_k = 0
        self._codes: dict[int, ua.StatusCode] = {}
        self._last_status: dict[str, int] = {}

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def __aenter__(self) -> SimOpcUaServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Build a fresh server (a restarted device forgets its sessions) and start publishing from now."""
        if self._server is not None:
            return
        server = Server()
        await server.init()
        server.set_endpoint(f"{self.endpoint}/kilnwatch/sim/")
        server.set_server_name("kilnwatch kiln simulator")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(NAMESPACE_URI)
        await self._build_nodes(server, idx)
        await server.start()
        if self.history_values:
            storage = server.iserver.history_manager.storage
            for nid in [n for ids in self._nodeids.values() for n in ids]:
                await storage.new_historized_node(nid, None, self.history_values)
        self._server = server
        self._next_k = self.clock.now_ns() // self.tick_ns
        self._last_status = {}
        self._task = asyncio.create_task(self._run(), name=f"opcua-sim-{self.port}")
        self._task.add_done_callback(_log_crash)
        _log.info("OPC UA simulator listening on %s", self.endpoint)

    async def stop(self, step_s: float = STOP_STEP_S) -> None:
        """Stop publishing and close the listening socket, every connection and every session.

        Bounded: each step waits at most ``step_s`` (see :func:`simulators.opcua_stop.stop_server`);
        a client that does not let go has its connection aborted."""
        started = time.monotonic()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await bounded("the OPC UA simulator's publishing task", task, step_s)
        server, self._server = self._server, None
        if server is not None:
            await stop_server(server, step_s)
            _log.info("OPC UA simulator on %s stopped (%.2f s)", self.endpoint, time.monotonic() - started)

    async def _build_nodes(self, server: Server, idx: int) -> None:
        objects = server.nodes.objects
        for model in self.kilns:
            kiln = model.kiln_id
            ns = ua.Int16(idx)
            obj = await objects.add_object(ua.NodeId(ua.String(kiln), ns), ua.QualifiedName(kiln, idx))
            ids = []
            for key in (*SIGNAL_KEYS, TRUTH_KEY):
                nodeid = ua.NodeId(ua.String(node_string_id(kiln, key)), ns)
                var = await obj.add_variable(
                    nodeid, ua.QualifiedName(key, idx), ua.Variant(0.0, ua.VariantType.Double)
                )
                if key in SIGNAL_UNITS:
                    await _add_eu_properties(var, idx, SIGNAL_UNITS[key], SIGNAL_RANGES[key])
                ids.append(nodeid)
            self._nodeids[kiln] = ids
            status_id = ua.NodeId(ua.String(node_string_id(kiln, STATUS_KEY)), ns)
            await obj.add_variable(
                status_id, ua.QualifiedName(STATUS_KEY, idx), ua.Variant(0, ua.VariantType.Int32)
            )
            self._status_nodeid[kiln] = status_id

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            target_k = self.clock.now_ns() // self.tick_ns
            if target_k >= self._next_k:
                k_end = min(target_k + 1, self._next_k + self.max_ticks_per_step)
                started = loop.time()
                await self._publish(self._next_k, k_end)
                self.stats.busy_s += loop.time() - started
                if k_end <= target_k:
                    continue  # behind the clock: catch up (`_publish` yields after every tick)
            await asyncio.sleep(self.wall_interval_s)

    def backlog_s(self) -> float:
        """Simulated time not yet published [s]: > a few ticks means the server cannot keep up."""
        return max(0.0, (self.clock.now_ns() - self._next_k * self.tick_ns) / _NS)

    def _code(self, value: int) -> ua.StatusCode:
        code = self._codes.get(value)
        if code is None:
            code = self._codes[value] = ua.StatusCode(ua.UInt32(value))
        return code

    async def _publish(self, k0: int, k1: int) -> None:
        server = self._server
        if server is None:
            return
        t_ns = np.arange(k0, k1, dtype=np.int64) * self.tick_ns
        # asyncua types its timestamps as ua.DateTime but encodes any datetime.
        source_ts = cast(
            list[ua.DateTime], [_EPOCH + timedelta(microseconds=us) for us in (t_ns // 1000).tolist()]
        )
        rows = []  # per kiln: [(nodeid, values, codes, send)]
        for model in self.kilns:
            clean = model.sample(t_ns)
            applied = self.scenario.apply(model, t_ns, clean)
            cols = [
                (
                    nid,
                    applied.values[key].tolist(),
                    applied.status_code[key].tolist(),
                    applied.send[key].tolist(),
                )
                for nid, key in zip(self._nodeids[model.kiln_id], SIGNAL_KEYS, strict=False)
            ]
            truth_nid = self._nodeids[model.kiln_id][-1]
            cols.append((truth_nid, clean[TRUTH_KEY].tolist(), [0] * len(t_ns), [True] * len(t_ns)))
            rows.append(
                (model.kiln_id, self._status_nodeid[model.kiln_id], applied.rack_state.tolist(), cols)
            )
        write = server.iserver.aspace.write_attribute_value
        # Stored directly, not through asyncua's history subscription, which keeps one value
        # per 10-ms cycle and so loses ticks at high speed-ups.
        keep = server.iserver.history_manager.storage.save_node_value if self.history_values else None
        value_attr = ua.AttributeIds.Value
        double, int32 = ua.VariantType.Double, ua.VariantType.Int32
        for i, ts in enumerate(source_ts):
            server_ts = cast(ua.DateTime, datetime.now(UTC))
            written = 0
            for kiln, status_nid, rack_state, cols in rows:
                if rack_state[i] != self._last_status.get(kiln):
                    self._last_status[kiln] = rack_state[i]
                    dv = _SharedDataValue(ua.Variant(rack_state[i], int32), self._code(0), ts, server_ts)
                    await write(status_nid, value_attr, dv)
                for nid, values, codes, send in cols:
                    if send[i]:
                        dv = _SharedDataValue(
                            ua.Variant(values[i], double), self._code(codes[i]), ts, server_ts
                        )
                        await write(nid, value_attr, dv)
                        if keep is not None:
                            await keep(nid, dv)
                        written += 1
            self._next_k = k0 + i + 1
            self.stats.ticks += 1
            self.stats.values_written += written
            self.stats.last_tick_ns = int(t_ns[i])
            # Writes never suspend; yield so that the server can answer requests and send publish responses.
            await asyncio.sleep(0)
