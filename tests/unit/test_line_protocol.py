"""Line protocol from columnar batches and aggregates, parsed back field by field."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from analytics.aggregates import HourAggregate, MinuteAggregate
from analytics.batch import ReadingBatch
from analytics.signals import Quantity, SignalInfo
from collector.outputs.historian.line_protocol import (
    ReadingFormatter,
    aggregate_outbox_rows,
    hour_line,
    hour_revision_line,
    minute_line,
    series_key,
)

SIGNALS = [
    SignalInfo("kiln1.stack.co2", "plant a", "kiln1", Quantity.CO2, "vol %"),
    SignalInfo("kiln 2,stack=flow", "plant a", "kiln=2", Quantity.FLOW, "Nm3/h"),
    SignalInfo("k3.o2", "p", "k3", Quantity.O2, "vol %"),
]
_UNESCAPED = {",": r"(?<!\\),", " ": r"(?<!\\) ", "=": r"(?<!\\)="}


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse(line: str) -> tuple[str, dict[str, str], dict[str, str], int]:
    """(measurement, tags, fields as text, timestamp) of one line without string fields."""
    series, fields, ts = re.split(_UNESCAPED[" "], line)
    measurement, *tags = re.split(_UNESCAPED[","], series)
    tag_map = dict(tuple(map(_unescape, re.split(_UNESCAPED["="], t))) for t in tags)
    field_map = dict(f.split("=") for f in fields.split(","))
    return _unescape(measurement), tag_map, field_map, int(ts)


def lines(body: bytes) -> list[str]:
    assert body.endswith(b"\n")
    return body.decode().split("\n")[:-1]


def test_readings_with_tags_that_need_escaping() -> None:
    batch = ReadingBatch.from_columns(
        [0, 1, 2], [1, 2, 1_700_000_000_123_456_789], [22.5, 397_500.0, -0.25], [0, 1, 66]
    )
    parsed = [parse(x) for x in lines(ReadingFormatter(SIGNALS)(batch))]
    assert parsed[1] == (
        "reading",
        {"kiln": "kiln=2", "plant": "plant a", "quantity": "flow", "signal": "kiln 2,stack=flow"},
        {"value": "397500.0", "quality": "1i"},
        2,
    )
    assert [p[3] for p in parsed] == [1, 2, 1_700_000_000_123_456_789]
    assert [float(p[2]["value"]) for p in parsed] == [22.5, 397_500.0, -0.25]
    assert [p[2]["quality"] for p in parsed] == ["0i", "1i", "66i"]
    assert list(parsed[0][1]) == sorted(parsed[0][1])  # tags sorted by key


def test_non_finite_values_keep_quality_and_drop_the_value_field() -> None:
    values = [math.nan, math.inf, -math.inf, 1.0]
    batch = ReadingBatch.from_columns([0, 1, 2, 0], [10, 20, 30, 40], values, [2, 2, 2, 0])
    fields = [parse(x)[2] for x in lines(ReadingFormatter(SIGNALS)(batch))]
    assert fields == [{"quality": "2i"}] * 3 + [{"value": "1.0", "quality": "0i"}]


def test_readings_carry_their_plant_company() -> None:
    batch = ReadingBatch.from_columns(
        np.array([0, 2]), np.array([1, 2]), np.array([1.5, 2.5]), np.array([0, 0])
    )
    tags = [parse(x)[1] for x in lines(ReadingFormatter(SIGNALS, {"plant a": "acme"})(batch))]
    assert tags[0]["company"] == "acme" and tags[0]["plant"] == "plant a"
    assert "company" not in tags[1]  # plant p has no company


def test_empty_batch_gives_no_bytes() -> None:
    assert ReadingFormatter(SIGNALS)(ReadingBatch.empty()) == b""


@settings(max_examples=60, deadline=None)
@given(
    values=hnp.arrays(
        np.float64, st.integers(1, 200), elements=st.floats(allow_nan=True, allow_infinity=True)
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_float_parses_back_to_the_same_number(values: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = len(values)
    batch = ReadingBatch.from_columns(
        rng.integers(0, len(SIGNALS), n), rng.integers(0, 2**62, n), values, rng.integers(0, 256, n)
    )
    parsed = [parse(x) for x in lines(ReadingFormatter(SIGNALS)(batch))]
    assert len(parsed) == n
    for (_, tags, fields, ts), sig, t, v, q in zip(
        parsed, batch.signal, batch.ts, batch.value, batch.quality, strict=True
    ):
        assert tags["signal"] == SIGNALS[sig].id and ts == t and fields["quality"] == f"{q}i"
        if np.isfinite(v):
            assert float(fields["value"]) == v and math.copysign(1, float(fields["value"])) == math.copysign(
                1, v
            )
        else:
            assert "value" not in fields


def test_minute_line_leaves_out_missing_fields_and_types_numbers_as_floats() -> None:
    m = MinuteAggregate("kiln1", "plant a", 60_000_000_000, None, 210, None, False, {}, revision=3)
    measurement, tags, fields, ts = parse(minute_line(m).rstrip("\n"))
    assert (measurement, tags, ts) == ("kiln_minute", {"kiln": "kiln1", "plant": "plant a"}, 60_000_000_000)
    assert fields == {"clinker_t_per_h": "210.0", "valid": "false", "revision": "3i"}


def test_hour_line_has_the_hourly_api_fields() -> None:
    h = HourAggregate("kiln1", "p", 3_600_000_000_000, 88.5, 205.25, 431.2, True, 1, {}, 2)
    _, _, fields, _ = parse(hour_line(h).rstrip("\n"))
    assert fields == {
        "co2_t": "88.5",
        "clinker_t": "205.25",
        "intensity_kg_per_t": "431.2",
        "completeness": "1.0",
        "valid": "true",
        "revision": "2i",
    }
    nan_hour = HourAggregate("kiln1", "p", 0, math.nan, None, None, False, 0.0, {})
    assert set(parse(hour_line(nan_hour).rstrip("\n"))[2]) == {"completeness", "valid", "revision"}


def test_aggregate_outbox_rows_make_one_row_per_output() -> None:
    minutes = [MinuteAggregate("k", "p", t, 1.0, 2.0, 3.0, True, {}) for t in (120, 60)]
    hours = [HourAggregate("k", "p", 0, 1.0, 2.0, 3.0, True, 1.0, {})]
    [(oldest, n, body)] = aggregate_outbox_rows(minutes, hours)
    assert (oldest, n) == (0, 4)
    names = [parse(x)[0] for x in lines(body)]
    assert names == ["kiln_minute", "kiln_minute", "kiln_hourly", "kiln_hour_rev"]
    assert aggregate_outbox_rows([], []) == []


def test_company_tag_is_added_when_the_plant_has_one() -> None:
    minute = MinuteAggregate("k", "p", 60, 1.0, 2.0, 3.0, True, {})
    hour = HourAggregate("k", "p", 0, 1.0, 2.0, 3.0, True, 1.0, {}, 3)
    [(_, _, body)] = aggregate_outbox_rows([minute], [hour], {"p": "acme"})
    tags = [parse(x)[1] for x in lines(body)]
    assert all(t["company"] == "acme" and t["plant"] == "p" and t["kiln"] == "k" for t in tags)
    [(_, _, body)] = aggregate_outbox_rows([minute], [hour], {"other": "acme"})
    assert all("company" not in parse(x)[1] for x in lines(body))  # without one: as before


def test_hour_revision_line_tags_the_revision() -> None:
    h = HourAggregate("kiln1", "p", 3_600_000_000_000, 88.5, 205.25, 431.2, True, 0.5, {}, 2)
    name, tags, fields, ts = parse(hour_revision_line(h, "acme").rstrip("\n"))
    assert (name, ts) == ("kiln_hour_rev", 3_600_000_000_000)
    assert tags == {"company": "acme", "kiln": "kiln1", "plant": "p", "revision": "2"}
    assert fields == {"co2_t": "88.5", "clinker_t": "205.25", "completeness": "0.5", "valid": "true"}
    unknown = HourAggregate("kiln1", "p", 0, None, None, None, False, 0.0, {})
    assert parse(hour_revision_line(unknown).rstrip("\n"))[2] == {"completeness": "0.0", "valid": "false"}


@pytest.mark.parametrize(
    ("tags", "key"),
    [
        ({"b": "2", "a": "1"}, "m,a=1,b=2"),
        ({"a": "x y", "b": ""}, r"m,a=x\ y"),
        ({"a=b": "c,d"}, r"m,a\=b=c\,d"),
    ],
)
def test_series_key_sorts_escapes_and_skips_empty_tags(tags: dict[str, str], key: str) -> None:
    assert series_key("m", tags) == key
