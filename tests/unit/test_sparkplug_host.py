"""The Sparkplug host's message logic (births, aliases, seq, deaths, values, quality), no broker."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import quality as q
from collector.sources.sparkplug import host as h
from collector.sources.sparkplug.sparkplug_b_pb2 import Payload
from collector.sources.sparkplug.spec import SparkplugBinding

NAMES = ("node.temp", "d1.a", "d1.b", "d2.a")
NOW = time.time_ns()
MS = NOW // 1_000_000 - 60_000


def host() -> h.Host:
    def bind(device: str | None, metric: str) -> SparkplugBinding:
        return SparkplugBinding(source="s", group="g", edge_node="e", device=device, metric=metric)

    bindings = [(0, bind(None, "temp")), (1, bind("d1", "a")), (2, bind("d1", "b")), (3, bind("d2", "a"))]
    return h.Host(bindings, NAMES, 300 * 10**9)


def msg(
    kind: str, seq: int | None, metrics: list[dict[str, Any]], device: str | None = None
) -> tuple[str, bytes]:
    payload = Payload(timestamp=MS)
    if seq is not None:
        payload.seq = seq
    for m in metrics:
        quality = m.pop("quality", None)
        metric = payload.metrics.add(**m)
        if quality is not None:
            metric.properties.keys.append("Quality")
            metric.properties.values.add(type=3, int_value=quality)
    return f"spBv1.0/g/{kind}/e" + (f"/{device}" if device else ""), payload.SerializeToString()


def born(bdseq: int = 7) -> h.Host:
    hh = host()
    node = [
        {"name": "bdSeq", "datatype": 4, "long_value": bdseq},
        {"name": "temp", "alias": 9, "datatype": 10},
    ]
    feed(hh, msg("NBIRTH", 0, node))
    for seq, device in ((1, "d1"), (2, "d2")):
        metrics = [{"name": "a", "alias": 1, "datatype": 10, "is_null": True}]
        metrics += [{"name": "b", "alias": 2, "datatype": 3, "is_null": True}]
        feed(hh, msg("DBIRTH", seq, metrics, device))
    return hh


def feed(hh: h.Host, message: tuple[str, bytes]) -> h.Outcome:
    return hh.handle_now(message[0], message[1], NOW, NOW)


def kinds(out: h.Outcome) -> list[str]:
    return [r.kind for r in out.rejections]


def test_aliases_resolve_per_device_with_signs_timestamps_and_names() -> None:
    hh = born()
    out = feed(
        hh,
        msg(
            "DDATA",
            3,
            [
                {"alias": 1, "timestamp": MS + 5, "datatype": 10, "double_value": 2.5},
                {"alias": 2, "datatype": 3, "int_value": 2**32 - 7},  # Int32 -7, the payload's time
            ],
            "d1",
        ),
    )
    assert out.batch.signal.tolist() == [1, 2] and out.batch.value.tolist() == [2.5, -7.0]
    assert out.batch.ts.tolist() == [(MS + 5) * 1_000_000, MS * 1_000_000]
    out = feed(hh, msg("DDATA", 4, [{"alias": 1, "datatype": 10, "double_value": 1.0}], "d2"))
    assert out.batch.signal.tolist() == [3]
    out = feed(hh, msg("NDATA", 5, [{"name": "temp", "datatype": 10, "double_value": 800.0}]))  # by name
    assert out.batch.signal.tolist() == [0] and out.rejections == []


def test_seq_wraps_after_255_and_a_gap_stops_the_node_until_its_rebirth() -> None:
    hh = born()
    for seq in range(3, 256):
        assert not feed(hh, msg("NDATA", seq, [{"alias": 9, "double_value": 1.0}])).dropped
    assert len(feed(hh, msg("NDATA", 0, [{"alias": 9, "double_value": 1.0}])).batch) == 1
    gap = feed(hh, msg("DDATA", 2, [{"alias": 1, "double_value": 1.0}], "d1"))  # 1 was lost
    assert gap.dropped and kinds(gap) == [h.SEQ_GAP] and gap.rebirth == ("g", "e") and not len(gap.batch)
    later = feed(hh, msg("DDATA", 3, [{"alias": 1, "double_value": 1.0}], "d1"))
    assert later.dropped and kinds(later) == [h.AWAITING_REBIRTH] and later.rebirth == ("g", "e")
    # the rebirth declares other aliases: the old ones are gone with the old births
    feed(hh, msg("NBIRTH", 0, [{"name": "bdSeq", "datatype": 4, "long_value": 7}]))
    feed(hh, msg("DBIRTH", 1, [{"name": "b", "alias": 1, "datatype": 10, "is_null": True}], "d1"))
    out = feed(hh, msg("DDATA", 2, [{"alias": 1, "double_value": 4.0}], "d1"))
    assert out.batch.signal.tolist() == [2] and out.batch.value.tolist() == [4.0]


def test_data_without_a_birth_or_with_an_undeclared_alias_is_not_guessed() -> None:
    hh = host()
    out = feed(hh, msg("DDATA", 1, [{"alias": 1, "double_value": 1.0}], "d1"))
    assert out.dropped and kinds(out) == [h.NO_BIRTH] and out.rebirth == ("g", "e")
    hh = born()
    feed(hh, msg("DDEATH", 3, [], "d2"))
    out = feed(hh, msg("DDATA", 4, [{"alias": 1, "double_value": 1.0}], "d2"))
    assert out.dropped and kinds(out) == [h.NO_BIRTH]
    out = feed(
        hh, msg("DDATA", 5, [{"alias": 1, "double_value": 1.0}, {"alias": 5, "double_value": 2.0}], "d1")
    )
    assert out.batch.signal.tolist() == [1] and kinds(out) == [h.UNKNOWN_METRIC] and out.rebirth == ("g", "e")


def test_ndeath_of_the_current_session_marks_comm_loss_and_an_older_one_is_ignored() -> None:
    hh = born(bdseq=7)
    feed(hh, msg("DDATA", 3, [{"alias": 1, "timestamp": MS + 9, "double_value": 1.0}], "d1"))
    stale = feed(hh, msg("NDEATH", None, [{"name": "bdSeq", "datatype": 4, "long_value": 6}]))
    assert not len(stale.batch) and hh.online("g", "e") and "ignored" in (stale.event or "")
    death = feed(hh, msg("NDEATH", None, [{"name": "bdSeq", "datatype": 4, "long_value": 7}]))
    assert not hh.online("g", "e") and "comm loss" in (death.event or "")
    assert death.batch.signal.tolist() == [0, 1, 2, 3]
    assert set(death.batch.quality.tolist()) == {q.BAD | q.COMM_LOSS} and np.isnan(death.batch.value).all()
    assert set(death.batch.ts.tolist()) == {(MS + 9) * 1_000_000 + 1}


def test_ddeath_marks_only_its_device() -> None:
    hh = born()
    out = feed(hh, msg("DDEATH", 3, [], "d1"))
    assert out.batch.signal.tolist() == [1, 2] and hh.online("g", "e", "d2") and not hh.online("g", "e", "d1")


@pytest.mark.parametrize(
    ("code", "quality"),
    [
        (None, q.GOOD),
        (192, q.GOOD),
        (28, q.STATUS_QUALITY["maintenance"]),
        (80, q.STATUS_QUALITY["calibration"]),
        (16, q.STATUS_QUALITY["fault"]),
        (24, q.BAD | q.COMM_LOSS),
        (84, q.UNCERTAIN | q.OUT_OF_RANGE),
        (64, q.UNCERTAIN),
        (0, q.BAD),
        (500, q.UNCERTAIN),
    ],
)
def test_the_quality_property_maps_to_kilnwatch_quality(code: int | None, quality: int) -> None:
    hh = born()
    metric: dict[str, Any] = {"alias": 1, "double_value": 3.0}
    if code is not None:
        metric["quality"] = code
    out = feed(hh, msg("DDATA", 3, [metric], "d1"))
    assert out.batch.quality.tolist() == [quality] and out.batch.value.tolist() == [3.0]
    assert kinds(out) == ([h.UNKNOWN_QUALITY] if code == 500 else [])


def test_null_text_and_future_values() -> None:
    hh = born()
    out = feed(hh, msg("DDATA", 3, [{"alias": 1, "is_null": True}], "d1"))
    assert math.isnan(out.batch.value[0]) and out.batch.quality.tolist() == [q.BAD]
    out = feed(hh, msg("DDATA", 4, [{"alias": 1, "string_value": "n/a"}], "d1"))
    assert (
        not len(out.batch) and kinds(out) == [h.VALUE_NOT_NUMERIC] and out.rejections[0].signals == ("d1.a",)
    )
    future = NOW // 1_000_000 + 3_600_000
    out = feed(hh, msg("DDATA", 5, [{"alias": 1, "timestamp": future, "double_value": 1.0}], "d1"))
    assert not len(out.batch) and kinds(out) == [h.TIMESTAMP_FUTURE]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["NBIRTH", "NDEATH", "NDATA", "DBIRTH", "DDATA", "DDEATH", "STATE", "X"]),
    device=st.sampled_from([None, "d1", "d9"]),
    data=st.binary(max_size=200),
)
def test_any_bytes_on_any_sparkplug_topic_never_raise(kind: str, device: str | None, data: bytes) -> None:
    hh = born()
    topic = f"spBv1.0/g/{kind}/e" + (f"/{device}" if device else "")
    out = hh.handle_now(topic, data, NOW, NOW)
    assert len(out.batch.signal) == len(out.batch.value)


@settings(max_examples=80, deadline=None)
@given(
    metrics=st.lists(
        st.fixed_dictionaries(
            {"alias": st.integers(0, 2**64 - 1), "timestamp": st.integers(0, 2**64 - 1)},
            optional={
                "datatype": st.integers(0, 2**32 - 1),
                "is_null": st.booleans(),
                "int_value": st.integers(0, 2**32 - 1),
                "double_value": st.floats(),
                "string_value": st.text(max_size=5),
                "quality": st.integers(0, 2**31 - 1),
            },
        ),
        max_size=8,
    ),
    seq=st.integers(0, 255),
)
def test_any_metrics_never_raise(metrics: list[dict[str, Any]], seq: int) -> None:
    hh = born()
    out = feed(hh, msg("DDATA", seq, metrics, "d1"))
    assert set(out.batch.signal.tolist()) <= {1, 2}


def test_a_payload_that_is_not_sparkplug_is_refused_and_commands_are_ignored() -> None:
    hh = born()
    out = hh.handle_now("spBv1.0/g/DDATA/e/d1", b"\xff\xff\xff", NOW, NOW)
    assert out.dropped and kinds(out) == [h.NOT_SPARKPLUG]
    command = feed(hh, msg("NCMD", None, [{"name": h.REBIRTH_METRIC, "boolean_value": True}]))
    assert (
        not command.dropped
        and not len(command.batch)
        and command.rejections == []
        and command.rebirth is None
    )
    assert Payload.FromString(h.rebirth_request(MS)).metrics[0].boolean_value is True
