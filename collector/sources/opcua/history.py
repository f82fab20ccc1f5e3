"""Values an OPC UA source missed, read back from the server's history (Part 11 HistoryRead).

After every connect, each node's raw history since the newest value kilnwatch holds for it is
read and handed on like subscription values; storage is idempotent, and the engine recomputes
the minutes they fall in. A server (or node) that keeps no history answers with an error or with
nothing: the gap then stays as it is, with its COMM_LOSS markers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from asyncua import Client, ua

from .quality import datetime_to_ns

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns_to_datetime(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


async def read_missed(client: Client, node_id: ua.NodeId, after_ns: int) -> Sequence[ua.DataValue] | str:
    """The node's history with a source time after ``after_ns``, oldest first; or why there is none."""
    try:
        values = await client.get_node(node_id).read_raw_history(
            starttime=ns_to_datetime(after_ns + 1000), endtime=None, return_bounds=False
        )
    except ua.UaStatusCodeError as err:
        return ua.StatusCode(err.code).name
    except (ua.UaError, TimeoutError, OSError) as err:  # the session's own failures end it elsewhere
        return f"{type(err).__name__}: {err}"
    # The start time is given in µs (OPC UA's DateTime has 100 ns ticks): drop what is not newer;
    # a value without a source time cannot be placed in event time.
    return [dv for dv in values if datetime_to_ns(dv.SourceTimestamp) > after_ns]
