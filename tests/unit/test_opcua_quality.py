"""OPC UA data values → readings: StatusCode → quality, DateTime → ns, Variant → float."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from asyncua import ua

from analytics import quality as q
from collector.sources.opcua.quality import (
    NO_TS,
    NodeStats,
    NotificationBuffer,
    comm_loss_batch,
    datetime_to_ns,
    quality_from_status,
    values_to_float,
)

S = ua.StatusCodes
T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
T0_NS = 1_709_294_400 * 10**9


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (S.Good, q.GOOD),
        (S.GoodClamped, q.GOOD),
        (S.GoodLocalOverride, q.GOOD | q.SUBSTITUTED),
        (S.Good | 0x0400 | 0x0080, q.GOOD),  # info bits (DataValue, overflow) do not change the class
        (S.UncertainLastUsableValue, q.UNCERTAIN),
        (S.UncertainSensorNotAccurate, q.UNCERTAIN),
        (S.UncertainEngineeringUnitsExceeded, q.UNCERTAIN | q.OUT_OF_RANGE),
        (S.UncertainSubstituteValue, q.UNCERTAIN | q.SUBSTITUTED),
        (S.UncertainSensorCalibration, q.UNCERTAIN | q.CALIBRATION),
        (S.UncertainNoCommunicationLastUsableValue, q.UNCERTAIN | q.COMM_LOSS),
        (S.Bad, q.BAD),
        (S.BadNodeIdUnknown, q.BAD),
        (S.BadSensorFailure, q.BAD | q.FAULT),
        (S.BadDeviceFailure, q.BAD | q.FAULT),
        (S.BadConfigurationError, q.BAD | q.FAULT),
        (S.BadOutOfService, q.BAD | q.MAINTENANCE),
        (S.BadCommunicationError, q.BAD | q.COMM_LOSS),
        (S.BadNoCommunication, q.BAD | q.COMM_LOSS),
        (S.BadNotConnected, q.BAD | q.COMM_LOSS),
        (S.BadOutOfRange, q.BAD | q.OUT_OF_RANGE),
        (0xC0000000, q.BAD),  # reserved severity 11 counts as bad
    ],
)
def test_status_code_to_quality(status: int, expected: int) -> None:
    assert quality_from_status([status]).tolist() == [expected]


def test_status_mapping_is_vectorised() -> None:
    out = quality_from_status(np.array([S.Good, S.BadSensorFailure, S.UncertainLastUsableValue], np.uint32))
    assert out.dtype == np.uint8
    assert out.tolist() == [q.GOOD, q.BAD | q.FAULT, q.UNCERTAIN]


@pytest.mark.parametrize(
    ("dt", "expected"),
    [
        (T0, T0_NS),
        (T0 + timedelta(microseconds=123_456), T0_NS + 123_456_000),
        (T0.replace(tzinfo=None), T0_NS),  # naive means UTC
        (T0.astimezone(timezone(timedelta(hours=2))), T0_NS),
        (datetime(1960, 1, 1, tzinfo=UTC), -315_619_200 * 10**9),
        (None, NO_TS),
        (datetime(1601, 1, 1, tzinfo=UTC), NO_TS),  # OPC UA MinDateTime: "no time"
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), NO_TS),  # MaxDateTime, beyond int64 ns
    ],
)
def test_datetime_to_ns(dt: datetime | None, expected: int) -> None:
    assert datetime_to_ns(dt) == expected


def test_datetime_to_ns_is_exact_far_from_the_epoch() -> None:
    # float seconds would lose the microseconds here
    dt = datetime(2200, 6, 30, 23, 59, 59, 999_999, tzinfo=UTC)
    assert datetime_to_ns(dt) % 1_000_000_000 == 999_999_000


def test_values_cast_to_float_and_non_numeric_flagged() -> None:
    values, non_numeric = values_to_float([1.5, 3, True, None, "x", [1.0], b"\x01"])
    np.testing.assert_array_equal(values[:3], [1.5, 3.0, 1.0])
    assert np.isnan(values[3:]).all()
    assert non_numeric.tolist() == [False, False, False, False, True, True, True]


def dv(
    value: object, status: int = S.Good, source: datetime | None = T0, server: datetime | None = None
) -> ua.DataValue:
    fields: dict[str, Any] = {"SourceTimestamp": source, "ServerTimestamp": server}
    return ua.DataValue(ua.Variant(value), StatusCode=ua.StatusCode(ua.UInt32(status)), **fields)


SIGNALS = np.array([7, 9, 11], dtype=np.int32)


def test_buffer_maps_handles_to_signals_and_keeps_source_time() -> None:
    buf = NotificationBuffer()
    buf.add(2, dv(1.0, source=T0))
    buf.add(0, dv(2, source=T0 + timedelta(seconds=1)))
    buf.add(2, dv(False, source=T0 + timedelta(seconds=2)))
    assert len(buf) == 3
    r = buf.take(SIGNALS)
    assert r is not None and len(buf) == 0
    assert r.batch.signal.tolist() == [11, 7, 11]
    assert r.batch.ts.tolist() == [T0_NS, T0_NS + 10**9, T0_NS + 2 * 10**9]
    assert r.batch.value.tolist() == [1.0, 2.0, 0.0]
    assert r.batch.quality.tolist() == [q.GOOD] * 3
    assert r.newest_source_ns == T0_NS + 2 * 10**9
    assert buf.take(SIGNALS) is None


def test_bad_status_keeps_the_reading_with_nan_value() -> None:
    buf = NotificationBuffer()
    buf.add(0, dv(None, S.BadSensorFailure))
    buf.add(1, dv(5.0, S.BadOutOfService))  # a value under a Bad status is not to be used
    buf.add(2, dv(6.0, S.UncertainLastUsableValue))  # uncertain keeps its value
    r = buf.take(SIGNALS)
    assert r is not None
    assert np.isnan(r.batch.value[:2]).all() and r.batch.value[2] == 6.0
    assert r.batch.quality.tolist() == [q.BAD | q.FAULT, q.BAD | q.MAINTENANCE, q.UNCERTAIN]
    assert not r.non_numeric.any()


def test_timestamp_fallbacks() -> None:
    buf = NotificationBuffer()
    buf.add(0, dv(1.0, source=None, server=T0))  # server time: quality unchanged
    buf.add(1, dv(2.0, source=None, server=None))  # receive time: uncertain
    buf.add(2, dv(None, S.BadSensorFailure, source=None, server=None))  # bad stays bad
    before = datetime.now(UTC)
    r = buf.take(SIGNALS)
    assert r is not None
    assert r.batch.ts[0] == T0_NS
    assert abs(int(r.batch.ts[1]) - datetime_to_ns(before)) < 5 * 10**9
    assert r.batch.quality.tolist() == [q.GOOD, q.UNCERTAIN, q.BAD | q.FAULT]
    assert r.newest_source_ns == T0_NS  # receive times never count as source time


def test_non_numeric_value_is_bad_nan_and_reported() -> None:
    buf = NotificationBuffer()
    buf.add(0, dv("running"))
    buf.add(1, dv(2.5))
    r = buf.take(SIGNALS)
    assert r is not None
    assert np.isnan(r.batch.value[0]) and r.batch.value[1] == 2.5
    assert r.batch.quality.tolist() == [q.BAD, q.GOOD]
    assert r.non_numeric.tolist() == [True, False]


def test_comm_loss_batch() -> None:
    b = comm_loss_batch(SIGNALS, T0_NS + 1)
    assert b.signal.tolist() == SIGNALS.tolist()
    assert b.ts.tolist() == [T0_NS + 1] * 3
    assert np.isnan(b.value).all()
    assert b.quality.tolist() == [q.BAD | q.COMM_LOSS] * 3
    assert not q.is_valid(b.quality).any()


def test_node_stats_count_and_newest() -> None:
    buf, stats = NotificationBuffer(), NodeStats(3)
    for i in range(4):
        buf.add(i % 2, dv(float(i), source=T0 + timedelta(seconds=i)))
    r = buf.take(SIGNALS)
    assert r is not None
    stats.add(r)
    assert stats.row(0) == {"values": 2, "last_ts_ns": T0_NS + 2 * 10**9}
    assert stats.row(1) == {"values": 2, "last_ts_ns": T0_NS + 3 * 10**9}
    assert stats.row(2) == {"values": 0, "last_ts_ns": None}
    assert stats.newest_source_ns == T0_NS + 3 * 10**9
