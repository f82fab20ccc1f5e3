"""MQTT payload decoding: field paths, timestamps, statuses, topic routing and every bad-input kind."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from analytics import quality as q
from collector.sources.mqtt import decode as md
from collector.sources.mqtt.source import TopicRouter
from collector.sources.mqtt.spec import MqttBinding, MqttBrokerSpec

NOW_NS = 1_795_852_800_000_000_000  # 2026-11-28T08:00:00Z
NOW_ISO = "2026-11-28T08:00:00Z"
SEC = 1_000_000_000
BROKER = MqttBrokerSpec()


def decoder(signal: int = 0, name: str = "co2", **binding: Any) -> md.FieldDecoder:
    return md.FieldDecoder.from_binding(signal, name, MqttBinding(broker="b", topic="t", **binding), BROKER)


CHANNELS = ("co2", "o2", "h2o")
RACK = tuple(
    decoder(i, c, value_path=f"channels.{c}.value", status_path=f"channels.{c}.status", timestamp_path="ts")
    for i, c in enumerate(CHANNELS)
)


def rack_payload(ts: Any = NOW_ISO, **overrides: Any) -> bytes:
    channels = {c: {"value": 10.0 + i, "unit": "vol%", "status": "OK"} for i, c in enumerate(CHANNELS)}
    for c, channel in overrides.items():
        channels[c] = channel
    return orjson.dumps({"ts": ts, "status": "OK", "channels": channels})


def decode(payload: bytes, decoders: tuple[md.FieldDecoder, ...] = (decoder(),), received: int = NOW_NS):
    return md.decode_batch([(decoders, payload, received)], NOW_NS, 300 * SEC)


def kinds(out: md.Decoded) -> list[tuple[tuple[str, ...], str]]:
    return sorted((r.signals, r.kind) for r in out.rejections)


@pytest.mark.parametrize(
    ("path", "doc", "expected"),
    [
        ("channels.co2.value", {"channels": {"co2": {"value": 22.01}}}, 22.01),
        ("values.1", {"values": [1, 2, 3]}, 2),
        ("values.7", {"values": [1, 2, 3]}, md.MISSING),
        ("a.b", {"a": 5}, md.MISSING),
        ("a.b", {"a": {"c": 1}}, md.MISSING),
        ("a.b", [1], md.MISSING),
        ("", 17.5, 17.5),
        ("0", {"0": "key, not index"}, "key, not index"),
    ],
)
def test_lookup_follows_dotted_paths(path: str, doc: Any, expected: Any) -> None:
    assert md.lookup(doc, md.parse_path(path)) == expected or md.lookup(doc, md.parse_path(path)) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (22, 22.0),
        (22.5, 22.5),
        ("22.5", 22.5),
        (" 7 ", 7.0),
        (b"3.25", 3.25),
        ("1e3", 1000.0),
        (10**400, math.inf),
    ],
)
def test_numbers_and_numeric_strings_are_values(raw: Any, expected: float) -> None:
    assert md.to_float(raw) == expected


@pytest.mark.parametrize("raw", [True, False, None, "abc", "", [1.0], {"v": 1}, b"\xff"])
def test_non_numbers_are_not_values(raw: Any) -> None:
    assert md.to_float(raw) is None


@pytest.mark.parametrize(
    ("raw", "unit", "expected_ns"),
    [
        ("2026-11-28T08:00:00Z", "auto", NOW_NS),
        ("2026-11-28T08:00:00.123Z", "auto", NOW_NS + 123_000_000),
        ("2026-11-28T09:00:00+01:00", "auto", NOW_NS),
        ("2026-11-28T08:00:00", "auto", NOW_NS),  # no offset: UTC
        ("2026-11-28 08:00:00.000001", "auto", NOW_NS + 1_000),
        (1_795_852_800, "auto", NOW_NS),
        (1_795_852_800.5, "auto", NOW_NS + SEC // 2),
        (1_795_852_800_123, "auto", NOW_NS + 123_000_000),
        (1_795_852_800_000_001, "auto", NOW_NS + 1_000),
        (1_795_852_800_000_000_007, "auto", NOW_NS + 7),
        ("1795852800", "auto", NOW_NS),
        ("1795852800000000007", "auto", NOW_NS + 7),
        (1_795_852_800_000, "ms", NOW_NS),
        (1_795_852_800, "ms", 1_795_852_800 * 1_000_000),  # a fixed unit wins over magnitude
        (1_795_852_800_000_000_007, "ns", NOW_NS + 7),
        (0, "s", 0),
    ],
)
def test_timestamps_iso_and_epoch(raw: Any, unit: md.TimestampUnit, expected_ns: int) -> None:
    assert md.parse_timestamp(raw, unit) == expected_ns


@pytest.mark.parametrize(
    ("raw", "unit"),
    [
        ("yesterday", "auto"),
        ("2026-13-01T00:00:00Z", "auto"),
        ("", "auto"),
        (True, "auto"),
        (None, "auto"),
        ([1_795_852_800], "auto"),
        ({"s": 1}, "auto"),
        (-5, "auto"),
        (1e30, "s"),
        (10**30, "s"),
        (math.nan, "auto"),
        (math.inf, "s"),
        ("0001-01-01T00:00:00Z", "auto"),
    ],
)
def test_unusable_timestamps(raw: Any, unit: md.TimestampUnit) -> None:
    assert md.parse_timestamp(raw, unit) is None


def test_simulator_payload_gives_one_reading_per_channel() -> None:
    out = decode(rack_payload(), RACK)
    assert out.rejections == [] and out.unknown_status == []
    np.testing.assert_array_equal(out.batch.signal, [0, 1, 2])
    np.testing.assert_array_equal(out.batch.ts, [NOW_NS] * 3)
    np.testing.assert_array_equal(out.batch.value, [10.0, 11.0, 12.0])
    np.testing.assert_array_equal(out.batch.quality, [q.GOOD] * 3)


@pytest.mark.parametrize(
    ("status", "quality"),
    [
        ("OK", q.STATUS_QUALITY["ok"]),
        ("MAINT", q.STATUS_QUALITY["maintenance"]),
        ("CAL", q.STATUS_QUALITY["calibration"]),
        ("FLT", q.STATUS_QUALITY["fault"]),
        (" cal ", q.STATUS_QUALITY["calibration"]),
        (None, q.GOOD),
    ],
)
def test_default_status_map_sets_quality(status: Any, quality: int) -> None:
    out = decode(rack_payload(co2={"value": 1.0, "status": status}), RACK)
    assert out.batch.quality[out.batch.signal == 0].tolist() == [quality]


def test_missing_status_field_is_ok_and_unknown_status_is_uncertain_but_kept() -> None:
    out = decode(rack_payload(co2={"value": 1.0}, o2={"value": 2.0, "status": "WARMUP"}), RACK)
    assert out.batch.quality.tolist() == [q.GOOD, q.UNCERTAIN, q.GOOD]
    assert [(r.signals, r.kind) for r in out.unknown_status] == [(("o2",), md.UNKNOWN_STATUS)]
    assert out.rejections == []


def test_status_words_keep_their_quality_across_messages_and_unknown_ones_are_reported_each_time() -> None:
    rack = tuple(decoder(d.signal, d.name, **_binding_of(d)) for d in RACK)  # a fresh cache
    for _ in range(3):
        out = decode(
            rack_payload(co2={"value": 1.0, "status": " cal "}, o2={"value": 2.0, "status": "WARMUP"}), rack
        )
        assert out.batch.quality.tolist() == [q.STATUS_QUALITY["calibration"], q.UNCERTAIN, q.GOOD]
        assert [(r.signals, r.kind) for r in out.unknown_status] == [(("o2",), md.UNKNOWN_STATUS)]
    assert rack[0].status_codes == {" cal ": q.STATUS_QUALITY["calibration"]}
    assert rack[1].status_codes == {}  # WARMUP is in no map: reported every time
    assert rack[2].status_codes == {"OK": q.GOOD}
    words = [f"ok{' ' * n}" for n in range(md._STATUS_WORDS_KEPT + 10)]  # a sender padding its words
    for w in words:
        assert decode(rack_payload(co2={"value": 1.0, "status": w}), rack).batch.quality[0] == q.GOOD
    assert len(rack[0].status_codes) == md._STATUS_WORDS_KEPT


def _binding_of(d: md.FieldDecoder) -> dict[str, Any]:
    value, ts, status = d.paths
    return {"value_path": value, "timestamp_path": ts, "status_path": status}


@pytest.mark.parametrize(
    ("raw", "word"), [(0, "ok"), (3, "calibration"), (3.0, "calibration"), ("3", "calibration")]
)
def test_numeric_status_codes_from_a_per_binding_map(raw: Any, word: str) -> None:
    d = decoder(status_map={0: "ok", "3": "calibration", 9: "fault"})
    out = decode(orjson.dumps({"value": 5, "ts": NOW_ISO, "status": raw}), (d,))
    assert out.batch.quality.tolist() == [q.STATUS_QUALITY[word]]


def test_binding_timestamp_unit_overrides_the_broker() -> None:
    d = decoder(timestamp_unit="ms")
    out = decode(orjson.dumps({"value": 5, "ts": 1_795_852_800_000}), (d,))
    assert out.batch.ts.tolist() == [NOW_NS]


def test_no_timestamp_path_takes_arrival_time() -> None:
    out = decode(orjson.dumps({"value": 5}), (decoder(timestamp_path=None),), received=NOW_NS - 7)
    assert out.batch.ts.tolist() == [NOW_NS - 7]


@pytest.mark.parametrize(("payload", "value"), [(b"12.5", 12.5), (b" -3 \n", -3.0), (b"1e2", 100.0)])
def test_plain_number_payload(payload: bytes, value: float) -> None:
    out = decode(payload, (decoder(format="number"),), received=NOW_NS - 5)
    assert out.batch.value.tolist() == [value]
    assert out.batch.ts.tolist() == [NOW_NS - 5]
    assert out.batch.quality.tolist() == [q.GOOD]


GOOD = {"value": 1.0, "status": "OK"}


@pytest.mark.parametrize(
    ("payload", "decoders", "expected"),
    [
        (b"{not json", RACK, [(CHANNELS, md.NOT_JSON)]),
        (b"\xff\xfe", (decoder(),), [(("co2",), md.NOT_JSON)]),
        (b"", (decoder(),), [(("co2",), md.NOT_JSON)]),
        (rack_payload(co2={"status": "OK"}), RACK, [(("co2",), md.VALUE_MISSING)]),
        (rack_payload(co2={"value": "n/a"}), RACK, [(("co2",), md.VALUE_NOT_NUMERIC)]),
        (rack_payload(co2={"value": None}), RACK, [(("co2",), md.VALUE_NOT_NUMERIC)]),
        (rack_payload(co2={"value": True}), RACK, [(("co2",), md.VALUE_NOT_NUMERIC)]),
        (rack_payload(co2={"value": [1]}), RACK, [(("co2",), md.VALUE_NOT_NUMERIC)]),
        (rack_payload(co2={"value": "NaN"}), RACK, [(("co2",), md.VALUE_NOT_FINITE)]),
        (rack_payload(co2={"value": "-inf"}), RACK, [(("co2",), md.VALUE_NOT_FINITE)]),
        (rack_payload().replace(b'"value":10.0', b'"value":NaN'), RACK, [(("co2",), md.VALUE_NOT_FINITE)]),
        (rack_payload().replace(b'"value":10.0', b'"value":1e999'), RACK, [(("co2",), md.VALUE_NOT_FINITE)]),
        (
            b'{"value": Infinity, "ts": "%s"}' % NOW_ISO.encode(),
            (decoder(),),
            [(("co2",), md.VALUE_NOT_FINITE)],
        ),
        (
            orjson.dumps({"channels": {c: GOOD for c in CHANNELS}}),
            RACK,
            [((c,), md.TIMESTAMP_MISSING) for c in CHANNELS],
        ),
        (rack_payload(ts="soon"), RACK, [((c,), md.TIMESTAMP_INVALID) for c in CHANNELS]),
        (rack_payload(ts=None), RACK, [((c,), md.TIMESTAMP_INVALID) for c in CHANNELS]),
        (rack_payload(ts=(NOW_NS + 301 * SEC) // SEC), RACK, [((c,), md.TIMESTAMP_FUTURE) for c in CHANNELS]),
        (b"[1, 2]", (decoder(),), [(("co2",), md.VALUE_MISSING)]),
        (b"17", (decoder(),), [(("co2",), md.VALUE_MISSING)]),
        (b"abc", (decoder(format="number"),), [(("co2",), md.VALUE_NOT_NUMERIC)]),
        (b"nan", (decoder(format="number"),), [(("co2",), md.VALUE_NOT_FINITE)]),
        (b"anything", (), [((), md.NO_SIGNAL)]),
    ],
)
def test_each_bad_input_kind_is_rejected_with_its_reason(
    payload: bytes, decoders: tuple[md.FieldDecoder, ...], expected: list[tuple[tuple[str, ...], str]]
) -> None:
    out = decode(payload, decoders)
    assert kinds(out) == sorted(expected)
    rejected = {s for signals, _ in expected for s in signals}
    kept = [d.signal for d in decoders if d.name not in rejected]
    assert out.batch.signal.tolist() == kept
    assert all(r.reason.startswith(f"{r.kind}: ") and r.detail for r in out.rejections)


def test_timestamps_up_to_the_skew_are_kept() -> None:
    out = decode(rack_payload(ts=(NOW_NS + 299 * SEC) // SEC), RACK)
    assert out.rejections == [] and len(out.batch) == 3


def test_good_and_bad_messages_in_one_batch_keep_their_order_and_indices() -> None:
    d = (decoder(),)
    good = [orjson.dumps({"value": float(i), "ts": NOW_NS // SEC - i}) for i in range(4)]
    messages = [(d, good[0], NOW_NS), (d, b"oops", NOW_NS), (d, good[1], NOW_NS), ((), b"x", NOW_NS)]
    messages += [(d, good[2], NOW_NS), (d, b'{"value": NaN, "ts": 1}', NOW_NS), (d, good[3], NOW_NS)]
    out = md.decode_batch(messages, NOW_NS, 300 * SEC)
    assert out.batch.value.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert out.batch.ts.tolist() == [NOW_NS - i * SEC for i in range(4)]
    assert sorted((r.index, r.kind) for r in out.rejections) == [
        (1, md.NOT_JSON),
        (3, md.NO_SIGNAL),
        (5, md.VALUE_NOT_FINITE),
    ]


def test_empty_batch() -> None:
    out = md.decode_batch([], NOW_NS, 0)
    assert len(out.batch) == 0 and out.rejections == []


def test_topic_router_exact_and_wildcards() -> None:
    a, b, c, e = (decoder(i, n) for i, n in enumerate("abce"))
    router = TopicRouter([("plant/k1/cems", a), ("plant/+/cems", b), ("plant/#", c), ("plant/k1/cems", e)])
    assert router.patterns == ("plant/k1/cems", "plant/+/cems", "plant/#")
    assert router.route("plant/k1/cems") == (a, e, b, c)
    assert router.route("plant/k2/cems") == (b, c)
    assert router.route("plant/k2/cems") == (b, c)  # from the cache
    assert router.route("plant") == (c,)
    assert router.route("other/k1/cems") == ()
    assert TopicRouter([("x/y", a)]).route("x/z") == ()


@pytest.mark.parametrize("topic", ["", "a/#/b", "a/b#", "a/b+/c", "#/a"])
def test_invalid_topic_filters_are_refused(topic: str) -> None:
    with pytest.raises(ValidationError):
        MqttBinding(broker="b", topic=topic)


def test_spec_defaults_and_limits() -> None:
    spec = MqttBrokerSpec()
    assert spec.max_future_skew_s == 300 and spec.qos == 1
    assert md.compile_status_map(spec.status_map) == {
        "ok": q.GOOD,
        "maint": q.STATUS_QUALITY["maintenance"],
        "cal": q.STATUS_QUALITY["calibration"],
        "flt": q.STATUS_QUALITY["fault"],
    }
    with pytest.raises(ValidationError):
        MqttBrokerSpec(reconnect_min_s=10, reconnect_max_s=1)
    with pytest.raises(ValidationError):
        MqttBrokerSpec(status_map={"X": "broken"})  # type: ignore[dict-item]
