"""The host application's view of the edge nodes: births, aliases, ``seq``, deaths. No I/O here.

:meth:`Host.handle` takes one message (topic, payload) and says what it means for kilnwatch: the
readings to store, the rejections to count and dead-letter, whether to ask the node for a rebirth.

- NBIRTH / DBIRTH: the node's or device's metrics (names, aliases, data types, units) are learnt;
  NBIRTH's ``bdSeq`` is kept, its ``seq`` starts the count.
- NDATA / DDATA: aliases (or names) resolve to the births' metrics, and from there to signals.
- Every message of a node after its NBIRTH (NDEATH aside) carries the next ``seq`` (0–255,
  wrapping). A gap means a lost message, possibly a birth: the node's data is not used until it
  has been born again (a rebirth is asked for), so nothing is stored under a stale alias.
- Data of a node or device without a birth (kilnwatch started after it, or a DBIRTH was lost),
  or a metric the birth did not name: nothing is stored for it, a rebirth is asked for.
- NDEATH (its ``bdSeq`` equal to the NBIRTH's; an older session's will is ignored) and DDEATH:
  one NaN reading with quality bad + comm_loss per bound signal of the node or device.

State changes happen message by message in :meth:`Host.handle`; the metrics of data and birth
messages are only queued there, and :meth:`Host.flush` turns all queued metrics of a batch of
messages into one ``ReadingBatch`` with array operations (alias resolution per birth, values,
timestamps, quality), with the rejections attributed to their messages by the caller's tags.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
from google.protobuf.message import DecodeError

from analytics import quality as q
from analytics.batch import ReadingBatch

from . import values as v
from .sparkplug_b_pb2 import Payload
from .spec import SparkplugBinding

NAMESPACE: Final = "spBv1.0"
REBIRTH_METRIC: Final = "Node Control/Rebirth"
BOOLEAN: Final = 11
_MS: Final = 1_000_000
_SEQ_MOD: Final = 256
_UNIT_KEYS: Final = frozenset({"engunit", "engineeringunit", "engineeringunits", "unit", "units"})

# Rejection kinds (``reason`` label of kilnwatch_rejected_total, first word of a dead letter's reason)
NOT_SPARKPLUG: Final = "not_sparkplug"
NO_BIRTH: Final = "no_birth"
UNKNOWN_METRIC: Final = "unknown_metric"
SEQ_GAP: Final = "seq_gap"
AWAITING_REBIRTH: Final = "awaiting_rebirth"
VALUE_NOT_NUMERIC: Final = "value_not_numeric"
TIMESTAMP_FUTURE: Final = "timestamp_future"
#: Not a rejection: a Quality code outside OPC DA, kept as uncertain.
UNKNOWN_QUALITY: Final = "unknown_quality"

NodeKey = tuple[str, str]  # group, edge node


@dataclass(frozen=True)
class Rejection:
    kind: str
    detail: str
    signals: tuple[str, ...] = ()


@dataclass
class Outcome:
    """What :meth:`Host.handle` decided at once; the message's metrics come with :meth:`Host.flush`."""

    batch: ReadingBatch = field(default_factory=ReadingBatch.empty)
    rejections: list[Rejection] = field(default_factory=list)
    #: True: the message is not used (dead-letter it)
    dropped: bool = False
    #: The node to ask for a rebirth.
    rebirth: NodeKey | None = None
    #: What happened, for the log (a death, a stale will).
    event: str | None = None


@dataclass
class Birth:
    """What one NBIRTH or DBIRTH declared: per metric (slot) its name, data type, unit, signal."""

    names: dict[str, int]
    alias_keys: npt.NDArray[np.uint64]  # sorted
    alias_slots: npt.NDArray[np.int64]
    datatype: npt.NDArray[np.int64]
    signal: npt.NDArray[np.int32]  # -1: no signal bound
    units: list[str | None]

    def resolve(self, cols: v.MetricColumns, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.int64]:
        """Slot of each of ``rows``; -1 for an alias or name the birth did not declare."""
        alias, has_alias = cols.alias[rows], cols.has_alias[rows]
        slot = np.full(len(rows), -1, np.int64)
        keys = self.alias_keys
        if len(keys):
            at = np.minimum(np.searchsorted(keys, alias), len(keys) - 1)
            hit = has_alias & (keys[at] == alias)
            slot[hit] = self.alias_slots[at[hit]]
        for i in np.flatnonzero(~has_alias).tolist():  # metrics sent by name (no aliases in use)
            slot[i] = self.names.get(cols.names.get(int(rows[i]), ""), -1)
        return slot


