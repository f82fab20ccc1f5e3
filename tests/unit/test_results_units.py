"""The results block's validation, the status rules of the results server and the Sparkplug B node."""

from __future__ import annotations

from typing import Any

import pytest
from asyncua import ua
from pydantic import ValidationError

from collector.sources.sparkplug.sparkplug_b_pb2 import Payload
from kilnwatch.results.config import ResultsMqtt, ResultsOpcUa
from kilnwatch.results.opcua_nodes import KILN_VARIABLES, hour_status, live_status, variant
from kilnwatch.results.sparkplug_out import EdgeNode, metric_values
from kilnwatch.results.view import KILN_ALARMS, AlarmState, KilnResults, Snapshot

MINUTE_NS = 60 * 10**9


def results(valid: bool = True, stale: bool = False, hour: dict[str, Any] | None = None) -> KilnResults:
    live = {
        "kiln": "k1",
        "time": "2026-03-01T10:00:00Z",
        "co2_t_per_h": 120.5,
        "clinker_t_per_h": 200.0,
        "intensity_kg_per_t": 602.5,
        "valid": valid,
        "age_s": 12.0,
    }
    return KilnResults(
        "k1",
        live,
        hour,
        None if hour is None else 1_772_359_200 * 10**9,
        1_772_359_200 * 10**9,
        stale,
        {k: AlarmState(k == "fault", "K1: fault" if k == "fault" else "") for k in KILN_ALARMS},
    )


HOUR = {
    "hour": "2026-03-01T09:00:00Z",
    "co2_t": 118.0,
    "clinker_t": 199.0,
    "intensity_kg_per_t": 593.0,
    "valid": True,
    "completeness": 1.0,
    "revision": 0,
    "co2_t_substituted": False,
}


def test_anonymous_needs_saying_so_and_secure_policies_need_their_material() -> None:
    with pytest.raises(ValidationError, match="no client could read"):
        ResultsOpcUa(security_policies=["None"])
    with pytest.raises(ValidationError, match="certificate and private_key"):
        ResultsOpcUa(users={"dcs": {"password": "a-real-pw"}})
    with pytest.raises(ValidationError, match="trusted"):
        ResultsOpcUa(users={"dcs": {"password": "a-real-pw"}}, certificate="c.der", private_key="k.pem")
    with pytest.raises(ValidationError, match="plain text"):
        ResultsOpcUa(security_policies=["None"], users={"dcs": {"password": "a-real-pw"}})
    ok = ResultsOpcUa(security_policies=["None"], allow_anonymous=True)
    assert not ok.secure


def test_mqtt_password_needs_tls() -> None:
    with pytest.raises(ValidationError, match="plain text"):
        ResultsMqtt(username="u", password="a-real-pw")
    with pytest.raises(ValidationError, match="topic_prefix"):
        ResultsMqtt(topic_prefix="a/#")
    assert ResultsMqtt(topic_prefix="a/b/").topic_prefix == "a/b"


def test_status_follows_validity() -> None:
    assert live_status(results()).is_good()
    assert live_status(results(stale=True)).is_uncertain()
    assert live_status(results(valid=False)).is_bad()
    assert hour_status(results()).value == ua.StatusCodes.BadWaitingForInitialData
    assert hour_status(results(hour=HOUR)).is_good()
    substituted = {**HOUR, "valid": False, "co2_t_substituted": True}
    assert hour_status(results(hour=substituted)).is_uncertain()
    assert hour_status(results(hour={**HOUR, "valid": False, "co2_t": None})).is_bad()


def test_missing_values_keep_their_type() -> None:
    for v in KILN_VARIABLES:
        assert variant(v.get(results()), v.variant).VariantType is v.variant


def test_sparkplug_birth_then_only_changes_by_alias() -> None:
    node = EdgeNode("g", "n", 300)
    snap = Snapshot({"k1": results(hour=HOUR)}, AlarmState(False, ""), taken_ns=1_772_359_300 * 10**9)
    birth = Payload.FromString(node.birth(metric_values(snap), 1))
    by_name = {m.name: m for m in birth.metrics}
    assert by_name["bdSeq"].long_value == 300 % 256 and birth.seq == 0
    assert by_name["k1/live/co2_t_per_h"].double_value == 120.5
    assert by_name["k1/hour/co2_t"].double_value == 118.0
    assert by_name["k1/alarms/fault"].boolean_value is True
    co2 = by_name["k1/live/co2_t_per_h"]
    props = dict(zip(co2.properties.keys, co2.properties.values, strict=True))
    assert props["engUnit"].string_value == "t/h" and props["Quality"].int_value == 192
    assert node.data(metric_values(snap), 2) is None  # nothing changed
    later = results(valid=False, hour=HOUR)
    data = Payload.FromString(
        node.data(metric_values(Snapshot({"k1": later}, snap.source_alarm, snap.taken_ns)), 3) or b""
    )
    assert data.seq == 1
    changed = {m.alias for m in data.metrics}
    assert by_name["k1/live/valid"].alias in changed
    quality = {m.alias: dict(zip(m.properties.keys, m.properties.values, strict=True)) for m in data.metrics}
    assert quality[co2.alias]["Quality"].int_value == 0  # the same value, now Bad
    assert all(not m.name for m in data.metrics)  # by alias only


def test_the_plant_file_takes_a_results_block_and_names_its_errors() -> None:
    from kilnwatch.config import ConfigError, parse_plant
    from kilnwatch.demo import demo_plant

    plant = demo_plant(opcua_port=4840, mqtt_port=None)
    assert parse_plant(plant).results.opcua is None  # off unless set
    plant["results"] = {"opcua": {"security_policies": ["None"], "allow_anonymous": True}, "mqtt": {}}
    parsed = parse_plant(plant)
    assert parsed.results.opcua is not None and parsed.results.mqtt is not None
    plant["results"] = {"opcua": {"security_policies": ["None"]}}
    with pytest.raises(ConfigError, match=r"results\.opcua: no client could read"):
        parse_plant(plant)


def test_kilnwatchs_own_sparkplug_host_reads_the_results_node() -> None:
    import time

    from collector.sources.sparkplug.host import Host
    from collector.sources.sparkplug.spec import SparkplugBinding

    names = ["co2", "hour_co2", "valid"]
    metrics = ["k1/live/co2_t_per_h", "k1/hour/co2_t", "k1/live/valid"]
    bindings = [
        (i, SparkplugBinding(source="s", group="g", edge_node="n", metric=m)) for i, m in enumerate(metrics)
    ]
    host = Host(bindings, names, 300 * 10**9)
    node = EdgeNode("g", "n", 7)
    now_ns = time.time_ns()
    snap = Snapshot({"k1": results(hour=HOUR)}, AlarmState(False, ""), taken_ns=now_ns)
    out = host.handle(node.topic("NBIRTH"), node.birth(metric_values(snap), now_ns // 10**6), now_ns)
    assert not out.dropped and not out.rejections
    later = Snapshot({"k1": results(valid=False, hour=HOUR)}, snap.source_alarm, now_ns)
    data = node.data(metric_values(later), now_ns // 10**6)
    assert data is not None
    out = host.handle(node.topic("NDATA"), data, now_ns)
    assert not out.dropped and not out.rejections and out.rebirth is None
    batch = host.flush(now_ns).batch
    got = {
        names[int(s)]: (float(v), int(q))
        for s, v, q in zip(batch.signal, batch.value, batch.quality, strict=True)
    }
    assert got["co2"][0] == 120.5 and got["hour_co2"][0] == 118.0
