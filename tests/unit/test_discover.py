"""Pure logic of ``kilnwatch discover``: unit mapping, quantity proposals, payload shapes, the draft."""

from __future__ import annotations

import json

import pytest
import yaml

from analytics.signals import Quantity
from kilnwatch.discover.candidates import Candidate, propose, split_kiln
from kilnwatch.discover.draft import SourceEntry, problems, render
from kilnwatch.discover.mqtt import Sample, candidates
from kilnwatch.discover.units import UNECE_URI, from_eu_information, unece_code


def unit_id(code: str) -> int:
    out = 0
    for ch in code:
        out = (out << 8) | ord(ch)
    return out


@pytest.mark.parametrize(
    ("uri", "code", "shown", "unit"),
    [
        (UNECE_URI, "P1", "vol%", "vol %"),  # the display name says more than "percent"
        (UNECE_URI, "KPA", "", "kPa"),
        (UNECE_URI, "MQH", "cubic metre per hour", "m3/h"),
        (UNECE_URI, "CEL", "°C", "degC"),
        (UNECE_URI, "E18", "", "t/h"),
        (UNECE_URI, "XXX", "", None),
        ("urn:vendor:units", "KPA", "", None),  # a code of another namespace is not a UNECE code
        (None, "", "mg/Nm³", "mg/Nm3"),
    ],
)
def test_engineering_units_map_to_kilnwatch_spellings(
    uri: str | None, code: str, shown: str, unit: str | None
) -> None:
    assert from_eu_information(uri, unit_id(code) if code else -1, shown) == unit


def test_unece_code_unpacks_the_unit_id() -> None:
    assert unece_code(20529) == "P1"
    assert unece_code(unit_id("MQH")) == "MQH"
    assert unece_code(-1) == "" and unece_code(0) == ""


def cand(name: str, unit: str | None, said: str = "") -> Candidate:
    return propose(Candidate("k1", f"k1.{name}", name, {}, unit=unit, unit_said=said or (unit or "")))


@pytest.mark.parametrize(
    ("name", "unit", "quantity", "basis"),
    [
        ("CO2", "%", Quantity.CO2, "dry"),
        ("Stack.O2_dry", "vol %", Quantity.O2, "dry"),
        ("FlueGasTemp", "degC", Quantity.TEMPERATURE, None),
        ("stack.flow", "Nm3/h", Quantity.FLOW, "wet"),
        ("Stack.H2O", "vol %", Quantity.H2O, "wet"),
        ("NOx", "mg/Nm3", Quantity.NOX, "dry"),
        ("CO", "mg/Nm3", Quantity.CO, "dry"),
        ("Baro", "hPa", Quantity.BAROMETRIC_PRESSURE, None),
        ("Clinker.Production", "t/d", Quantity.CLINKER_RATE, None),
        ("CoalFeed", "kg/h", Quantity.FUEL_RATE, None),
        ("truth.co2_t_per_h", "t/h", None, None),  # CO2 in t/h is not a concentration
        ("KilnFeed", "t/h", None, None),
        ("CO2", "mg/Nm3", None, None),  # the unit rules out the name's quantity
    ],
)
def test_quantity_proposed_from_name_and_unit(
    name: str, unit: str, quantity: Quantity | None, basis: str | None
) -> None:
    c = cand(name, unit)
    assert (c.quantity, c.basis) == (quantity, basis)
    assert ("proposed from name" in c.why) == (quantity is not None)


def test_no_proposal_without_a_unit() -> None:
    assert cand("CO2", None).quantity is None
    assert "unit 'ppb' unknown" in cand("CO2", None, "ppb").why


def payloads(*docs: object) -> Sample:
    return Sample([json.dumps(d).encode() if not isinstance(d, bytes) else d for d in docs])


def test_payload_shapes_give_value_status_and_timestamp_paths() -> None:
    found, statuses = candidates(
        {
            "plant/kiln2/cems": payloads(
                {
                    "ts": "2026-11-28T12:00:00Z",
                    "channels": {"co2": {"value": 21.0, "unit": "vol%", "status": "OK"}},
                },
                {
                    "ts": "2026-11-28T12:00:01Z",
                    "channels": {"co2": {"value": 21.1, "unit": "vol%", "status": "BAD"}},
                },
            ),
            "plant/kiln2/flat": payloads({"timestamp": 1_764_331_200_000, "O2": 8.4, "NOx": 401}),
            "plant/Kiln_3/stack/temp": payloads(b"118.5", b"118.6"),
            "plant/notes": payloads(b"hello"),
        },
        "gw",
        "kiln1",
    )
    by_id = {c.signal_id: c for c in found}
    assert set(by_id) == {"kiln2.co2", "kiln2.O2", "kiln2.NOx", "Kiln_3.temp"}
    assert by_id["kiln2.co2"].source["mqtt"] == {
        "broker": "gw",
        "topic": "plant/kiln2/cems",
        "value_path": "channels.co2.value",
        "status_path": "channels.co2.status",
        "timestamp_path": "ts",
    }
    assert by_id["kiln2.co2"].unit == "vol %"
    assert by_id["kiln2.O2"].source["mqtt"]["value_path"] == "O2"
    assert by_id["kiln2.O2"].source["mqtt"]["timestamp_path"] == "timestamp"
    assert by_id["kiln2.O2"].source["mqtt"]["status_path"] is None
    assert by_id["Kiln_3.temp"].source["mqtt"]["format"] == "number"
    assert statuses == {"BAD"}  # OK is known to the collector without a status_map


def opcua(kiln: str, name: str, quantity: Quantity | None, unit: str = "vol %") -> Candidate:
    c = Candidate(
        kiln, f"{kiln}.{name}", name, {"opcua": {"server": "s", "node": f"nsu=urn:x;s={name}"}}, unit=unit
    )
    c.quantity, c.why = quantity, "test"
    return c


def test_the_draft_keeps_one_signal_per_single_role_quantity_and_says_what_is_missing() -> None:
    text = render(
        [opcua("k1", "co2_a", Quantity.CO2), opcua("k1", "co2_b", Quantity.CO2), opcua("k1", "x", None, "")],
        [SourceEntry("opcua", "s", {"url": "opc.tcp://127.0.0.1:4840"})],
        "p1",
        ["opc.tcp://127.0.0.1:4840"],
    )
    plant = yaml.safe_load(text)
    (kiln,) = plant["plants"][0]["kilns"]
    assert [s["id"] for s in kiln["signals"]] == ["k1.co2_a"]
    assert "#   quantity: ?  # another co2 candidate beside k1.co2_a" in text
    assert problems(text) == ["plants[0].kilns[0]: kiln k1 lacks signals for: flow, clinker_rate"]


@pytest.mark.parametrize(
    ("path", "kiln", "rest"),
    [
        (("kiln1", "stack.flow"), "kiln1", ("stack.flow",)),
        (("Plant", "Kiln_2", "Stack", "CO2"), "Kiln_2", ("Stack", "CO2")),  # a plant folder above
        (("Kiln2", "Stack", "CO2"), "Kiln2", ("Stack", "CO2")),  # --root is the kiln
        (("PLC1", "Stack", "CO2"), "PLC1", ("Stack", "CO2")),  # no kiln name: the first level
        (("CO2",), "kiln9", ("CO2",)),
    ],
)
def test_kiln_from_the_browse_path(path: tuple[str, ...], kiln: str, rest: tuple[str, ...]) -> None:
    assert split_kiln(path, "kiln9") == (kiln, rest)
