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
"""

from __future__ import annotations

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

    def resolve(self, cols: v.MetricColumns) -> npt.NDArray[np.int64]:
        """Slot of each metric; -1 for an alias or name the birth did not declare."""
        slot = np.full(len(cols.alias), -1, np.int64)
        keys = self.alias_keys
        if len(keys):
            at = np.minimum(np.searchsorted(keys, cols.alias), len(keys) - 1)
            hit = cols.has_alias & (keys[at] == cols.alias)
            slot[hit] = self.alias_slots[at[hit]]
        for i in np.flatnonzero(~cols.has_alias).tolist():  # metrics sent by name (no aliases in use)
            slot[i] = self.names.get(cols.names[i], -1)
        return slot


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

    def online(self, group: str, edge_node: str, device: str | None = None) -> bool:
        node = self.nodes.get((group, edge_node))
        return node is not None and (device is None or device in node.devices)

    def handle(self, topic: str, data: bytes, received_ns: int, now_ns: int) -> Outcome:
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
            return self._node_birth(key, payload, received_ns, now_ns)
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
            return self._data(key, node, node.birth, payload, received_ns, now_ns)
        if device is None or kind not in ("DBIRTH", "DDATA", "DDEATH"):
            return Outcome(dropped=True, rejections=[Rejection(NOT_SPARKPLUG, f"topic {topic}")])
        if kind == "DBIRTH":
            birth = node.devices[device] = self._learn(payload, (group, edge, device))
            return self._data(key, node, birth, payload, received_ns, now_ns, in_birth=True)
        if kind == "DDEATH":
            node.devices.pop(device, None)
            out = Outcome(event=f"DDEATH of {group}/{edge}/{device}: its signals are in comm loss")
            out.batch = self._markers([(group, edge, device)], node.newest_ns or received_ns)
            return out
        found = node.devices.get(device)
        if found is None:
            return _refuse(key, NO_BIRTH, f"DDATA of {group}/{edge}/{device} before its DBIRTH")
        return self._data(key, node, found, payload, received_ns, now_ns)

    # births and deaths

    def _node_birth(self, key: NodeKey, payload: Payload, received_ns: int, now_ns: int) -> Outcome:
        bdseq = next((int(m.long_value) for m in payload.metrics if m.name == "bdSeq"), None)
        birth = self._learn(payload, (*key, None))
        node = self.nodes[key] = Node(bdseq, int(payload.seq), birth)
        return self._data(key, node, birth, payload, received_ns, now_ns, in_birth=True)

    def _node_death(self, key: NodeKey, payload: Payload, received_ns: int) -> Outcome:
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

    def _data(
        self,
        key: NodeKey,
        node: Node,
        declared: Birth,
        payload: Payload,
        received_ns: int,
        now_ns: int,
        *,
        in_birth: bool = False,
    ) -> Outcome:
        cols = v.columns(payload)
        out = Outcome()
        slot = declared.resolve(cols)
        unknown = slot < 0
        if unknown.any():
            out.rejections.append(
                Rejection(UNKNOWN_METRIC, f"{int(unknown.sum())} metric(s) not declared in the birth")
            )
            out.rebirth = key
        slot = np.where(unknown, 0, slot)
        signal = np.where(unknown, -1, declared.signal[slot] if len(declared.signal) else -1)
        # A birth declares metrics; its null values are "no value yet", not bad readings.
        keep = (signal >= 0) & ~(cols.is_null if in_birth else np.zeros(len(signal), bool))
        if not keep.any():
            return out
        idx = np.flatnonzero(keep)
        sig, datatype = signal[idx].astype(np.int32), declared.datatype[slot[idx]]
        numeric = cols.numeric[idx] | cols.is_null[idx]
        numeric &= np.isin(datatype, list(v.NUMERIC_TYPES)) | cols.is_null[idx]
        ts_ms = cols.ts_ms[idx].astype(np.int64)
        fallback = int(payload.timestamp) * _MS if payload.timestamp else received_ns
        ts = np.where(ts_ms > 0, ts_ms * _MS, fallback)
        future = ts > now_ns + self.future_ns
        for kind, bad in ((VALUE_NOT_NUMERIC, ~numeric), (TIMESTAMP_FUTURE, future & numeric)):
            if bad.any():
                names = tuple(self.names[i] for i in np.unique(sig[bad]).tolist())
                out.rejections.append(
                    Rejection(kind, f"{int(bad.sum())} metric(s) of {'/'.join(key)}", names)
                )
        ok = numeric & ~future
        value = v.signed(cols.value[idx], datatype)
        quality = v.quality(cols.code[idx], cols.is_null[idx])
        if (odd := ok & (cols.code[idx] > 255)).any():
            names = tuple(self.names[i] for i in np.unique(sig[odd]).tolist())
            out.rejections.append(Rejection(UNKNOWN_QUALITY, "Quality code outside OPC DA", names))
        out.batch = ReadingBatch(sig[ok], ts[ok], np.where(cols.is_null[idx], np.nan, value)[ok], quality[ok])
        if len(out.batch):
            newest = int(out.batch.ts.max())
            node.newest_ns = newest if node.newest_ns is None else max(node.newest_ns, newest)
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
