"""Fault scenarios applied to model values, presets, and the CEMS JSON payloads they produce."""

import itertools
import json

import numpy as np
import pytest
from asyncua import ua

from simulators.cems_payload import build_messages, iso_ms
from simulators.model import ANALYSER_CHANNELS, KilnModel
from simulators.scenario_presets import daily_calibrations, preset, random_scenario
from simulators.scenarios import SPAN_GAS, Event, Kind, Scenario, State

S = 1_000_000_000
T0 = 1_800_000_000 // 3600 * 3600 * S
T = T0 + np.arange(600, dtype=np.int64) * S  # ten minutes at 1 s
MODEL = KilnModel("kiln1", seed=5)
CLEAN = MODEL.sample(T)


def applied(*events: Event):
    return Scenario(events).apply(MODEL, T, CLEAN)


def window(start_s: int, end_s: int) -> np.ndarray:
    return (T0 + start_s * S <= T) & (T0 + end_s * S > T)


def test_no_events_changes_nothing() -> None:
    out = applied()
    for key in ANALYSER_CHANNELS.values():
        np.testing.assert_array_equal(out.values[key], CLEAN[key])
        assert (out.state[key] == State.OK).all() and out.send[key].all()
        assert (out.status_code[key] == 0).all()
    assert (out.rack_state == 0).all() and (out.release_ns == T).all()


def test_calibration_zero_then_span_with_cal_status() -> None:
    out = applied(Event(Kind.CALIBRATION, "kiln1", T0 + 100 * S, 120))
    zero, span = window(100, 160), window(160, 220)
    assert (out.values["stack.co2"][zero] == 0.0).all()
    assert (out.values["stack.co2"][span] == SPAN_GAS["stack.co2"]).all()
    assert (out.rack_state[zero | span] == State.CALIBRATION).all()
    assert (out.rack_state[~(zero | span)] == 0).all()
    assert (out.status_code["stack.o2"][span] == ua.StatusCodes.UncertainSensorCalibration).all()
    # Flow and clinker are not analyser channels and stay untouched.
    np.testing.assert_array_equal(out.values["stack.flow"], CLEAN["stack.flow"])
    assert (out.status_code["stack.flow"] == 0).all()


def test_other_kilns_events_do_not_apply() -> None:
    out = applied(Event(Kind.CALIBRATION, "kiln2", T0, 600))
    assert (out.rack_state == 0).all()


def test_fault_freezes_values_with_bad_status_and_maintenance_sees_air() -> None:
    out = applied(
        Event(Kind.FAULT, "kiln1", T0 + 10 * S, 20),
        Event(Kind.MAINTENANCE, "kiln1", T0 + 300 * S, 60),
    )
    f, m = window(10, 30), window(300, 360)
    assert np.unique(out.values["stack.co2"][f]).size == 1
    assert (out.status_code["stack.co2"][f] == ua.StatusCodes.BadSensorFailure).all()
    assert (out.rack_state[f] == State.FAULT).all() and (out.rack_state[m] == State.MAINTENANCE).all()
    assert (out.values["stack.o2"][m] == 20.9).all()


def test_value_faults_keep_ok_status() -> None:
    out = applied(
        Event(Kind.STUCK, "kiln1", T0 + 50 * S, 30),
        Event(Kind.SPIKE, "kiln1", T0 + 100 * S, 5, factor=4.0),
        Event(Kind.NAN, "kiln1", T0 + 200 * S, 3, channels=("stack.h2o",)),
    )
    stuck, spike, nan = window(50, 80), window(100, 105), window(200, 203)
    assert np.unique(out.values["stack.co2"][stuck]).size == 1
    np.testing.assert_allclose(out.values["stack.co"][spike], 4.0 * CLEAN["stack.co"][spike])
    assert np.isnan(out.values["stack.h2o"][nan]).all() and not np.isnan(out.values["stack.h2o"][~nan]).any()
    assert (out.rack_state == 0).all() and (out.status_code["stack.co2"] == 0).all()


def test_opcua_only_faults() -> None:
    out = applied(
        Event(Kind.FLOW_DROPOUT, "kiln1", T0, 10),
        Event(
            Kind.BAD_STATUS,
            "kiln1",
            T0 + 20 * S,
            10,
            channels=("clinker.rate",),
            form="UncertainLastUsableValue",
        ),
    )
    assert (out.status_code["stack.flow"][window(0, 10)] == ua.StatusCodes.BadNoCommunication).all()
    assert (out.status_code["clinker.rate"][window(20, 30)] == ua.StatusCodes.UncertainLastUsableValue).all()
    assert (out.status_code["clinker.rate"][window(0, 20)] == 0).all()


def test_event_validation() -> None:
    with pytest.raises(ValueError, match="unknown channels"):
        Event(Kind.NAN, "kiln1", T0, 1, channels=("stack.nope",))
    with pytest.raises(ValueError, match="malformed form"):
        Event(Kind.MALFORMED, "kiln1", T0, 1, form="weird")
    with pytest.raises(ValueError, match="status code"):
        Event(Kind.BAD_STATUS, "kiln1", T0, 1, form="BadNotAThing")


