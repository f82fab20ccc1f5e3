"""The page with API authentication on: it asks for a token once, keeps it only in an HttpOnly
cookie, and its stream runs on that cookie (headless Chromium)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from api.app import STATIC_DIR

from .conftest import TOKEN, Page
from .test_page import kilns, wait

pytestmark = pytest.mark.browser
EN = json.loads((STATIC_DIR / "i18n" / "en.json").read_text(encoding="utf-8"))


def test_the_page_asks_for_a_token_once_and_keeps_it_out_of_javascript(
    start_service: Callable[..., Any], page: Page, tmp_path: Path
) -> None:
    svc = start_service(speed=60, backfill_h=0.5)
    page.driver.get(svc.base_url + "/")
    form = page.driver.find_element(By.ID, "login")
    wait(page, form.is_displayed, 15, "the sign-in form")
    connection = page.driver.find_element(By.ID, "connection")
    assert connection.get_attribute("data-state") == "signin"
    assert connection.text == EN["conn.signin"]
    assert kilns(page) == {}  # nothing of the plant before the sign-in
    page.screenshot(tmp_path, "page-sign-in.png")

    field = page.driver.find_element(By.ID, "login-token")
    field.send_keys("kw_not-a-token")
    page.driver.find_element(By.ID, "login-submit").click()
    error = page.driver.find_element(By.ID, "login-error")
    wait(page, lambda: error.text == EN["login.wrong"], 10, "the wrong-token message")
    assert form.is_displayed()

    field.clear()
    field.send_keys(TOKEN)
    page.driver.find_element(By.ID, "login-submit").click()
    wait(page, lambda: not form.is_displayed(), 10, "the form to go")
    wait(page, lambda: connection.get_attribute("data-state") == "live", 15, "the stream, on the cookie")
    wait(page, lambda: kilns(page).get("kiln1", {}).get("time"), 20, "a first minute")
    assert field.get_attribute("value") == ""

    # The token is in an HttpOnly, SameSite=Strict cookie only: nothing of it reaches JavaScript.
    [cookie] = page.driver.get_cookies()
    assert (cookie["name"], cookie["value"], cookie["httpOnly"], cookie["sameSite"]) == (
        "kilnwatch_token",
        TOKEN,
        True,
        "Strict",
    )
    stored = page.driver.execute_script(
        "return document.cookie + JSON.stringify(localStorage) + JSON.stringify(sessionStorage)"
    )
    assert TOKEN not in stored and "kilnwatch_token" not in stored

    # Once is enough: a reload goes straight to the live page.
    page.driver.refresh()
    wait(page, lambda: kilns(page).get("kiln1", {}).get("time"), 20, "live values after the reload")
    assert not page.driver.find_element(By.ID, "login").is_displayed()

    # The only console error is the refused wrong token (CSP violations would be reported there).
    errors = page.console_errors()
    assert [e for e in errors if "api/v1/session" not in e["message"] or "401" not in e["message"]] == []
    assert page.foreign_requests(svc.base_url) == []
