"""The results as a Sparkplug B edge node's metrics (the ingest's protobuf module): one metric per
result variable, named ``<kiln>/<folder>/<name>`` as the OPC UA server's nodes, with its unit
(``engUnit``) and the OPC UA status as an OPC DA ``Quality`` property (192 good, 64 uncertain, 0 bad)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from asyncua import ua

from collector.sources.sparkplug.host import REBIRTH_METRIC
from collector.sources.sparkplug.sparkplug_b_pb2 import Payload

from .opcua_nodes import KILN_VARIABLES, source_time
from .view import KILN_ALARMS, Snapshot

NAMESPACE: Final = "spBv1.0"
BD_SEQ: Final = "bdSeq"
#: Sparkplug B data types (Payload.Metric.datatype).
INT32, UINT32, UINT64, DOUBLE, BOOLEAN, STRING, DATETIME = 3, 7, 8, 10, 11, 12, 13
_TYPES: Final = {
    ua.VariantType.Double: DOUBLE,
    ua.VariantType.Boolean: BOOLEAN,
    ua.VariantType.DateTime: DATETIME,
    ua.VariantType.UInt32: UINT32,
}


@dataclass(frozen=True)
class MetricValue:
    name: str
    datatype: int
    value: Any  # None: is_null
    quality: int
    timestamp_ms: int
    unit: str = ""


def quality_code(status: ua.StatusCode) -> int:
    if status.is_good():
        return 192
    return 64 if status.is_uncertain() else 0


def metric_values(snap: Snapshot) -> list[MetricValue]:
    """Every metric of the node, in birth order."""
    out = []
    for kiln, r in snap.kilns.items():
        for v in KILN_VARIABLES:
            ts = int(source_time(v.folder, v.name, r, snap.taken_ns).timestamp() * 1000)
            value = v.get(r)
            if isinstance(value, datetime):
                value = int(value.timestamp() * 1000)
            status = v.status(r)
            out.append(
                MetricValue(
                    f"{kiln}/{v.folder}/{v.name}", _TYPES[v.variant], value, quality_code(status), ts, v.unit
                )
            )
        now_ms = snap.taken_ns // 1_000_000
        for kind in KILN_ALARMS:
            state = r.alarms[kind]
            out.append(MetricValue(f"{kiln}/alarms/{kind}", BOOLEAN, state.active, 192, now_ms))
            out.append(MetricValue(f"{kiln}/alarms/{kind}.message", STRING, state.message, 192, now_ms))
    now_ms = snap.taken_ns // 1_000_000
    out.append(MetricValue("alarms/source", BOOLEAN, snap.source_alarm.active, 192, now_ms))
    out.append(MetricValue("alarms/source.message", STRING, snap.source_alarm.message, 192, now_ms))
    return out


def _fill(metric: Any, m: MetricValue) -> None:
    metric.timestamp = m.timestamp_ms
    metric.datatype = m.datatype
    if m.value is None or (m.datatype == DOUBLE and m.value != m.value):
        metric.is_null = True
    elif m.datatype == DOUBLE:
        metric.double_value = float(m.value)
    elif m.datatype == BOOLEAN:
        metric.boolean_value = bool(m.value)
    elif m.datatype == STRING:
        metric.string_value = str(m.value)
    elif m.datatype == UINT32:
        metric.int_value = int(m.value)
    else:
        metric.long_value = int(m.value)
    keys, values = [], []
    if m.unit:
        keys.append("engUnit")
        values.append(Payload.PropertyValue(type=STRING, string_value=m.unit))
    if m.datatype != STRING:
        keys.append("Quality")
        values.append(Payload.PropertyValue(type=INT32, int_value=m.quality))
    if keys:
        metric.properties.keys.extend(keys)
        metric.properties.values.extend(values)


class EdgeNode:
    """Births, data and death of the results node; aliases are the metrics' birth positions + 1."""

    def __init__(self, group: str, node: str, bd_seq: int) -> None:
        self.group, self.node, self.bd_seq = group, node, bd_seq % 256
        self._seq = 0
        self._aliases: dict[str, int] = {}
        self._last: dict[str, tuple[Any, int]] = {}

    def topic(self, kind: str) -> str:
        return f"{NAMESPACE}/{self.group}/{kind}/{self.node}"

    def death(self, now_ms: int) -> bytes:
        payload = Payload(timestamp=now_ms)
        payload.metrics.add(name=BD_SEQ, timestamp=now_ms, datatype=UINT64, long_value=self.bd_seq)
        return payload.SerializeToString()

    def birth(self, metrics: list[MetricValue], now_ms: int) -> bytes:
        self._seq = 0
        payload = Payload(timestamp=now_ms, seq=0)
        payload.metrics.add(name=BD_SEQ, timestamp=now_ms, datatype=UINT64, long_value=self.bd_seq)
        payload.metrics.add(name=REBIRTH_METRIC, timestamp=now_ms, datatype=BOOLEAN, boolean_value=False)
        self._aliases = {}
        for i, m in enumerate(metrics, start=1):
            self._aliases[m.name] = i
            metric = payload.metrics.add(name=m.name, alias=i)
            _fill(metric, m)
        self._last = {m.name: (m.value, m.quality) for m in metrics}
        return payload.SerializeToString()

    def data(self, metrics: list[MetricValue], now_ms: int) -> bytes | None:
        """The metrics changed since the last birth or data (by alias); None when none changed."""
        changed = [
            m for m in metrics if self._last.get(m.name) != (m.value, m.quality) and m.name in self._aliases
        ]
        if not changed:
            return None
        self._seq = (self._seq + 1) % 256
        payload = Payload(timestamp=now_ms, seq=self._seq)
        for m in changed:
            _fill(payload.metrics.add(alias=self._aliases[m.name]), m)
            self._last[m.name] = (m.value, m.quality)
        return payload.SerializeToString()
