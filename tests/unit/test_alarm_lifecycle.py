"""The ISA-18.2 lifecycle and figures as pure logic, on a scripted clock; and the engine's operating
state as the default ``is_stopped``."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.batch import ReadingBatch
from api.alarm_kpi import Raised, alarm_kpis
from api.alarm_lifecycle import AlarmLifecycle, LifecycleError
from api.alarm_notify import retry_delay_s
from api.alarm_settings import LifecycleSettings, NotifySettings
from api.alarm_watch import engine_stopped
from api.alarms import Alarm
from api.context import ApiContext
from collector.health import HealthRegistry
from collector.metrics import Metrics
from tests.unit.engine_helpers import T0, engine, series

S = 1_000_000_000
NEVER = lambda kiln, now: False  # noqa: E731


def alarm(key: str = "co2:k", kind: str = "co2", kiln: str | None = "k") -> Alarm:
    return Alarm(key, kind, "alarm", kiln, f"{key} message", 0, code="limit_co2")


def lifecycle(**settings: float) -> AlarmLifecycle:
    return AlarmLifecycle(LifecycleSettings(**settings), channels=("webhook",))


def test_raise_acknowledge_clear_and_a_return_nobody_saw() -> None:
    lc = lifecycle()
    ch = lc.sync({"co2:k": alarm()}, 1 * S, NEVER)
    assert [e[4] for e in ch.events] == ["raised"] and len(ch.notifications) == 1
    assert lc.occurrences["co2:k"].state(1 * S) == "active_unacknowledged"
    before, ch = lc.acknowledge("co2:k", "ann", 2 * S)
    assert before["state"] == "active_unacknowledged"
    assert lc.occurrences["co2:k"].state(2 * S) == "active_acknowledged"
    with pytest.raises(LifecycleError, match="acknowledged by ann"):
        lc.acknowledge("co2:k", "bob", 3 * S)
    ch = lc.sync({}, 4 * S, NEVER)
    assert ch.deletes == ["co2:k"] and "co2:k" not in lc.occurrences  # acknowledged and cleared: over
    assert ch.notifications[0][1]["status"] == "resolved"

    lc.sync({"co2:k": alarm()}, 5 * S, NEVER)
    lc.sync({}, 6 * S, NEVER)
    assert lc.occurrences["co2:k"].state(6 * S) == "cleared_unacknowledged"
    _, ch = lc.acknowledge("co2:k", "ann", 7 * S)
    assert ch.deletes == ["co2:k"]
    with pytest.raises(LifecycleError) as err:
        lc.acknowledge("co2:k", "ann", 8 * S)
    assert err.value.missing


def test_a_shelve_lasts_over_a_clear_and_return_and_ends_at_its_expiry() -> None:
    lc = lifecycle(max_shelve_s=100)
    lc.sync({"co2:k": alarm()}, 0, NEVER)
    with pytest.raises(LifecycleError, match="reason"):
        lc.shelve("co2:k", "ann", 1 * S, 10, " ")
    with pytest.raises(LifecycleError, match="at most 100"):
        lc.shelve("co2:k", "ann", 1 * S, 101, "too long")
    _, ch = lc.shelve("co2:k", "ann", 1 * S, 10, "analyser swap")
    assert ch.notifications[0][1]["status"] == "resolved"  # no longer annunciated
    lc.sync({}, 2 * S, NEVER)
    assert lc.occurrences["co2:k"].state(2 * S) == "shelved"  # cleared, still shelved: no ack needed
    ch = lc.sync({"co2:k": alarm()}, 3 * S, NEVER)
    assert ch.events[0][6] == {"annunciated": False, "state": "shelved"}
    assert ch.notifications == []  # a shelved alarm is not notified
    ch = lc.sync({"co2:k": alarm()}, 11 * S, NEVER)
    assert [e[4] for e in ch.events] == ["unshelved"]
    assert lc.occurrences["co2:k"].state(11 * S) == "active_unacknowledged"
    assert ch.notifications[0][1]["status"] == "firing"


def test_an_expired_shelve_of_a_cleared_alarm_ends_it() -> None:
    lc = lifecycle()
    lc.sync({"co2:k": alarm()}, 0, NEVER)
    lc.shelve("co2:k", "ann", 0, 5, "known")
    lc.sync({}, 1 * S, NEVER)
    ch = lc.sync({}, 6 * S, NEVER)
    assert "co2:k" not in lc.occurrences and ch.deletes == ["co2:k"]


def test_suppression_by_design_while_stopped_needs_no_acknowledgement_and_is_not_notified() -> None:
    stopped = {"k": True}
    hook = lambda kiln, now: stopped[kiln]  # noqa: E731
    lc = lifecycle()
    source = alarm("source:s", "source", None)
    ch = lc.sync({"co2:k": alarm(), "source:s": source}, 0, hook)
    assert lc.occurrences["co2:k"].state(0) == "suppressed"
    assert lc.occurrences["source:s"].state(0) == "active_unacknowledged"  # no kiln: never suppressed
    assert [n[1]["alerts"][0]["labels"]["alarm_id"] for n in ch.notifications] == ["source:s"]
    with pytest.raises(LifecycleError):
        lc.acknowledge("co2:k", "ann", 1 * S)
    ch = lc.sync({"co2:k": alarm(), "source:s": source}, 2 * S, hook)
    assert ch.events == []
    stopped["k"] = False
    ch = lc.sync({"co2:k": alarm(), "source:s": source}, 3 * S, hook)
    assert [e[4] for e in ch.events] == ["released"]
    assert lc.occurrences["co2:k"].state(3 * S) == "active_unacknowledged"
    stopped["k"] = True
    lc.sync({"co2:k": alarm(), "source:s": source}, 4 * S, hook)
    lc.sync({"source:s": source}, 5 * S, hook)
    assert "co2:k" not in lc.occurrences  # cleared while suppressed: over


def test_restored_occurrences_wait_for_the_book_then_clear() -> None:
    lc = lifecycle()
    lc.sync({"co2:k": alarm()}, 0, NEVER)
    lc.acknowledge("co2:k", "ann", 1 * S)
    rows = [o.to_row() for o in lc.occurrences.values()]
    again = AlarmLifecycle(LifecycleSettings(), restored=rows, started_ns=10 * S, restore_grace_s=5)
    assert again.sync({}, 11 * S, NEVER).events == []  # within the grace: kept
    assert again.occurrences["co2:k"].state(11 * S) == "active_acknowledged"
    assert again.sync({"co2:k": alarm()}, 12 * S, NEVER).events == []  # the same occurrence
    ch = again.sync({}, 16 * S, NEVER)
    assert [e[4] for e in ch.events] == ["cleared"]


def test_kpis_of_a_scripted_flood() -> None:
    settings = LifecycleSettings(
        positions={"east": ["k1"], "west": ["k2"]}, chatter_count=3, chatter_window_s=60
    )
    start = 0
    raised = [Raised(i * S, f"a{i}:k1", "k1") for i in range(12)]  # 12 in the first 10 minutes at east
    raised += [Raised(700 * S + i * 10 * S, "flap:k2", "k2") for i in range(3)]  # 3 within 20 s: chattering
    raised += [Raised(2000 * S, "flap:k2", "k2")]
    raised += [Raised(3000 * S, "source:s", None)]  # no kiln: the first position
    k = alarm_kpis(
        raised, {"old": -90_000 * S, "new": 3000 * S}, start, 3600 * S, 3600 * S, settings, ["k1", "k2"]
    )
    east, west = k["positions"]["east"], k["positions"]["west"]
    assert k["periods_10min"] == 6
    assert (east["alarms"], east["per_10min_max"], east["flood_periods"]) == (13, 12, 1)
    assert east["flood_percent"] == pytest.approx(100 / 6, abs=0.01)
    assert (west["alarms"], west["per_10min_max"], west["flood_periods"]) == (4, 3, 0)
    assert west["per_hour"] == 4.0 and west["per_10min_mean"] == pytest.approx(4 / 6, abs=1e-3)
    assert k["chattering"] == [{"id": "flap:k2", "raised": 4, "shortest_span_s": 20.0}]
    assert [s["id"] for s in k["stale"]] == ["old"]
    assert k["top"][0] == {"id": "flap:k2", "raised": 4, "percent": round(400 / 17, 1)}
    empty = alarm_kpis([], {}, 0, 600 * S, 600 * S, LifecycleSettings(), ["k"])
    assert empty["positions"]["control-room"]["alarms"] == 0 and empty["top"] == []


def test_retry_delay_doubles_up_to_its_cap() -> None:
    s = NotifySettings(retry_min_s=1, retry_max_s=60)
    assert [retry_delay_s(s, n) for n in (1, 2, 3, 6, 7, 50)] == [1, 2, 4, 32, 60, 60]


def test_the_engine_operating_state_is_the_default_stopped_hook() -> None:
    eng, table = engine(lateness_s=0)
    n = 600  # the kiln stops after 5 minutes: no clinker
    clinker = np.concatenate([np.full(300, 208.0), np.zeros(300)])
    eng.ingest(
        ReadingBatch.concat(
            [
                series(table, "flow", T0, np.full(n, 397_500.0)),
                series(table, "co2", T0, np.full(n, 22.0)),
                series(table, "clinker", T0, clinker),
            ]
        )
    )
    eng.advance_all()
    health = HealthRegistry()
    kilns = [eng.kilns[k].spec for k in eng.kilns]
    ctx = ApiContext(table, kilns, eng, None, health, Metrics().registry)  # type: ignore[arg-type]
    stopped = engine_stopped(ctx)
    assert stopped("k", 0) is True
