"""The page's operator forms (headless Chromium): an operator adds an annotation, which the API then
holds and the trend shows as a band; a viewer sees no form."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from api.security.tokens import Role, hash_line, new_token

from .conftest import TOKEN, Page
from .test_page import kilns, wait

pytestmark = pytest.mark.browser
OPERATOR = new_token()


def test_an_operator_adds_an_annotation_and_a_viewer_sees_no_form(
    start_service: Callable[..., Any], page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [hash_line("browser-tests", Role.VIEWER, TOKEN), hash_line("olga", Role.OPERATOR, OPERATOR)]
    monkeypatch.setenv("KILNWATCH_API_TOKENS", ",".join(lines))
    svc = start_service(speed=60, backfill_h=0.5)
    page.open(svc.base_url + "/", token=OPERATOR)
    wait(page, lambda: kilns(page).get("kiln1", {}).get("time"), 30, "a first minute")
    box = page.driver.find_element(By.ID, "operator")
    wait(page, box.is_displayed, 10, "the operator forms")

    newest = svc.get("/api/v1/kilns/kiln1/minutes").json()[-1]["minute"]  # the trend's time
    form = page.driver.find_element(By.ID, "annotation-form")
    Select(form.find_element(By.NAME, "kind")).select_by_value("maintenance")
    # datetime-local in the plant's time (UTC for the demo plant): from 20 minutes before the newest
    at = datetime.fromisoformat(newest.replace("Z", "+00:00")) - timedelta(minutes=20)
    start = at.strftime("%Y-%m-%dT%H:%M")
    field = form.find_element(By.NAME, "start")
    page.driver.execute_script("arguments[0].value = arguments[1]", field, start)
    form.find_element(By.NAME, "title").send_keys("Filter change")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    result = page.driver.find_element(By.ID, "operator-result")
    wait(page, lambda: result.text == "Saved.", 15, "the saved message")

    (note,) = svc.get("/api/v1/kilns/kiln1/annotations").json()
    assert (note["kind"], note["title"], note["actor"]) == ("maintenance", "Filter change", "olga")
    assert note["start"].startswith(start)
    chart = page.driver.find_element(By.CSS_SELECTOR, "#kiln-kiln1 .chart")
    wait(page, lambda: chart.find_elements(By.CSS_SELECTOR, "rect.annotation.maintenance"), 30, "the band")
    page.screenshot(tmp_path, "page-operator-annotation.png")

    viewer = httpx.get(
        svc.base_url + "/api/v1/kilns/kiln1/annotations", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert viewer.status_code == 200 and len(viewer.json()) == 1
    page.driver.delete_all_cookies()
    page.signed_in = False
    page.open(svc.base_url + "/", token=TOKEN)
    wait(page, lambda: kilns(page).get("kiln1", {}).get("time"), 30, "a first minute for the viewer")
    assert not page.driver.find_element(By.ID, "operator").is_displayed()
    assert page.console_errors() == []
