"""kilnwatch's results OPC UA server, read by an asyncua client while a real service runs on the
simulators: every node of the README's table exists, its values equal /live, /hourly and /alarms for
the same minute and hour, status follows validity, and a secured endpoint refuses what it should."""

from __future__ import annotations

import asyncio
import math
import re
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography.x509.oid import ExtendedKeyUsageOID

from kilnwatch.results.opcua_nodes import NAMESPACE
from simulators.scenarios import Event, Kind, Scenario
from tests.e2e.hourly import replay_last_hour
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
KILNS = ("kiln1", "kiln2")
HOUR_NS = 3600 * 10**9
CLIENT_TIMEOUT_S = 10.0


def documented_nodes() -> list[str]:
    """The string node ids of the README's address-space table, for the demo kilns and alarm kinds."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### Results for the DCS: OPC UA server and MQTT", 1)[1].split("\n### ", 1)[0]
    kinds = re.search(r"`<kind>` is each of (.+?)\(see Alarms\)", section, re.S)
    assert kinds, "the README names the alarm kinds"
    kind_names = re.findall(r"`(\w+)`", kinds.group(1))
    ids = re.findall(r"^\| `s=([^`]+)` \|", section, re.M)
    assert len(ids) >= 15, ids
    out = []
    for node in ids:
        for kiln in KILNS if "<kiln>" in node else ("",):
            for kind in kind_names if "<kind>" in node else ("",):
                out.append(node.replace("<kiln>", kiln).replace("<kind>", kind))
    return sorted(set(out))


def _ns(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1e9)


def _utc_ns(value: datetime) -> int:
    return int(value.replace(tzinfo=value.tzinfo or UTC).timestamp() * 1e9)


async def read_all(url: str, node_ids: list[str], **login: Any) -> dict[str, ua.DataValue]:
    client = Client(url, timeout=CLIENT_TIMEOUT_S)
    if "user" in login:
        client.set_user(login["user"])
        client.set_password(login["password"])
    if "cert" in login:
        client.application_uri = login["uri"]
        await client.set_security(
            SecurityPolicyBasic256Sha256,
            str(login["cert"]),
            str(login["key"]),
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )
    async with client:
        idx = await client.get_namespace_index(NAMESPACE)
        nodes = [client.get_node(ua.NodeId(n, idx)) for n in node_ids]
        values = await client.read_attributes(nodes)
        return dict(zip(node_ids, values, strict=True))


async def read_history(url: str, node_id: str, start: datetime, end: datetime) -> list[ua.DataValue]:
    async with Client(url, timeout=CLIENT_TIMEOUT_S) as client:
        idx = await client.get_namespace_index(NAMESPACE)
        return await client.get_node(ua.NodeId(node_id, idx)).read_raw_history(start, end)


def _same(a: Any, b: Any) -> bool:
    if a is None:
        return b is None or (isinstance(b, float) and math.isnan(b))
    if isinstance(a, float):
        return isinstance(b, float) and a == pytest.approx(b, rel=1e-12)
    return bool(a == b)


def mismatches(
    values: dict[str, ua.DataValue], live: dict[str, Any], hour: dict[str, Any], kiln: str
) -> list[str]:
    """Differences between the server's nodes and /live, /hourly (empty: the same minute and hour)."""
    # a Bad value goes out as its status alone (asyncua sends no value with it): its status is checked
    v = {
        n.removeprefix(f"{kiln}."): dv.Value.Value
        for n, dv in values.items()
        if n.startswith(f"{kiln}.") and not dv.StatusCode.is_bad()
    }
    wanted = {
        "live.minute_start": _ns(live["time"]),
        "live.co2_t_per_h": live["co2_t_per_h"],
        "live.clinker_t_per_h": live["clinker_t_per_h"],
        "live.intensity_kg_per_t": live["intensity_kg_per_t"],
        "live.valid": live["valid"],
        "hour.hour_start": _ns(hour["hour"]),
        "hour.co2_t": hour["co2_t"],
        "hour.clinker_t": hour["clinker_t"],
        "hour.intensity_kg_per_t": hour["intensity_kg_per_t"],
        "hour.valid": hour["valid"],
        "hour.completeness": hour["completeness"],
        "hour.revision": hour["revision"],
    }
    got = {k: _utc_ns(x) if isinstance(x, datetime) else x for k, x in v.items()}
    return [
        f"{k}: node {got.get(k)!r} != api {want!r}"
        for k, want in wanted.items()
        if k in got and not _same(want, got[k])
    ] + [f"{kiln}.{k}: Bad while valid" for k in wanted if k not in got and _valid(k, live, hour)]


