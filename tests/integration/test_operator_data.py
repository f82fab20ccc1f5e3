"""Annotations and manual data through the API of a running service, with real tokens: who may write,
what a kiln_stopped annotation and a manual CaO value do to the hours and the cross-check (revision
+ 1), a CSV import with a bad row, and the audit rows of every action."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from api.security.tokens import Role, hash_line, new_token
from tests.fixtures.service import RunningService

pytestmark = pytest.mark.integration

HOUR_S = 3600
#: Wide enough for the simulators' hours (backfilled, then ahead of the wall clock at 600x).
WINDOW = (time.time() - 2 * 86_400, time.time() + 5 * 86_400)
CSV = """quantity,value,unit,valid_from,valid_to,fuel,sample
cement_t,4100,t,2026-01-01T00:00:00Z,2026-01-02T00:00:00Z,,dispatch 1
clinker_cao_pct,95,wt %,2026-01-01T00:00:00Z,,,lab 17
raw_meal_toc_pct,0.1,wt %,2026-01-01T00:00:00Z,,,lab 18
"""


def _iso(s: float) -> str:
    return datetime.fromtimestamp(s, UTC).isoformat().replace("+00:00", "Z")


def _s(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Client:
    def __init__(self, svc: RunningService, token: str) -> None:
        self.svc, self.headers = svc, {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.svc.base_url + path, headers=self.headers, params=params, timeout=20)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.post(
            self.svc.base_url + path, headers={**self.headers, **kw.pop("headers", {})}, timeout=20, **kw
        )


@pytest.fixture
def service(start_service: Callable[..., RunningService]) -> tuple[RunningService, Client, Client]:
    operator, viewer = new_token(), new_token()
    lines = ",".join([hash_line("olga", Role.OPERATOR, operator), hash_line("victor", Role.VIEWER, viewer)])
    # as tests/integration/test_accounting_e2e.py: hours up to the wall clock (readings ahead of it are
    # refused), the first ones an hour or so after the clock starts, later on a busy machine
    svc = start_service(speed=720, backfill_h=7, tick_s=5.0, api_tokens=lines)
    op, view = Client(svc, operator), Client(svc, viewer)
    svc.wait_for(lambda: len(_hours(view, *WINDOW)) >= 3, timeout=200, interval=1.0)
    return svc, op, view


def _hours(c: Client, start: float, end: float) -> list[dict[str, Any]]:
    r = c.get("/api/v1/kilns/kiln1/hourly", start=_iso(start), end=_iso(end))
    assert r.status_code == 200, r.text
    return r.json()


def test_kiln_stopped_annotation_makes_its_hours_not_operating(service: Any) -> None:
    svc, op, view = service
    rows = _hours(view, *WINDOW)
    h1, h3 = _s(rows[1]["hour"]), _s(rows[1]["hour"]) + 2 * HOUR_S  # two closed hours
    assert all(r["operating"] for r in rows[1:3]) and all(r["annotations"] == [] for r in rows)
    body = {
        "kind": "kiln_stopped",
        "start": _iso(h1),
        "end": _iso(h3),
        "title": "Kiln stop",
        "reason": "trip",
    }
    assert view.post("/api/v1/kilns/kiln1/annotations", json=body).status_code == 403
    created = op.post("/api/v1/kilns/kiln1/annotations", json=body)
    assert created.status_code == 201, created.text
    a = created.json()
    assert a["actor"] == "olga" and a["kind"] == "kiln_stopped" and a["revision"] == 0

    def stopped() -> list[dict[str, Any]] | None:
        got = _hours(view, h1 - HOUR_S, h3 + HOUR_S)
        inside = [r for r in got if h1 <= _s(r["hour"]) < h3]
        ok = len(inside) == 2 and all(r["revision"] >= 1 and not r["operating"] for r in inside)
        return got if ok else None

    got = svc.wait_for(stopped, timeout=90)
    for r in got:
        inside = h1 <= _s(r["hour"]) < h3
        assert r["operating"] is not inside
        assert r["annotations"] == ([f"{a['id']}:kiln_stopped"] if inside else [])
        if inside:
            assert r["co2_t_substituted"] is False and r["substitution_method"] == "not_operating"
            assert r["running_fraction"] == 0.0
    assert [x["id"] for x in view.get("/api/v1/kilns/kiln1/annotations").json()] == [a["id"]]
    day = _iso(h1)[:10]
    check = view.get("/api/v1/kilns/kiln1/crosscheck", day=day, days=2, tz="UTC").json()["rows"]
    assert sum(c["n_not_operating_hours"] for c in check) == 2

    # cancelling appends a revision; the hours operate again
    cancelled = op.post(f"/api/v1/kilns/kiln1/annotations/{a['id']}/cancel", json={"reason": "wrong kiln"})
    assert (
        cancelled.status_code == 200 and cancelled.json()["cancelled"] and cancelled.json()["revision"] == 1
    )
    history = view.get(f"/api/v1/kilns/kiln1/annotations/{a['id']}/history").json()
    assert [(x["revision"], x["cancelled"]) for x in history] == [(0, False), (1, True)]
    svc.wait_for(lambda: all(r["operating"] for r in _hours(view, h1, h3)), timeout=90)

    audit = svc.service.audit.entries(actor="olga")
    assert [(e.action, e.subject) for e in audit] == [
        ("annotation.create", f"kiln1/annotation/{a['id']}"),
        ("annotation.cancel", f"kiln1/annotation/{a['id']}"),
    ]
    assert audit[1].before["cancelled"] is False and audit[1].after["cancelled"] is True
    assert audit[1].reason == "wrong kiln"


def test_manual_cao_changes_the_calcination_from_its_validity_start(service: Any) -> None:
    svc, op, view = service
    rows = _hours(view, *WINDOW)
    day = rows[2]["hour"][:10]  # the day the value starts in: it has hours before and after or at
    valid_from = _s(rows[2]["hour"])
    body = {"quantity": "clinker_cao_pct", "value": 64.0, "unit": "wt %", "valid_from": _iso(valid_from)}
    assert view.post("/api/v1/kilns/kiln1/manual", json=body).status_code == 403
    bad = op.post("/api/v1/kilns/kiln1/manual", json={**body, "value": 640.0})
    assert bad.status_code == 422 and "plausible" in bad.text
    created = op.post("/api/v1/kilns/kiln1/manual", json=body)
    assert created.status_code == 201, created.text
    value_id = created.json()["id"]
    # The hours closed when the value came are recomputed (revision + 1); later ones (the replay
    # goes on) are computed with it from the start, at revision 0.
    existing = {r["hour"] for r in _hours(view, *WINDOW)}
    ef_plant, ef_manual = 0.525, 64.0 * 0.785 / 100  # demo plant: 0.525; manual: CaO x 0.785 (no MgO given)

    def consistent() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        before = [r for r in _hours(view, *WINDOW) if r["hour"].startswith(day)]
        check = view.get("/api/v1/kilns/kiln1/crosscheck", day=day, tz="UTC").json()["rows"][0]
        after = [r for r in _hours(view, *WINDOW) if r["hour"].startswith(day)]
        affected = [r for r in after if _s(r["hour"]) >= valid_from]
        revised = bool(affected) and all(r["revision"] >= 1 for r in affected if r["hour"] in existing)
        same = [(r["hour"], r["revision"]) for r in before] == [(r["hour"], r["revision"]) for r in after]
        return (check, after) if same and revised and check["n_hours"] == len(after) else None

    check, hours = svc.wait_for(consistent, timeout=90)
    by_hand = sum(
        r["clinker_t"] * (ef_manual if _s(r["hour"]) >= valid_from else ef_plant)
        for r in hours
        if r["clinker_t"] is not None
    )
    assert check["calcination_t"] == pytest.approx(by_hand, rel=1e-6)
    assert by_hand != pytest.approx(sum(r["clinker_t"] or 0 for r in hours) * ef_plant, rel=1e-3)
    assert any(r["revision"] >= 1 for r in hours if _s(r["hour"]) >= valid_from)
    assert all(r["revision"] == 0 for r in hours if _s(r["hour"]) < valid_from)

    listed = view.get("/api/v1/kilns/kiln1/manual").json()
    assert [(x["id"], x["quantity"], x["value"], x["actor"]) for x in listed] == [
        (value_id, "clinker_cao_pct", 64.0, "olga")
    ]
    (entry,) = svc.service.audit.entries(action="manual.create")
    assert entry.actor == "olga" and entry.after["value"] == 64.0 and entry.before is None


def test_csv_import_keeps_the_good_rows_and_reports_the_bad_one(service: Any) -> None:
    svc, op, view = service
    headers = {"Content-Type": "text/csv"}
    assert view.post("/api/v1/kilns/kiln1/manual/import", content=CSV, headers=headers).status_code == 403
    r = op.post("/api/v1/kilns/kiln1/manual/import", content=CSV, headers=headers)
    assert r.status_code == 200, r.text
    result = r.json()
    assert [x["quantity"] for x in result["imported"]] == ["cement_t", "raw_meal_toc_pct"]
    assert [e["line"] for e in result["errors"]] == [3]
    assert "plausible" in result["errors"][0]["error"]
    assert {x["source"] for x in view.get("/api/v1/kilns/kiln1/manual").json()} == {"csv"}
    metrics = svc.service.metrics.registry.get_sample_value(
        "kilnwatch_manual_rows_refused_total", {"kiln": "kiln1"}
    )
    assert metrics == 1
    actions = [e.action for e in svc.service.audit.entries(actor="olga")]
    assert actions == ["manual.create", "manual.create", "manual.import"]
    (summary,) = svc.service.audit.entries(action="manual.import")
    assert summary.after["errors"][0]["line"] == 3
