"""The control-room page in headless Chromium, on the whole service fed by the accelerated simulators."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.wait import WebDriverWait

from api.page_config import AlarmSettings
from kilnwatch.demo import DEMO_KILNS
from kilnwatch.service import Service
from simulators.scenarios import Event, Kind, Scenario

from .conftest import BreakableLink, Page

pytestmark = pytest.mark.browser

#: Everything the tests read from the page, in one round trip.
READ_KILNS = """
return [...document.querySelectorAll('article.kiln')].map((card) => ({
  id: card.dataset.kiln,
  name: card.querySelector('.kiln-name').textContent,
  status: card.dataset.status,
  statusText: card.querySelector('.status-text').textContent,
  detail: card.querySelector('.status-detail').textContent,
  time: card.dataset.time || null,
  value: card.querySelector('.intensity').dataset.value || null,
  intensity: card.querySelector('.intensity').textContent,
  co2: card.querySelector('.co2').textContent,
  clinker: card.querySelector('.clinker').textContent,
  trendTop: card.querySelector('.trend').getBoundingClientRect().top,
  tableTop: card.querySelector('.today').getBoundingClientRect().top,
  kilnsTop: document.getElementById('kilns').getBoundingClientRect().top,
}));
"""
READ_ALARMS = """
return [...document.querySelectorAll('#alarm-list li[data-id]')].map((li) => ({
  id: li.dataset.id, kind: li.dataset.kind, active: li.dataset.active === 'true', text: li.textContent,
}));
"""

READ_NEWEST_HOUR = """
const row = document.querySelector('#kiln-kiln1 .today tbody tr');
return row ? [...row.children].map((c) => c.textContent) : null;
"""


def newest_hour_cells(svc: Any, kiln: str) -> list[str]:
    """The table row the page should show for the newest closed hour, from /hourly."""
    newest = datetime.fromisoformat(svc.get(f"/api/v1/kilns/{kiln}/live").json()["time"])
    today = newest.replace(
        hour=0, minute=0, second=0, microsecond=0
    )  # the page's day: the browser runs on UTC
    hours = svc.get(f"/api/v1/kilns/{kiln}/hourly", params={"start": today.isoformat()}).json()
    if not hours:  # the replay began just before a full hour, or the day has just begun
        return ["no closed hour today yet"]
    h = hours[-1]
    start = datetime.fromisoformat(h["hour"])
    span = f"{start:%H:%M}–{start + timedelta(hours=1):%H:%M}"

    def num(x: float | None, digits: int) -> str:
        return "—" if x is None else f"{x:.{digits}f}"

    validity = "valid" if h["valid"] else "invalid"
    cells = [num(h["co2_t"], 1), num(h["clinker_t"], 1), num(h["intensity_kg_per_t"], 0), validity]
    return [span, *cells, f"{h['completeness'] * 100:.0f}"]


def kilns(page: Page) -> dict[str, dict[str, Any]]:
    return {k["id"]: k for k in page.driver.execute_script(READ_KILNS)}


def wait(page: Page, condition: Callable[[], Any], timeout: float, what: str) -> Any:
    try:
        return WebDriverWait(page.driver, timeout, poll_frequency=0.2).until(lambda _: condition())
    except TimeoutException:
        page.screenshot(Path(page.driver.capabilities["chrome"]["userDataDir"]).parent, "failure.png")
        shown = {k: (v["status"], v["time"], v["detail"]) for k, v in kilns(page).items()}
        raise AssertionError(f"no {what} within {timeout} s; the page shows {shown}") from None


@pytest.fixture
def alarm_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[[AlarmSettings], None]:
    """Alarm settings for the next service, passed in ApiContext as the wiring does."""

    def apply(settings: AlarmSettings) -> None:
        original = Service.api_context

        def api_context(self: Service) -> Any:
            ctx = original(self)
            ctx.alarms = settings
            return ctx

        monkeypatch.setattr(Service, "api_context", api_context)

    return apply


def test_page_shows_every_kiln_live_as_the_api_does(
    start_service: Callable[..., Any], page: Page, tmp_path: Path
) -> None:
    # Replays 1 h in 30 s, then runs in real time; kiln2's analysers calibrate for 5 min of the replay.
    now = time.time_ns()
    calibration = Event(Kind.CALIBRATION, "kiln2", start_ns=now - 40 * 60 * 10**9, duration_s=300.0)
    svc = start_service(speed=120, backfill_h=1, scenario=Scenario([calibration]))
    page.open(svc.base_url + "/")
    api_kilns = svc.get("/api/v1/kilns").json()
    wait(page, lambda: len(kilns(page)) == len(api_kilns), 15, "kiln cards")
    shown = kilns(page)
    assert list(shown) == list(DEMO_KILNS)
    assert [k["name"] for k in shown.values()] == [k["name"] for k in api_kilns]

    # While the simulator replays history the page says so, and the value moves within 10 s.
    wait(page, lambda: kilns(page)["kiln1"]["status"] == "catching_up", 20, "catching-up status")
    assert kilns(page)["kiln1"]["statusText"] == "catching up"
    before = kilns(page)
    first = before["kiln1"]["time"]
    t0 = time.monotonic()
    wait(page, lambda: kilns(page)["kiln1"]["time"] != first, 10, "the live value to change")
    assert time.monotonic() - t0 < 10
    # ... and each minute the page shows is the service's minute.
    card1 = kilns(page)["kiln1"]
    start = datetime.fromisoformat(card1["time"])
    span = {"start": start.isoformat(), "end": (start + timedelta(minutes=1)).isoformat()}
    rows = svc.get("/api/v1/kilns/kiln1/minutes", params=span).json()
    assert [(r["minute"], r["intensity_kg_per_t"]) for r in rows] == [(card1["time"], float(card1["value"]))]
    after = kilns(page)
    for k in DEMO_KILNS:  # values changed, nothing moved
        assert (after[k]["trendTop"], after[k]["tableTop"]) == (before[k]["trendTop"], before[k]["tableTop"])

    # Caught up: live, and the same numbers as /api/v1/kilns/{id}/live.
    svc.wait_for(lambda: svc.sims.clock.caught_up, timeout=60)
    svc.wait_for(lambda: svc.get("/api/v1/kilns/kiln1/live").json()["age_s"] < 120, timeout=20)
    wait(page, lambda: all(k["status"] == "valid" for k in kilns(page).values()), 10, "all kilns live")
    for kiln_id in DEMO_KILNS:

        def same_minute(kiln_id: str = kiln_id) -> tuple[dict[str, Any], dict[str, Any]] | None:
            """Page and API at the same minute (a minute may close between the two reads)."""
            live = svc.get(f"/api/v1/kilns/{kiln_id}/live").json()
            card = kilns(page)[kiln_id]
            return (card, live) if card["time"] == live["time"] else None

        card, live = wait(page, same_minute, 10, f"the minute of /live for {kiln_id}")
        assert float(card["value"]) == live["intensity_kg_per_t"]
        assert card["intensity"] == f"{live['intensity_kg_per_t']:.0f}"
        assert card["co2"] == f"{live['co2_t_per_h']:.1f}"
        assert card["clinker"] == f"{live['clinker_t_per_h']:.1f}"
        assert card["detail"] == "live"
    wait(
        page,
        lambda: page.driver.execute_script(READ_NEWEST_HOUR) == newest_hour_cells(svc, "kiln1"),
        10,
        "the newest closed hour in the table",
    )
    assert page.driver.find_element("id", "total-intensity").text.isdigit()
    # The calibration came and went: its alarm is listed as cleared, with start and end.
    cleared = [a for a in page.driver.execute_script(READ_ALARMS) if a["id"] == "calibration:kiln2"]
    assert [a["active"] for a in cleared] == [False]
    assert "cleared" in cleared[0]["text"].lower() and "–" in cleared[0]["text"]
    page.screenshot(tmp_path, "page.png")

    # Keyboard: every kiln, the alarm list and each scrolling table can be reached with Tab.
    reached: set[str] = set()
    for _ in range(12):
        page.driver.switch_to.active_element.send_keys(Keys.TAB)
        el = page.driver.switch_to.active_element
        reached.add(el.get_attribute("id") or el.get_attribute("class") or el.tag_name)
    assert {"alarm-list", "kiln-kiln1", "kiln-kiln2"} <= reached
    assert "table-wrap" in reached

    assert page.console_errors() == []
    assert page.foreign_requests(svc.base_url) == []
    assert any(u.endswith("/api/v1/stream") for u, _ in page.requests)


def test_stopping_the_simulator_raises_the_stale_alarm_on_the_page(
    start_service: Callable[..., Any],
    page: Page,
    tmp_path: Path,
    alarm_settings: Callable[[AlarmSettings], None],
) -> None:
    stale_after_s = 5.0
    alarm_settings(AlarmSettings(stale_after_s=stale_after_s))
    svc = start_service(speed=60, backfill_h=2)  # a minute per second for two minutes
    page.open(svc.base_url + "/")
    wait(page, lambda: kilns(page).get("kiln1", {}).get("time"), 20, "a first minute on the page")
    assert kilns(page)["kiln1"]["status"] != "stale"

    svc.sims.stop_opcua()
    stopped = time.monotonic()
    wait(page, lambda: kilns(page)["kiln1"]["status"] == "stale", stale_after_s + 10, "stale status")
    alarms = wait(
        page,
        lambda: [
            a for a in page.driver.execute_script(READ_ALARMS) if a["id"] == "stale:kiln1" and a["active"]
        ],
        5,
        "stale alarm in the list",
    )
    assert time.monotonic() - stopped < stale_after_s + 8
    assert "no new valid minute" in alarms[0]["text"]
    assert kilns(page)["kiln1"]["statusText"] == "stale"
    assert kilns(page)["kiln2"]["status"] == "stale"
    page.screenshot(tmp_path, "page-stale.png")
    assert page.console_errors() == []


def test_an_analyser_in_calibration_shows_the_maintenance_status(
    start_service: Callable[..., Any], page: Page, tmp_path: Path
) -> None:
    now = time.time_ns()
    calibration = Event(Kind.CALIBRATION, "kiln1", start_ns=now - 20 * 60 * 10**9, duration_s=3600.0)
    svc = start_service(speed=240, backfill_h=1, scenario=Scenario([calibration]))
    page.open(svc.base_url + "/")
    card = wait(
        page, lambda: kilns(page).get("kiln1", {}).get("status") == "maintenance" and kilns(page), 40, ""
    )
    assert card["kiln1"]["statusText"] == "maintenance"
    assert card["kiln1"]["detail"] == "analyser in calibration"
    assert card["kiln2"]["status"] != "maintenance"
    alarms = wait(
        page,
        lambda: [a for a in page.driver.execute_script(READ_ALARMS) if a["id"] == "calibration:kiln1"],
        5,
        "calibration alarm in the list",
    )
    assert alarms[0]["active"]
    assert "stack.co2" in alarms[0]["text"]
    page.screenshot(tmp_path, "page-calibration.png")
    assert page.console_errors() == []


def test_the_page_reconnects_by_itself_after_a_network_break(
    start_service: Callable[..., Any], page: Page, breakable_link: Callable[[int], BreakableLink]
) -> None:
    svc = start_service(speed=60, backfill_h=1)  # a minute per second while it replays the hour
    link = breakable_link(svc.service.bound_port)
    page.open(link.url + "/")
    wait(page, lambda: kilns(page).get("kiln1", {}).get("time"), 20, "a first minute on the page")
    connection = page.driver.find_element("id", "connection")
    assert connection.get_attribute("data-state") == "live"

    link.cut()
    wait(page, lambda: connection.get_attribute("data-state") == "reconnecting", 5, "reconnecting state")
    assert connection.text == "reconnecting…"
    seen_during_break = kilns(page)["kiln1"]["time"]
    time.sleep(2)  # the browser retries against a refused port meanwhile
    assert connection.get_attribute("data-state") == "reconnecting"

    link.mend()
    wait(page, lambda: connection.get_attribute("data-state") == "live", 10, "live again")
    wait(page, lambda: kilns(page)["kiln1"]["time"] > seen_during_break, 10, "new minutes after the break")
