"""The alarm buttons on the page (headless Chromium): an operator acknowledges and shelves an alarm,
which flashes until acknowledged; a viewer sees the alarm and no button."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from api.alarm_settings import LifecycleSettings
from api.app import STATIC_DIR
from api.page_config import AlarmSettings
from api.security.tokens import Role
from tests.integration.api_server import serve_api

from .conftest import Page

pytestmark = pytest.mark.browser
EN = json.loads((STATIC_DIR / "i18n" / "en.json").read_text(encoding="utf-8"))
WAIT_S = 30.0
ITEM = "#alarm-list li[data-id='source:opcua:a']"


def settings() -> AlarmSettings:
    return AlarmSettings(
        stale_after_s=1e6,
        source_grace_s=0,
        evaluate_every_s=0.2,
        lifecycle=LifecycleSettings(restore_grace_s=0),
    )


def until(page: Page, check: Callable[[], Any], what: str) -> Any:
    return WebDriverWait(page.driver, WAIT_S, poll_frequency=0.1).until(lambda _: check(), what)


def click(page: Page, selector: str, what: str) -> None:
    """Click the element, found again if the list was drawn anew (an alarms event) between finding
    it and clicking it."""

    def once() -> bool:
        try:
            page.driver.find_element(By.CSS_SELECTOR, selector).click()
        except StaleElementReferenceException:
            return False
        return True

    until(page, once, what)


def item_state(page: Page) -> dict[str, Any] | None:
    result: dict[str, Any] | None = page.driver.execute_script(
        f"""const li = document.querySelector("{ITEM}");
        if (!li) return null;
        return {{state: li.dataset.state, unacked: li.classList.contains('unacked'),
                 animation: getComputedStyle(li).animationName,
                 buttons: [...li.querySelectorAll('button')].map((b) => b.dataset.action)}};"""
    )
    return result


def test_an_operator_acknowledges_and_shelves_on_the_page(page: Page, tmp_path: Path) -> None:
    with serve_api(tmp_path / "s.sqlite3", settings()) as api:
        api.health.source("opcua:a", "opcua").mark_disconnected("connection refused")
        page.open(api.url + "/", api.tokens[Role.OPERATOR])
        s = until(
            page, lambda: (x := item_state(page)) and x["state"] == "active_unacknowledged" and x, "alarm"
        )
        assert s["unacked"] and s["animation"] == "unacked"  # flashing
        assert s["buttons"] == ["ack", "shelve"]
        page.screenshot(tmp_path, "page-alarm-unacknowledged.png")

        click(page, f"{ITEM} button.ack", "the acknowledge button")
        s = until(page, lambda: (x := item_state(page)) and x["state"] == "active_acknowledged" and x, "ack")
        assert not s["unacked"] and s["animation"] == "none" and s["buttons"] == ["shelve"]
        [row] = api.get("/api/v1/audit", Role.ADMIN, action="alarm.acknowledge").json()
        assert row["actor"] == "operator-user"

        click(page, f"{ITEM} button.shelve", "the shelve button")
        dialog = page.driver.find_element(By.ID, "shelve-dialog")
        until(page, dialog.is_displayed, "the shelve dialog")
        page.driver.find_element(By.ID, "shelve-reason").send_keys("network switch replaced")
        page.screenshot(tmp_path, "page-alarm-shelve.png")
        page.driver.find_element(By.ID, "shelve-ok").click()
        s = until(page, lambda: (x := item_state(page)) and x["state"] == "shelved" and x, "shelved")
        assert s["buttons"] == ["unshelve"]
        text = page.driver.execute_script("return document.querySelector(arguments[0]).innerText", ITEM)
        assert "network switch replaced" in text and EN["state.shelved"].upper() in text.upper()
        assert page.console_errors() == []


def test_a_viewer_sees_the_alarm_flash_but_no_button(page: Page, tmp_path: Path) -> None:
    with serve_api(tmp_path / "s.sqlite3", settings()) as api:
        api.health.source("opcua:a", "opcua").mark_disconnected("connection refused")
        page.open(api.url + "/", api.tokens[Role.VIEWER])
        s = until(
            page, lambda: (x := item_state(page)) and x["state"] == "active_unacknowledged" and x, "alarm"
        )
        assert s["unacked"] and s["buttons"] == []
        assert page.driver.find_elements(By.CSS_SELECTOR, "#alarm-list button") == []
