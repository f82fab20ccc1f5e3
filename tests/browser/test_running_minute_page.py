"""The running minute on the control-room page (headless Chromium): shown beside the closed minute,
marked provisional, updated every second; the closed minute as before."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from .conftest import Page
from .test_page import kilns, wait

pytestmark = pytest.mark.browser

READ_RUNNING = """
const card = document.getElementById('kiln-kiln1');
const prov = card.querySelector('.running .prov');
const box = prov.getBoundingClientRect();
return {
  state: card.dataset.running,
  through: card.dataset.runningThrough || null,
  value: card.querySelector('.r-intensity').dataset.value || null,
  intensity: card.querySelector('.r-intensity').textContent,
  co2: card.querySelector('.r-co2').textContent,
  clinker: card.querySelector('.r-clinker').textContent,
  label: card.querySelector('.running dt').textContent,
  tag: prov.textContent,
  tagShown: box.width > 0 && box.height > 0 && getComputedStyle(prov).visibility !== 'hidden',
  italic: getComputedStyle(card.querySelector('.running-values')).fontStyle,
  title: card.querySelector('.running').title,
};
"""
#: Every change of the running minute's "through" on kiln1's card, recorded by the page itself
#: (a MutationObserver misses none, however busy the test process is).
WATCH_THROUGH = """
const card = document.getElementById('kiln-kiln1');
window.__through = [];
new MutationObserver(() => {
  const t = card.dataset.runningThrough;
  if (t && window.__through[window.__through.length - 1] !== t) window.__through.push(t);
}).observe(card, { attributes: true, attributeFilter: ['data-running-through'] });
"""


def _s(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_the_running_minute_is_shown_provisional_beside_the_closed_minute(
    start_service: Callable[..., Any], page: Page, tmp_path: Path
) -> None:
    # 15 minutes of history in 15 seconds, then real time: closed minutes, then 1 Hz readings
    svc = start_service(speed=60, backfill_h=0.25)
    page.open(svc.base_url + "/")
    svc.wait_for(lambda: svc.sims.clock.caught_up, timeout=60)
    wait(page, lambda: kilns(page).get("kiln1", {}).get("time"), 90, "a closed minute on the page")
    running = wait(
        page, lambda: (r := page.driver.execute_script(READ_RUNNING))["state"] == "live" and r, 20, "running"
    )
    assert running["label"] == "Running minute"
    assert running["tag"] == "provisional" and running["tagShown"]
    assert running["italic"] == "italic"
    assert "provisional" in running["title"] and "points so far" in running["title"]
    assert running["intensity"].isdigit()
    # beside the closed minute, which is shown as before: the minute of /live, with its numbers
    card = kilns(page)["kiln1"]
    assert _s(running["through"]) >= _s(card["time"]) + 60

    def same_closed_minute() -> tuple[dict[str, Any], dict[str, Any]] | None:
        live = svc.get("/api/v1/kilns/kiln1/live").json()
        card = kilns(page)["kiln1"]
        return (card, live) if card["time"] == live["time"] else None

    card, live = wait(page, same_closed_minute, 10, "the closed minute of /live")
    assert float(card["value"]) == live["intensity_kg_per_t"]
    assert card["co2"] == f"{live['co2_t_per_h']:.1f}"

    # the running minute's numbers are those of /live's running_minute at the same second
    def same_running() -> tuple[dict[str, Any], dict[str, Any]] | None:
        row = svc.get("/api/v1/kilns/kiln1/live").json()["running_minute"]
        shown = page.driver.execute_script(READ_RUNNING)
        return (shown, row) if row and shown["through"] == row["through"] else None

    shown, row = wait(page, same_running, 15, "the running minute of /live")
    assert row["provisional"] is True
    assert float(shown["value"]) == row["intensity_kg_per_t"]
    assert shown["co2"] == f"{row['co2_t_per_h']:.1f}" and shown["clinker"] == f"{row['clinker_t_per_h']:.1f}"

    # it updates with every second of data: at most 2 s of data between two values shown (a busy
    # machine may stall the service for a moment now and then: most steps, not every one)
    page.driver.execute_script(WATCH_THROUGH)
    seen = wait(
        page,
        lambda: len(s := page.driver.execute_script("return window.__through;")) >= 10 and s,
        40,
        "ten updates of the running minute",
    )
    steps = [_s(b) - _s(a) for a, b in itertools.pairwise(seen)]
    assert all(step > 0 for step in steps), seen
    assert sum(step <= 2 for step in steps) >= 0.8 * len(steps), seen
    page.screenshot(tmp_path, "page-running-minute.png")
    assert page.console_errors() == []
