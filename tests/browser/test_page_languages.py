"""The control-room page in English, Azerbaijani and Russian, in the plant's time zone (headless Chromium)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as DriverService

from api.app import STATIC_DIR
from api.page_config import PageSettings
from kilnwatch.service import Service
from simulators.scenarios import Event, Kind, Scenario

from .conftest import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS, Page
from .test_page import READ_ALARMS, kilns, wait

pytestmark = pytest.mark.browser


def _plant_zone() -> str:
    """Asia/Baku, unless the plant's local day began less than 3 hours ago: its "today" then has
    no closed hour yet, so the first of a few whole-hour zones whose day is older stands in."""
    for name in ("Asia/Baku", "Europe/Moscow", "Europe/Berlin", "Asia/Tokyo"):
        if datetime.now(ZoneInfo(name)).hour >= 3:
            return name
    raise AssertionError("unreachable: the candidate zones' days never all begin within 3 hours")


PLANT_ZONE = _plant_zone()


def _offset(zone: str) -> str:
    """The zone's UTC offset now, as the page shows it: +04:00."""
    text = datetime.now(ZoneInfo(zone)).strftime("%z")
    return f"{text[:3]}:{text[3:]}"


#: The browser's own zone differs from the plant's: every time shown must follow the plant.
BROWSER_ZONE = "America/New_York"
CATALOGUES = {
    lang: json.loads((STATIC_DIR / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
    for lang in ("en", "az", "ru")
}

#: Every piece of text a person can see: text nodes of rendered elements, SVG labels included.
VISIBLE_TEXT = """
const out = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const node = walker.currentNode;
  const el = node.parentElement;
  if (!el || !node.textContent.trim() || el.closest('noscript, script, style, template')) continue;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  const hidden = style.display === 'none' || style.visibility === 'hidden';
  if (hidden || (box.width === 0 && box.height === 0)) continue;
  out.push(node.textContent);
}
return out;
"""
READ_TABLE = """
return [...document.querySelectorAll('#kiln-kiln1 .today tbody tr')].map(
  (row) => [...row.children].map((c) => c.textContent));
"""


def english_leftovers(lang: str, texts: list[str], data: list[str]) -> list[tuple[str, str]]:
    """(key, English words) of catalogue entries whose English differs from `lang` and is on the page.

    Templates are cut at their placeholders; each piece with a letter that the translation does not
    share (as "UTC") is looked for as whole words.
    Names that come from the plant's data (kilns, plants, signals) are taken out first.
    """
    shown = "\n".join(texts)
    for name in data:
        shown = shown.replace(name, " ")
    found = []
    for key, english in CATALOGUES["en"].items():
        translation = CATALOGUES[lang][key]
        if english == translation:
            continue
        for piece in re.split(r"\{\w+(?::\w+)?\}", english):
            words = piece.strip(" \t:·,;()—–-")
            whole = rf"(?<!\w){re.escape(words)}(?!\w)"
            if (
                re.search(r"[A-Za-z]", words)
                and not re.search(whole, translation)
                and re.search(whole, shown)
            ):
                found.append((key, words))
    return found


@pytest.fixture
def plant_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next service tells its page that the plant runs on Baku time, as `page: {timezone}` does."""
    original = Service.api_context

    def api_context(self: Service) -> Any:
        ctx = original(self)
        ctx.page = PageSettings(timezone=PLANT_ZONE)
        return ctx

    monkeypatch.setattr(Service, "api_context", api_context)


@pytest.fixture
def browser_in(tmp_path: Path) -> Iterator[Callable[[str], Page]]:
    """Headless Chromium whose language is `lang` (--lang and intl.accept_languages), 1280x900."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("needs Debian's chromium and chromium-driver")
    drivers: list[webdriver.Chrome] = []

    def start(lang: str) -> Page:
        options = Options()
        options.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS:
            if not flag.startswith("--window-size"):
                options.add_argument(flag)
        options.add_argument("--window-size=1280,900")
        options.add_argument(f"--lang={lang}")
        options.add_experimental_option("prefs", {"intl.accept_languages": lang})
        options.add_argument(f"--user-data-dir={tmp_path / f'chromium-{lang}'}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        driver = webdriver.Chrome(options=options, service=DriverService(executable_path=CHROMEDRIVER))
        drivers.append(driver)
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )
        driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": BROWSER_ZONE})
        return Page(driver)

    yield start
    for driver in drivers:
        driver.quit()


def start_demo(start_service: Callable[..., Any]) -> Any:
    """Replays two hours in 15 s (a whole hour closes); kiln2's analysers calibrate from 20 minutes
    ago on: an alarm."""
    now = time.time_ns()
    calibration = Event(Kind.CALIBRATION, "kiln2", start_ns=now - 20 * 60 * 10**9, duration_s=3600.0)
    return start_service(speed=480, backfill_h=2, scenario=Scenario([calibration]))


def wait_for_content(page: Page) -> None:
    """Live values, an hour in the table and the calibration alarm: most words of the page are shown."""
    wait(page, lambda: all(k["time"] for k in kilns(page).values()) and kilns(page), 30, "live values")
    wait(
        page,
        lambda: any(a["id"] == "calibration:kiln2" for a in page.driver.execute_script(READ_ALARMS)),
        30,
        "the calibration alarm",
    )
    wait(page, lambda: len(page.driver.execute_script(READ_TABLE)[0]) == 6, 30, "an hour in the table")


def check_language(page: Page, svc: Any, lang: str) -> None:
    """No English words of the catalogue, decimal commas, times and zone of the plant."""
    page.driver.execute_script("window.scrollTo(0, 0)")
    names = [k["name"] for k in svc.get("/api/v1/kilns").json()]
    alarms = svc.get("/api/v1/alarms").json()
    data = names + [
        s for a in alarms["active"] + alarms["cleared"] for s in a["params"].values() if isinstance(s, str)
    ]
    texts = page.driver.execute_script(VISIBLE_TEXT)
    assert page.driver.execute_script("return document.documentElement.lang") == lang
    assert english_leftovers(lang, texts, data) == []

    # Numbers: a decimal comma, never a decimal point.
    shown = "\n".join(texts)
    assert not re.search(r"\d\.\d(?!\d)", shown), shown
    decimal = re.compile(r"\d[\d\u00a0\u202f .]*,\d")
    values = [v for card in kilns(page).values() for v in (card["co2"], card["clinker"])]
    assert all(v == "—" or decimal.fullmatch(v) for v in values), values  # "—": no valid value
    assert any(decimal.fullmatch(v) for v in values), values
    row = page.driver.execute_script(READ_TABLE)[0]
    assert decimal.fullmatch(row[1]) or row[1] == "—", row
    assert row[4] in {CATALOGUES[lang]["today.valid"], CATALOGUES[lang]["today.invalid"]}, row

    # Times: in the plant's zone, which is named, whatever the browser's own zone.
    zone = page.driver.find_element("id", "tz").text
    assert zone == CATALOGUES[lang]["clock.zone"].format(zone=PLANT_ZONE, offset=_offset(PLANT_ZONE))
    plant_tz = ZoneInfo(PLANT_ZONE)
    clock = page.driver.find_element("id", "clock").text
    now = datetime.now(plant_tz)
    assert clock in {f"{now + timedelta(seconds=d):%H:%M:%S}" for d in range(-3, 2)}, clock
    hours = svc.get("/api/v1/kilns/kiln1/hourly", params={"start": (now - timedelta(hours=4)).isoformat()})
    spans = set()
    for h in hours.json():
        start = datetime.fromisoformat(h["hour"]).astimezone(plant_tz)
        spans.add(f"{start:%H:%M}–{start + timedelta(hours=1):%H:%M}")
    assert row[0] in spans, (row[0], spans)


@pytest.mark.parametrize("lang", ["az", "ru"])
def test_the_page_speaks_the_browser_language(
    lang: str,
    start_service: Callable[..., Any],
    browser_in: Callable[[str], Page],
    plant_zone: None,
    tmp_path: Path,
) -> None:
    svc = start_demo(start_service)
    page = browser_in(lang)
    page.open(svc.base_url + "/")
    wait_for_content(page)
    check_language(page, svc, lang)
    calibration = next(a for a in page.driver.execute_script(READ_ALARMS) if a["id"] == "calibration:kiln2")
    words = CATALOGUES[lang]["alarm.analyser_calibration"].split("{signals}")[0].format(kiln="Kiln 2")
    assert words in calibration["text"]
    page.screenshot(tmp_path, f"page-{lang}.png")
    assert page.console_errors() == []


def test_the_language_switch_changes_every_word_without_a_reload(
    start_service: Callable[..., Any],
    browser_in: Callable[[str], Page],
    plant_zone: None,
    tmp_path: Path,
) -> None:
    svc = start_demo(start_service)
    page = browser_in("ru")
    page.open(svc.base_url + "/")
    wait_for_content(page)
    page.driver.execute_script("window.kilnwatchMarker = 'before the switch'")

    page.driver.find_element("css selector", ".lang-switch [data-lang='az']").click()
    wait(page, lambda: page.driver.execute_script("return document.documentElement.lang") == "az", 5, "az")
    cyrillic = re.compile("[\u0400-\u04ff]")
    wait(
        page,
        lambda: not cyrillic.search("\n".join(page.driver.execute_script(VISIBLE_TEXT))),
        5,
        "every Russian word replaced",
    )
    check_language(page, svc, "az")
    assert page.driver.execute_script("return window.kilnwatchMarker") == "before the switch"

    page.driver.find_element("css selector", ".lang-switch [data-lang='en']").click()
    wait(page, lambda: page.driver.execute_script("return document.documentElement.lang") == "en", 5, "en")
    assert page.driver.execute_script("return window.kilnwatchMarker") == "before the switch"
    card = kilns(page)["kiln1"]
    assert card["statusText"] == CATALOGUES["en"][f"status.{card['status']}"]
    assert re.fullmatch(r"\d+\.\d", card["co2"]), card["co2"]
    assert page.driver.find_element("id", "tz").text == f"plant time: {PLANT_ZONE} (UTC{_offset(PLANT_ZONE)})"
    page.screenshot(tmp_path, "page-en.png")

    # The choice is kept: a reload stays English although the browser asks for Russian.
    page.driver.refresh()
    wait(page, lambda: kilns(page).get("kiln1", {}).get("time"), 20, "live values after the reload")
    assert page.driver.execute_script("return document.documentElement.lang") == "en"
    assert page.driver.execute_script("return window.kilnwatchMarker") is None  # it was a reload
    assert page.console_errors() == []