def _valid(key: str, live: dict[str, Any], hour: dict[str, Any]) -> bool:
    return bool(live.get("valid") if key.startswith("live.") else hour.get("valid"))


def test_results_server_matches_the_api_and_follows_validity(start_service) -> None:
    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}/kilnwatch"
    t0 = datetime.now(UTC).timestamp() * 1e9
    # kiln2's analysers are in fault from before the first simulated reading to long after the test.
    fault = Scenario([Event(Kind.FAULT, "kiln2", int(t0) - 4 * HOUR_NS, 8 * 3600)])
    results = {"opcua": {"endpoint": url, "security_policies": ["None"], "allow_anonymous": True}}
    backfill_h, hour = replay_last_hour(time.time_ns())
    # 120x: the replay takes 1-1.5 min (real-time minutes close once a minute after it)
    svc = start_service(speed=120.0, backfill_h=backfill_h, scenario=fault, results=results)
    nodes = documented_nodes()

    def newest_hour(kiln: str) -> dict[str, Any] | None:
        rows = svc.get(f"/api/v1/kilns/{kiln}/hourly").json()
        return rows[-1] if rows else None

    # caught up: the clock runs in real time, the newest minute and hour stay put for a while
    svc.wait_for(lambda: all((r := newest_hour(k)) and _ns(r["hour"]) >= hour for k in KILNS), timeout=400)
    svc.wait_for(lambda: svc.get("/api/v1/kilns/kiln1/live").json()["age_s"] < 120, timeout=240, interval=1.0)

    last: list[str] = []

    def consistent() -> dict[str, ua.DataValue] | None:
        values = asyncio.run(read_all(url, nodes))
        live = {k: svc.get(f"/api/v1/kilns/{k}/live").json() for k in KILNS}
        hours = {k: newest_hour(k) for k in KILNS}
        again = asyncio.run(read_all(url, nodes))  # a minute that closed in between: try again
        last[:] = [m for k in KILNS for m in mismatches(values, live[k], hours[k] or {}, k)]
        if last or mismatches(again, live["kiln1"], hours["kiln1"] or {}, "kiln1"):
            return None
        values["_live"], values["_hours"] = live, hours  # type: ignore[assignment]
        return values

    try:
        values = svc.wait_for(consistent, timeout=90, interval=1.0)
    except TimeoutError:
        pytest.fail(f"the nodes never equalled /live and /hourly: {last}")
    live = values.pop("_live")  # type: ignore[arg-type]
    values.pop("_hours")
    assert set(values) == set(nodes)  # every documented node answered
    for node, dv in values.items():
        assert dv.StatusCode is not None and not dv.StatusCode.name.startswith("BadNodeIdUnknown"), node
        assert dv.StatusCode.is_bad() or dv.SourceTimestamp is not None, node
    # validity → status: kiln1 valid and fresh (Good), kiln2's analysers in fault (Bad)
    assert live["kiln1"]["valid"] and not live["kiln2"]["valid"]  # type: ignore[index]
    assert values["kiln1.live.co2_t_per_h"].StatusCode.is_good()
    assert values["kiln2.live.co2_t_per_h"].StatusCode.is_bad()
    assert values["kiln2.live.intensity_kg_per_t"].StatusCode.is_bad()
    assert values["kiln1.hour.co2_t"].StatusCode.is_good()
    assert not values["kiln2.hour.co2_t"].StatusCode.is_good()
    # a live value belongs to its minute, an hourly value to its hour
    minute_start = values["kiln1.live.minute_start"].Value.Value
    assert _utc_ns(values["kiln1.live.co2_t_per_h"].SourceTimestamp) == _utc_ns(minute_start)
    hour_start = values["kiln1.hour.hour_start"].Value.Value
    assert _utc_ns(values["kiln1.hour.co2_t"].SourceTimestamp) == _utc_ns(hour_start)
    # the fault alarm of kiln2, with its message as /alarms has it
    alarms = {a["id"]: a for a in svc.get("/api/v1/alarms").json()["active"]}
    assert values["kiln2.alarms.fault"].Value.Value is True
    assert values["kiln2.alarms.fault.message"].Value.Value == alarms["fault:kiln2"]["message"]
    assert values["kiln1.alarms.fault"].Value.Value is False
    assert values["kiln1.alarms.fault.message"].Value.Value == ""
    # HistoryRead of the hourly values over the store: one value per stored hour, as /hourly has them
    rows = svc.get("/api/v1/kilns/kiln1/hourly", params={"start": "2026-01-01T00:00:00Z"}).json()
    start = datetime.fromtimestamp(_ns(rows[0]["hour"]) / 1e9, UTC)
    history = asyncio.run(read_history(url, "kiln1.hour.co2_t", start, datetime.now(UTC)))
    got = [(_utc_ns(dv.SourceTimestamp), dv.Value.Value) for dv in history]
    assert got == [(_ns(r["hour"]), pytest.approx(r["co2_t"], rel=1e-12)) for r in rows]


