"""10 000 random and malformed payloads mixed with good ones, through a real mosquitto: the collector
survives, every good reading is stored, every bad one is a dead letter with its reason."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from analytics import quality as q
from collector.sources.mqtt.spec import MqttBinding
from collector.store.local import connect
from tests.fixtures.mosquitto import Mosquitto
from tests.integration.mqtt_helpers import (
    CHANNELS,
    NS,
    STATUS,
    Publisher,
    base_ns,
    rack_bindings,
    rack_payload,
    rig,
    running,
    until,
)

pytest_plugins = ["tests.fixtures.mosquitto", "tests.integration.mqtt_fixtures"]
pytestmark = pytest.mark.integration

NO_FLOAT_TEXT = st.text(
    alphabet="abcdghjkmopqrsuvwxz _-/", min_size=1, max_size=12
)  # never float(), never ISO
GOOD_VALUE = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**15), 10**15))
STATUS_WORD = st.sampled_from([*STATUS, None])
JSON_NOT_OBJECT = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=5,
)
GOOD_CHANNEL = st.tuples(st.just("good"), GOOD_VALUE, STATUS_WORD)
CHANNEL = st.one_of(
    GOOD_CHANNEL,
    GOOD_CHANNEL,
    GOOD_CHANNEL,
    st.tuples(st.just("value_missing")),
    st.tuples(
        st.just("value_not_numeric"),
        st.one_of(NO_FLOAT_TEXT, st.none(), st.booleans(), st.lists(st.integers(), max_size=3)),
    ),
    st.tuples(
        st.just("value_not_finite"), st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", '"nan"'])
    ),
)
BAD_TS = st.one_of(
    st.tuples(st.just("timestamp_missing")),
    st.tuples(
        st.just("timestamp_invalid"),
        st.one_of(
            NO_FLOAT_TEXT, st.none(), st.booleans(), st.integers(max_value=-1), st.lists(st.integers())
        ),
    ),
    st.tuples(st.just("timestamp_future"), st.integers(400, 10**8)),
)
GOOD_TS = st.tuples(st.just("good"), st.sampled_from(["iso", "ns", "us"]))
TOPIC_KIND = st.sampled_from(["single", "single", "single", "rack", "rack", "stale"])
CASE = st.one_of(
    st.tuples(TOPIC_KIND, st.just("fields"), GOOD_TS, st.lists(CHANNEL, min_size=3, max_size=3)),
    st.tuples(TOPIC_KIND, st.just("fields"), GOOD_TS, st.lists(CHANNEL, min_size=3, max_size=3)),
    st.tuples(TOPIC_KIND, st.just("fields"), BAD_TS, st.lists(GOOD_CHANNEL, min_size=3, max_size=3)),
    st.tuples(TOPIC_KIND, st.just("not_json"), st.binary(max_size=40), st.integers(0, 200)),
    st.tuples(TOPIC_KIND, st.just("not_object"), JSON_NOT_OBJECT, st.none()),
)
FUZZ_NAMES = ("single", "r.co2", "r.o2", "r.h2o")

Good = tuple[str, int, float, int]  # signal, ts [ns], value, quality
Bad = tuple[str | None, str, bytes]  # signal, reason kind, payload


def draw_cases(n: int, per_example: int = 100) -> list[Any]:
    cases: list[Any] = []

    @settings(
        max_examples=n // per_example,
        database=None,
        derandomize=True,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(CASE, min_size=per_example, max_size=per_example))
    def collect(batch: list[Any]) -> None:
        cases.extend(batch)

    collect()
    return cases


def build(case: Any, ts_ns: int, now_s: int, prefix: str) -> tuple[str, bytes, list[Good], list[Bad]]:
    """The topic, payload and the oracle: the readings it must give and its dead letters."""
    where, shape, a, b = case
    topic = {
        "single": f"{prefix}/single/gw{ts_ns % 7}",
        "rack": f"{prefix}/rack",
        "stale": f"{prefix}/stale",
    }[where]
    signals = ["single"] if where == "single" else [f"r.{c}" for c in CHANNELS]
    if shape == "not_json":
        good = rack_payload(ts_ns, 1.0)
        payload = b"\xff" + a if b % 2 else good[: b % len(good)]
    elif shape == "not_object":
        payload = json.dumps(a).encode()
    else:
        payload, goods, bads = _fields(a, b, ts_ns, now_s, signals)
    if where == "stale":
        return topic, payload, [], [(None, "no_signal", payload)]
    if shape == "not_json":
        return topic, payload, [], [(signals[0] if len(signals) == 1 else None, "not_json", payload)]
    if shape == "not_object":
        return topic, payload, [], [(s, "value_missing", payload) for s in signals]
    return topic, payload, goods, [(s, kind, payload) for s, kind in bads]


def _fields(
    ts_case: Any, channels: list[Any], ts_ns: int, now_s: int, signals: list[str]
) -> tuple[bytes, list[Good], list[tuple[str, str]]]:
    doc: dict[str, Any] = {"channels": {}}
    raw: dict[str, str] = {}
    if ts_case[0] == "good":
        doc["ts"] = {
            "iso": datetime.fromtimestamp(ts_ns // NS, UTC)
            .replace(microsecond=ts_ns % NS // 1000)
            .isoformat(),
            "ns": ts_ns,
            "us": ts_ns // 1000,
        }[ts_case[1]]
    elif ts_case[0] == "timestamp_invalid":
        doc["ts"] = ts_case[1]
    elif ts_case[0] == "timestamp_future":
        doc["ts"] = now_s + ts_case[1]
    goods: list[Good] = []
    bads: list[tuple[str, str]] = []
    for signal, channel in zip(signals, channels, strict=False):
        field: dict[str, Any] = {}
        if channel[0] == "good":
            field = {"value": channel[1]} | ({} if channel[2] is None else {"status": channel[2]})
            if ts_case[0] == "good":
                quality = q.STATUS_QUALITY[STATUS[channel[2]]] if channel[2] else q.GOOD
                goods.append((signal, ts_ns, float(channel[1]), quality))
            else:
                bads.append((signal, ts_case[0]))
        else:
            if channel[0] == "value_not_numeric":
                field = {"value": channel[1]}
            elif channel[0] == "value_not_finite":
                field = {"value": f"@{signal}@"}
                raw[f'"@{signal}@"'] = channel[1]
            bads.append((signal, channel[0]))
        if signal == "single":
            doc |= field
        else:
            doc["channels"][signal.removeprefix("r.")] = field
    payload = json.dumps(doc)  # the stdlib writes integers beyond 64 bits too
    for placeholder, literal in raw.items():
        payload = payload.replace(placeholder, literal)
    return payload.encode(), goods, bads


async def test_random_and_malformed_payloads(
    broker: Mosquitto, prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cases = draw_cases(10_000)
    assert len(cases) == 10_000
    start, now_s = base_ns(), time.time_ns() // NS
    built = [build(case, start + i * 1000, now_s, prefix) for i, case in enumerate(cases)]
    goods = [g for _, _, gs, _ in built for g in gs]
    bads = Counter(b for _, _, _, bs in built for b in bs)
    single = MqttBinding(broker="cems", topic=f"{prefix}/single/+")
    bindings = [
        ("single", single),
        *((s, b.model_copy(update={"topic": f"{prefix}/rack"})) for s, b in rack_bindings("x", "r")),
    ]
    client_id = f"{prefix}-c"
    caplog.set_level(logging.WARNING, logger="collector.sources.mqtt")
    async with rig(tmp_path, FUZZ_NAMES) as r:
        # An older configuration subscribed to a topic that the current one no longer binds.
        stale = MqttBinding(broker="cems", topic=f"{prefix}/stale")
        async with running(r.source(broker, [*bindings, ("single", stale)], client_id)):
            pass
        async with running(r.source(broker, bindings, client_id)) as task:
            pub = Publisher(broker)
            for topic, payload, _, _ in built:
                pub.publish(topic, payload)
            await pub.flush()
            pub.close()
            reader = r.reader()
            db = connect(r.path, readonly=True)
            dead_count = lambda: int(db.execute("SELECT count(*) FROM dead_letter").fetchone()[0])  # noqa: E731
            await until(
                lambda: reader.count_readings() == len(goods) and dead_count() == bads.total(),
                f"{len(goods)} readings and {bads.total()} dead letters",
                within_s=30,
            )
            assert not task.done()
        names, batch = reader.readings(list(FUZZ_NAMES))
        cols = (batch.signal.tolist(), batch.ts.tolist(), batch.value.tolist(), batch.quality.tolist())
        stored = sorted((names[s], t, v, qc) for s, t, v, qc in zip(*cols, strict=True))
        assert stored == sorted(goods)
        letters = reader.dead_letters("cems")
        assert Counter((d.signal, d.reason.split(":")[0], d.payload) for d in letters) == bads
        assert all(d.reason.partition(": ")[2] for d in letters)
    stale_count = sum(1 for c in cases if c[0] == "stale")
    assert r.rejected("-", "no_signal") == stale_count
    kinds = {kind for _, kind, _ in bads}
    assert len(kinds) == 8 and len(goods) > 1000
    logged = [rec for rec in caplog.records if "further ones are counted" in rec.getMessage()]
    assert sorted(str(rec.args[1]) for rec in logged) == sorted(kinds)  # type: ignore[index]
