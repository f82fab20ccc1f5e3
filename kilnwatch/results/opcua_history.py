"""HistoryRead (raw) of the hourly values over kilnwatch's store: ``<kiln>.hour.*`` nodes answer with
one value per stored hour, the same value, status and source timestamp as the live node had for it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

from asyncua import ua
from asyncua.server.history import HistoryStorageInterface

from .opcua_nodes import KILN_VARIABLES, source_time, variant
from .view import KilnResults, ResultsView

_HOUR_VARIABLES = {v.name: v for v in KILN_VARIABLES if v.folder == "hour"}
#: One request answers at most this many hours; the rest follows with a continuation point.
MAX_VALUES = 10_000
_NS = 10**9


def _ns(t: datetime | None, default: int) -> int:
    if t is None or t.year <= 1601:  # OPC UA's null DateTime: no bound
        return default
    return int(t.replace(tzinfo=t.tzinfo or UTC).timestamp() * _NS)


class HourlyHistory(HistoryStorageInterface):
    """Read only: what is historized is the store's ledger of closed hours."""

    def __init__(self, view: ResultsView) -> None:
        super().__init__(MAX_VALUES)
        self.view = view
        self._kilns = {k.id for k in view.ctx.kilns}

    async def init(self) -> None:
        return None

    async def new_historized_node(self, node_id: ua.NodeId, period: Any, count: int = 0) -> None:
        return None

    async def save_node_value(self, node_id: ua.NodeId, datavalue: ua.DataValue) -> None:
        return None  # the store is the history

    async def read_node_history(
        self, node_id: ua.NodeId, start: datetime | None, end: datetime | None, nb_values: int
    ) -> tuple[list[ua.DataValue], datetime | None]:
        kiln, _, name = str(node_id.Identifier).partition(".hour.")
        var = _HOUR_VARIABLES.get(name)
        if kiln not in self._kilns or var is None:
            return [], None
        lo, hi = _ns(start, 0), _ns(end, 2**62)
        if lo > hi:  # the spec's reverse order: served forwards
            lo, hi = hi, lo
        hours = await asyncio.to_thread(self.view.ctx.history.hours, kiln, lo, hi + 1)
        limit = min(nb_values or MAX_VALUES, MAX_VALUES)
        more = hours[limit:]
        out = []
        for h in hours[:limit]:
            r = KilnResults(kiln, {}, self.view.hour_row(h), h.start_ns, None, False, {})
            out.append(
                ua.DataValue(
                    variant(var.get(r), var.variant),
                    StatusCode=var.status(r),
                    SourceTimestamp=cast(ua.DateTime, source_time("hour", name, r, h.start_ns)),
                )
            )
        cont = datetime.fromtimestamp(more[0].start_ns / _NS, tz=UTC) if more else None
        return out, cont

    async def new_historized_event(self, *args: Any, **kw: Any) -> None:
        return None

    async def save_event(self, event: Any) -> None:
        return None

    async def read_event_history(self, *args: Any, **kw: Any) -> tuple[list[Any], None]:
        return [], None

    async def stop(self) -> None:
        return None
