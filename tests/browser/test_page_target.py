"""The page's plant header shows the plant's reduction target from GET /api/v1/kpi: this year's
actual against the trajectory, on or off track, and the reduction still needed per year."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.support.wait import WebDriverWait

import tests.fixtures.service as service_fixture

from .conftest import Page

pytestmark = pytest.mark.browser

THIS_YEAR = datetime.now(UTC).year
READ_TARGET = """
const el = document.getElementById('target');
return {hidden: el.hidden, text: el.textContent, onTrack: el.dataset.onTrack || null};
"""


def with_target(original: Any) -> Any:
    """The demo plant with a target far above any kiln (2000 kg/t in 2020, -20 % by 2030): on track."""

    def plant(*args: Any, **kwargs: Any) -> dict[str, Any]:
        data = original(*args, **kwargs)
        data["plants"][0]["target"] = {
            "baseline": {"year": 2020, "value": 2000.0},
            "milestones": [{"year": 2030, "reduction_pct": 20}],
        }
        return data

    return plant


@pytest.mark.timeout(480)  # the simulators' closed hours come slowly on a loaded machine
def test_the_header_shows_the_plants_target(
    start_service: Callable[..., Any], page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_fixture, "demo_plant", with_target(service_fixture.demo_plant))
    svc = start_service(speed=600, backfill_h=3, tick_s=5.0)

    def row() -> dict[str, Any] | None:
        body = svc.get("/api/v1/kpi", params={"level": "plant", "period": "year"}).json()
        r: dict[str, Any] = body["rows"][0]
        return r if r["n_hours_intensity"] >= 1 else None

    # a closed hour (under load the simulators may take minutes to get there)
    api = svc.wait_for(row, timeout=240, interval=1.0)
    page.open(svc.base_url + "/")
    try:
        shown = WebDriverWait(page.driver, 30, poll_frequency=0.2).until(
            lambda d: (s := d.execute_script(READ_TARGET)) and not s["hidden"] and s["text"] and s
        )
    except TimeoutException:
        page.screenshot(tmp_path, "target-failure.png")
        raise AssertionError(f"no target in the header: {page.driver.execute_script(READ_TARGET)}") from None
    expected = 2000.0 - 400.0 * min(THIS_YEAR - 2020, 10) / 10
    assert api["target_value"] == pytest.approx(expected) and api["target_on_track"] is True
    assert shown["onTrack"] == "true"
    text = shown["text"]
    assert text.startswith(f"Target {THIS_YEAR}: ") and "on track" in text and text.endswith("to 2030")
    assert (
        f"1,{expected - 1000:.0f} kg CO₂/t clinker · actual {api['gross_co2_kg_per_t_clinker']:.0f} · on"
        in text
    )
    assert "· 0 kg CO₂/t clinker less per year" in text  # already below the 2030 value
    page.screenshot(tmp_path, "page-target.png")
    assert page.console_errors() == []