async def _refused(url: str, **login: Any) -> BaseException | None:
    try:
        await read_all(url, ["kiln1.live.valid"], **login)
    except Exception as err:
        return err
    return None


def test_secured_endpoint_refuses_anonymous_and_the_none_policy(start_service, tmp_path: Path) -> None:
    host = socket.gethostname()
    server_cert, server_key = tmp_path / "server.der", tmp_path / "server.pem"
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    client_cert, client_key = trusted / "client.der", tmp_path / "client.pem"
    stranger_cert, stranger_key = tmp_path / "stranger.der", tmp_path / "stranger.pem"

    async def certs() -> None:
        await cert_gen.setup_self_signed_certificate(
            server_key,
            server_cert,
            "urn:kilnwatch:results:server",
            host,
            [ExtendedKeyUsageOID.SERVER_AUTH],
            {},
        )
        for key, cert, uri in ((client_key, client_cert, "urn:dcs"), (stranger_key, stranger_cert, "urn:x")):
            await cert_gen.setup_self_signed_certificate(
                key, cert, uri, host, [ExtendedKeyUsageOID.CLIENT_AUTH], {}
            )

    asyncio.run(certs())
    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}/kilnwatch"
    results = {
        "opcua": {
            "endpoint": url,
            "security_policies": ["Basic256Sha256_SignAndEncrypt"],
            "certificate": str(server_cert),
            "private_key": str(server_key),
            "trust_dir": str(trusted),
            "users": {"dcs": {"password": "dcs-test-pw"}},
        }
    }
    svc = start_service(speed=60.0, backfill_h=0.1, results=results)
    dcs = {"cert": client_cert, "key": client_key, "uri": "urn:dcs"}

    def reads() -> bool:
        return asyncio.run(_refused(url, user="dcs", password="dcs-test-pw", **dcs)) is None

    svc.wait_for(reads, timeout=60, interval=1.0)  # the configured user over the secure policy reads
    assert asyncio.run(_refused(url)) is not None  # the None policy is not offered
    assert asyncio.run(_refused(url, user="dcs", password="dcs-test-pw")) is not None
    assert asyncio.run(_refused(url, **dcs)) is not None  # anonymous, even on a secure channel
    assert asyncio.run(_refused(url, user="dcs", password="wrong", **dcs)) is not None
    stranger = {"cert": stranger_cert, "key": stranger_key, "uri": "urn:x"}
    assert asyncio.run(_refused(url, user="dcs", password="dcs-test-pw", **stranger)) is not None
    assert reads()  # and still answers the trusted client


def test_a_taken_port_does_not_stop_the_service_and_the_server_comes_up_later(start_service) -> None:
    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}/kilnwatch"
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", port))
    blocker.listen()
    try:
        results = {"opcua": {"endpoint": url, "security_policies": ["None"], "allow_anonymous": True}}
        svc = start_service(speed=60.0, backfill_h=0.1, results=results)
        svc.wait_for(lambda: svc.get("/api/v1/kilns/kiln1/live").json()["time"], timeout=120)
        assert svc.service.results is not None and svc.service.results.opcua is not None
        assert not svc.service.results.opcua.started.is_set()  # the port is someone else's
    finally:
        blocker.close()
    # tried again with a growing delay: up once the port is free
    svc.wait_for(lambda: asyncio.run(_refused(url)) is None, timeout=120, interval=1.0)
    assert svc.get("/readyz").status_code == 200