def test_payload_shape_and_exact_values() -> None:
    msgs = build_messages(applied())
    assert len(msgs) == 600
    doc = json.loads(msgs[0].payload)
    assert doc["ts"] == iso_ms(T[:1])[0] and doc["ts"].endswith(".000Z") and doc["status"] == "OK"
    assert set(doc["channels"]) == set(ANALYSER_CHANNELS)
    assert doc["channels"]["co2"] == {"value": CLEAN["stack.co2"][0], "unit": "vol%", "status": "OK"}
    assert doc["channels"]["nox"]["unit"] == "mg/Nm3"


def test_payload_rounding_is_optional() -> None:
    doc = json.loads(build_messages(applied(), decimals=2)[0].payload)
    assert doc["channels"]["co2"]["value"] == round(float(CLEAN["stack.co2"][0]), 2)


def test_payload_dropouts_and_statuses() -> None:
    out = applied(
        Event(Kind.DROPOUT, "kiln1", T0, 10),
        Event(Kind.DROPOUT, "kiln1", T0 + 20 * S, 10, channels=("stack.dust",)),
        Event(Kind.CALIBRATION, "kiln1", T0 + 40 * S, 10, channels=("stack.co2",)),
    )
    msgs = {m.t_ns: json.loads(m.payload) for m in build_messages(out)}
    assert len(msgs) == 590
    assert "dust" not in msgs[T0 + 25 * S]["channels"] and "co2" in msgs[T0 + 25 * S]["channels"]
    cal = msgs[T0 + 41 * S]
    assert cal["status"] == "CAL" and cal["channels"]["co2"]["status"] == "CAL"
    assert cal["channels"]["o2"]["status"] == "OK"


@pytest.mark.parametrize("form", ["invalid_json", "missing_value", "string_value", "bad_ts", "future_ts"])
def test_malformed_payloads(form: str) -> None:
    out = applied(Event(Kind.MALFORMED, "kiln1", T0 + 5 * S, 2, form=form))
    msgs = build_messages(out)
    bad = [m.payload for m in msgs if T0 + 5 * S <= m.t_ns < T0 + 7 * S]
    good = [json.loads(m.payload) for m in msgs if not T0 + 5 * S <= m.t_ns < T0 + 7 * S]
    assert len(bad) == 2 and len(good) == 598
    if form == "invalid_json":
        with pytest.raises(json.JSONDecodeError):
            json.loads(bad[0])
        return
    doc = json.loads(bad[0])
    if form == "missing_value":
        assert "value" not in doc["channels"]["co2"] and "value" in doc["channels"]["o2"]
    elif form == "string_value":
        assert doc["channels"]["co2"]["value"] == "n/a" and isinstance(doc["channels"]["o2"]["value"], float)
    elif form == "bad_ts":
        assert not doc["ts"].endswith("Z")
    else:
        assert doc["ts"] == iso_ms(np.array([T0 + 5 * S + 3600 * S]))[0]


def test_burst_holds_messages_until_the_end_of_the_window() -> None:
    out = applied(Event(Kind.BURST, "kiln1", T0 + 60 * S, 120))
    msgs = build_messages(out)
    held = [m for m in msgs if m.release_ns > m.t_ns]
    assert len(held) == 120 and all(m.release_ns == T0 + 180 * S for m in held)


def test_daily_calibrations_repeat_at_a_seeded_time() -> None:
    day = 86_400 * S
    cals = daily_calibrations("kiln1", T0, T0 + 3 * day, seed=1, interval_h=24, minutes=10)
    assert len(cals) in (3, 4)
    assert all(b.start_ns - a.start_ns == day for a, b in itertools.pairwise(cals))
    assert cals == daily_calibrations("kiln1", T0, T0 + 3 * day, seed=1)
    assert cals[0].start_ns != daily_calibrations("kiln2", T0, T0 + 3 * day, seed=1)[0].start_ns


def test_random_scenarios_are_reproducible_and_cover_kinds() -> None:
    day = 86_400 * S
    a = preset("chaos", ["kiln1", "kiln2"], T0, T0 + 2 * day, seed=4)
    b = preset("chaos", ["kiln1", "kiln2"], T0, T0 + 2 * day, seed=4)
    assert a.events == b.events
    kinds = {e.kind for e in a.events}
    assert {Kind.CALIBRATION, Kind.MALFORMED, Kind.SPIKE, Kind.NAN, Kind.DROPOUT} <= kinds
    assert all(T0 <= e.start_ns < T0 + 2 * day for e in a.events if e.kind is not Kind.CALIBRATION)
    assert len(preset("none", ["kiln1"], T0, T0 + day, seed=4)) == 0
    assert len(random_scenario(["kiln1"], T0, T0 + day, 4, {}, calibration_interval_h=0)) == 0
    with pytest.raises(ValueError, match="unknown scenario"):
        preset("nope", ["kiln1"], T0, T0 + day, seed=4)