@dataclass
class Flushed:
    """The queued metrics as readings; rejections and rebirths by the tag of their message."""

    batch: ReadingBatch
    rejections: list[tuple[int, Rejection]]
    rebirths: list[tuple[int, NodeKey]]


@dataclass
class _Queued:
    """A message whose metrics wait for :meth:`Host.flush`."""

    tag: int
    key: NodeKey
    node: Node
    birth: Birth
    fallback_ns: int
    in_birth: bool
    count: int


@dataclass
class Node:
    bdseq: int | None
    seq: int
    birth: Birth
    devices: dict[str, Birth] = field(default_factory=dict)
    awaiting_rebirth: bool = False
    newest_ns: int | None = None


class Host:
    """State of every edge node seen; ``bindings``: (signal index, binding), ``names``: signal names."""

    def __init__(
        self, bindings: Sequence[tuple[int, SparkplugBinding]], names: Sequence[str], future_ns: int
    ) -> None:
        self.names = tuple(names)
        self.future_ns = future_ns
        #: (group, edge node, device or None) -> metric name -> signal index
        self.bound: dict[tuple[str, str, str | None], dict[str, int]] = {}
        for index, b in bindings:
            self.bound.setdefault((b.group, b.edge_node, b.device), {})[b.metric] = index
        self.groups = tuple(sorted({g for g, _, _ in self.bound}))
        self.nodes: dict[NodeKey, Node] = {}
        self._queued: list[_Queued] = []
        self._rows = v.Columns()
        self._flushed: list[Flushed] = []  # flushed early (before a death), not yet taken

    def online(self, group: str, edge_node: str, device: str | None = None) -> bool:
        node = self.nodes.get((group, edge_node))
        return node is not None and (device is None or device in node.devices)

    def handle(self, topic: str, data: bytes, received_ns: int, tag: int = 0) -> Outcome:
        """Take one message; its metrics are queued for :meth:`flush` under ``tag``."""
        parts = topic.split("/")
        if len(parts) not in (4, 5) or parts[0] != NAMESPACE:
            return Outcome(dropped=True, rejections=[Rejection(NOT_SPARKPLUG, f"topic {topic}")])
        group, kind, edge = parts[1], parts[2], parts[3]
        device = parts[4] if len(parts) == 5 else None
        if kind in ("NCMD", "DCMD") or group == "STATE":
            return Outcome()  # commands (ours among them) and host states are not data
        try:
            payload = Payload.FromString(data)
        except DecodeError as err:
            return Outcome(dropped=True, rejections=[Rejection(NOT_SPARKPLUG, f"payload: {err}")])
        key = (group, edge)
        if kind == "NBIRTH":
            return self._node_birth(key, payload, received_ns, tag)
        if kind == "NDEATH":
            return self._node_death(key, payload, received_ns)
        node = self.nodes.get(key)
        if node is None:
            return _refuse(key, NO_BIRTH, f"{kind} of {group}/{edge} before its NBIRTH")
        if node.awaiting_rebirth:
            return _refuse(key, AWAITING_REBIRTH, f"{kind} of {group}/{edge} while waiting for its rebirth")
        expected = (node.seq + 1) % _SEQ_MOD
        if payload.seq != expected:
            node.awaiting_rebirth = True
            detail = f"{kind} of {group}/{edge} has seq {payload.seq}, {expected} was due"
            return _refuse(key, SEQ_GAP, detail)
        node.seq = expected
        if kind == "NDATA":
            return self._queue(tag, key, node, node.birth, payload, received_ns)
        if device is None or kind not in ("DBIRTH", "DDATA", "DDEATH"):
            return Outcome(dropped=True, rejections=[Rejection(NOT_SPARKPLUG, f"topic {topic}")])
        if kind == "DBIRTH":
            birth = node.devices[device] = self._learn(payload, (group, edge, device))
            return self._queue(tag, key, node, birth, payload, received_ns, in_birth=True)
        if kind == "DDEATH":
            self._flush_early()  # the markers go after the newest reading, queued ones included
            node.devices.pop(device, None)
            out = Outcome(event=f"DDEATH of {group}/{edge}/{device}: its signals are in comm loss")
            out.batch = self._markers([(group, edge, device)], node.newest_ns or received_ns)
            return out
        found = node.devices.get(device)
        if found is None:
            return _refuse(key, NO_BIRTH, f"DDATA of {group}/{edge}/{device} before its DBIRTH")
        return self._queue(tag, key, node, found, payload, received_ns)

    def handle_now(self, topic: str, data: bytes, received_ns: int, now_ns: int) -> Outcome:
        """:meth:`handle` and :meth:`flush` of one message, in one Outcome (tests, tools)."""
        out = self.handle(topic, data, received_ns)
        flushed = self.flush(now_ns)
        out.batch = ReadingBatch.concat([out.batch, flushed.batch])
        out.rejections += [r for _, r in flushed.rejections]
        out.rebirth = out.rebirth or next((k for _, k in flushed.rebirths), None)
        return out

    # births and deaths

    def _node_birth(self, key: NodeKey, payload: Payload, received_ns: int, tag: int) -> Outcome:
        bdseq = next((int(m.long_value) for m in payload.metrics if m.name == "bdSeq"), None)
        birth = self._learn(payload, (*key, None))
        node = self.nodes[key] = Node(bdseq, int(payload.seq), birth)
        return self._queue(tag, key, node, birth, payload, received_ns, in_birth=True)

    def _node_death(self, key: NodeKey, payload: Payload, received_ns: int) -> Outcome:
        self._flush_early()
        node = self.nodes.get(key)
        bdseq = next((int(m.long_value) for m in payload.metrics if m.name == "bdSeq"), None)
        where = "/".join(key)
        if node is None or (node.bdseq is not None and bdseq != node.bdseq):
            return Outcome(event=f"NDEATH of {where} with bdSeq {bdseq} ignored: not of its current session")
        del self.nodes[key]
        scopes = [k for k in self.bound if k[:2] == key]
        out = Outcome(event=f"NDEATH of {where}: its signals are in comm loss")
        out.batch = self._markers(scopes, node.newest_ns or received_ns)
        return out

    def _learn(self, payload: Payload, scope: tuple[str, str, str | None]) -> Birth:
        bound = self.bound.get(scope, {})
        metrics = payload.metrics
        names = [m.name for m in metrics]
        with_alias = [(m.alias, i) for i, m in enumerate(metrics) if m.HasField("alias")]
        with_alias.sort()
        return Birth(
            names={n: i for i, n in enumerate(names)},
            alias_keys=np.array([a for a, _ in with_alias], np.uint64),
            alias_slots=np.array([i for _, i in with_alias], np.int64),
            datatype=np.array([m.datatype for m in metrics], np.int64),
            signal=np.array([bound.get(n, -1) for n in names], np.int32),
            units=[_unit(m) for m in metrics],
        )

    def _markers(self, scopes: Sequence[tuple[str, str, str | None]], after_ns: int) -> ReadingBatch:
        signals = np.array(sorted({i for s in scopes for i in self.bound.get(s, {}).values()}), np.int32)
        n = len(signals)
        return ReadingBatch(
            signals,
            np.full(n, after_ns + 1, np.int64),
            np.full(n, np.nan),
            np.full(n, q.BAD | q.COMM_LOSS, np.uint8),
        )

    # data

    def _queue(
        self,
        tag: int,
        key: NodeKey,
        node: Node,
        declared: Birth,
        payload: Payload,
        received_ns: int,
        *,
        in_birth: bool = False,
    ) -> Outcome:
        count = self._rows.add(payload)
        if count:
            fallback = int(payload.timestamp) * _MS if payload.timestamp else received_ns
            self._queued.append(_Queued(tag, key, node, declared, fallback, in_birth, count))
        return Outcome()

    def _flush_early(self) -> None:
        if self._queued:
            self._flushed.append(self._decode(self._now_ns()))

    def flush(self, now_ns: int) -> Flushed:
        """Readings of every queued message; timestamps beyond ``now_ns`` + the skew are refused."""
        parts = [*self._flushed, self._decode(now_ns)]
        self._flushed = []
        return Flushed(
            ReadingBatch.concat(p.batch for p in parts),
            [r for p in parts for r in p.rejections],
            [r for p in parts for r in p.rebirths],
        )

    @staticmethod
    def _now_ns() -> int:
        return time.time_ns()

    def _decode(self, now_ns: int) -> Flushed:
        queued, cols = self._queued, self._rows.take()
        self._queued = []
        out = Flushed(ReadingBatch.empty(), [], [])
        if not queued:
            return out
        counts = [m.count for m in queued]
        message = np.repeat(np.arange(len(queued)), counts)
        births = {id(m.birth): m.birth for m in queued}
        birth_of = np.repeat([id(m.birth) for m in queued], counts)
        slot = np.full(len(message), -1, np.int64)
        signal = np.full(len(message), -1, np.int32)
        datatype = np.zeros(len(message), np.int64)
        for ident, birth in births.items():
            rows = np.flatnonzero(birth_of == ident)
            found = birth.resolve(cols, rows)
            slot[rows] = found
            known = rows[found >= 0]
            signal[known] = birth.signal[found[found >= 0]]
            datatype[known] = birth.datatype[found[found >= 0]]
        for i in np.unique(message[slot < 0]).tolist():
            n = int(np.count_nonzero(message[slot < 0] == i))
            out.rejections.append(
                (queued[i].tag, Rejection(UNKNOWN_METRIC, f"{n} metric(s) not in the birth"))
            )
            out.rebirths.append((queued[i].tag, queued[i].key))
        in_birth = np.repeat([m.in_birth for m in queued], counts)
        keep = (signal >= 0) & ~(in_birth & cols.is_null)  # a birth's nulls: "no value yet"
        if not keep.any():
            return out
        idx = np.flatnonzero(keep)
        sig, dtype, null, msg = signal[idx], datatype[idx], cols.is_null[idx], message[idx]
        numeric = null | cols.numeric[idx]  # the value field decides: a data type only names it
        ts_ms = cols.ts_ms[idx].astype(np.int64)
        fallback = np.repeat([m.fallback_ns for m in queued], counts)[idx]
        ts = np.where(ts_ms > 0, ts_ms * _MS, fallback)
        future = numeric & (ts > now_ns + self.future_ns)
        code = cols.code[idx]
        ok = numeric & ~future
        for kind, bad in (
            (VALUE_NOT_NUMERIC, ~numeric),
            (TIMESTAMP_FUTURE, future),
            (UNKNOWN_QUALITY, ok & (code > 255)),
        ):
            for i in np.unique(msg[bad]).tolist():
                mine = bad & (msg == i)
                names = tuple(self.names[s] for s in np.unique(sig[mine]).tolist())
                where = "/".join(queued[i].key)
                out.rejections.append(
                    (queued[i].tag, Rejection(kind, f"{int(mine.sum())} metric(s) of {where}", names))
                )
        value = np.where(null, np.nan, v.signed(cols.value[idx], dtype))
        out.batch = ReadingBatch(sig[ok], ts[ok], value[ok], v.quality(code, null)[ok])
        if len(out.batch):
            newest = np.full(len(queued), np.iinfo(np.int64).min, np.int64)
            np.maximum.at(newest, msg[ok], ts[ok])
            for i in np.flatnonzero(newest > np.iinfo(np.int64).min).tolist():
                node, t = queued[i].node, int(newest[i])
                node.newest_ns = t if node.newest_ns is None else max(node.newest_ns, t)
        return out


def _refuse(key: NodeKey, kind: str, detail: str) -> Outcome:
    return Outcome(dropped=True, rejections=[Rejection(kind, detail)], rebirth=key)


def _unit(metric: object) -> str | None:
    props = getattr(metric, "properties", None)
    if props is None:
        return None
    for k, value in zip(props.keys, props.values, strict=False):
        if k.lower() in _UNIT_KEYS and value.WhichOneof("value") == "string_value":
            return str(value.string_value)
    return None


def rebirth_request(now_ms: int) -> bytes:
    """NCMD payload asking an edge node for a rebirth."""
    payload = Payload(timestamp=now_ms)
    payload.metrics.add(name=REBIRTH_METRIC, timestamp=now_ms, datatype=BOOLEAN, boolean_value=True)
    return payload.SerializeToString()


def ncmd_topic(key: NodeKey) -> str:
    return f"{NAMESPACE}/{key[0]}/NCMD/{key[1]}"


def state_topic(host_id: str) -> str:
    return f"{NAMESPACE}/STATE/{host_id}"
