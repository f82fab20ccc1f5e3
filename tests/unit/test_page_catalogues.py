"""The page's language catalogues, the alarm codes they render, and the page's time-zone setting."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from api.alarm_models import alarm_out
from api.alarms import ALARM_CODES, AlarmBook, HourSeen, KilnObservation, MinuteSeen, Observation, SourceSeen
from api.app import STATIC_DIR, create_app
from api.context import ApiContext
from api.page_config import AlarmSettings, KilnThresholds, PageSettings
from kilnwatch.config import ConfigError, parse_plant
from kilnwatch.demo import demo_plant

LANGUAGES = ("en", "az", "ru")
S = 1_000_000_000
WALL0 = 1_795_000_000 * S
MIN = 60 * S
#: Kiln status words and alarm kinds the server sends; the page names each from its catalogue.
STATUSES = ("valid", "stale", "maintenance", "fault", "catching_up", "invalid", "no_data")
KINDS = ("stale", "maintenance", "calibration", "fault", "source", "intensity", "co2", "completeness")
PLACEHOLDER = re.compile(r"\{(\w+)(?::\w+)?\}")


def catalogue(lang: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((STATIC_DIR / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def catalogues() -> dict[str, dict[str, Any]]:
    return {lang: catalogue(lang) for lang in LANGUAGES}


def test_the_three_catalogues_have_exactly_the_same_keys(catalogues: dict[str, dict[str, Any]]) -> None:
    keys = set(catalogues["en"])
    for lang, cat in catalogues.items():
        assert set(cat) == keys, f"{lang}: missing {keys - set(cat)}, extra {set(cat) - keys}"
        assert all(isinstance(v, str) and v for v in cat.values()), lang  # ru's group sign is a space


def test_every_translation_names_the_same_placeholders(catalogues: dict[str, dict[str, Any]]) -> None:
    for key, english in catalogues["en"].items():
        wanted = sorted(PLACEHOLDER.findall(english))
        for lang in ("az", "ru"):
            assert sorted(PLACEHOLDER.findall(catalogues[lang][key])) == wanted, f"{lang} {key}"


def test_every_alarm_code_status_and_kind_has_an_entry(catalogues: dict[str, dict[str, Any]]) -> None:
    wanted = (
        [f"alarm.{code}" for code in ALARM_CODES]
        + [f"status.{s}" for s in STATUSES]
        + [f"kind.{k}" for k in KINDS]
        + ["severity.alarm", "severity.warning", "severity.cleared"]
    )
    for lang, cat in catalogues.items():
        assert [k for k in wanted if k not in cat] == [], lang
    # Nothing left over: an alarm entry without a code is a message the page can never show.
    assert {k.removeprefix("alarm.") for k in catalogues["en"] if k.startswith("alarm.")} == set(ALARM_CODES)


def test_every_alarm_the_book_raises_carries_a_known_code_and_its_params() -> None:
    settings = AlarmSettings(
        stale_after_s=60,
        source_grace_s=0,
        default_thresholds=KilnThresholds(intensity_kg_per_t=800, co2_t_per_h=150),
    )
    book = AlarmBook(settings, WALL0)
    now = WALL0 + 10 * S
    minute = MinuteSeen(now // MIN * MIN - MIN, 0, True, 170.0, 835.0)
    kiln1 = KilnObservation(
        "kiln1", "Kiln 1", minute, {"kiln1.stack.co2": "calibration"}, HourSeen(WALL0, 0.5)
    )
    kiln2 = KilnObservation("kiln2", "Kiln 2", None, {"kiln2.stack.o2": "fault", "kiln2.x": "maintenance"})
    sources = [
        SourceSeen("opcua:plc", "opcua", False, WALL0, "connection refused"),
        SourceSeen("mqtt:cems", "mqtt", False, WALL0),
    ]
    book.update(Observation(now, [kiln1, kiln2], sources))
    later = now + 120 * S
    kiln1 = KilnObservation(
        "kiln1",
        "Kiln 1",
        MinuteSeen(later // MIN * MIN - MIN, 0, True, 170.0, 835.0),
        kiln1.qualities,
        kiln1.hour,
    )
    book.update(Observation(later, [kiln1, kiln2], sources))  # kiln2: no minute at all
    codes = {a.key: a.code for a in book.active.values()}
    assert set(codes.values()) <= set(ALARM_CODES)
    assert codes == {
        "calibration:kiln1": "analyser_calibration",
        "completeness:kiln1": "completeness_low",
        "intensity:kiln1": "limit_intensity",
        "co2:kiln1": "limit_co2",
        "fault:kiln2": "analyser_fault",
        "maintenance:kiln2": "analyser_maintenance",
        "stale:kiln2": "stale_no_minute",
        "source:opcua:plc": "source_disconnected_error",
        "source:mqtt:cems": "source_disconnected",
    }
    out = {a.key: alarm_out(a).model_dump() for a in book.active.values()}
    assert out["completeness:kiln1"]["params"] == {"kiln": "Kiln 1", "completeness": 0.5, "min": 0.8}
    assert out["completeness:kiln1"]["message"] == "Kiln 1: hourly completeness 50% (below 80%)"
    assert out["intensity:kiln1"]["params"] == {"kiln": "Kiln 1", "limit": 800}
    assert out["stale:kiln2"]["params"] == {"kiln": "Kiln 2", "after_s": 60}
    assert out["source:opcua:plc"]["params"] == {
        "kind": "opcua",
        "source": "opcua:plc",
        "error": "connection refused",
    }
    assert out["calibration:kiln1"]["params"] == {"kiln": "Kiln 1", "signals": "stack.co2"}


def test_stale_code_follows_its_reason() -> None:
    book = AlarmBook(AlarmSettings(stale_after_s=60), WALL0)
    for t in range(0, 300, 10):  # minutes keep arriving, none valid
        now = WALL0 + t * S
        m = MinuteSeen(now // MIN * MIN - MIN, 0, False, None, None)
        book.update(Observation(now, [KilnObservation("kiln1", "Kiln 1", m)]))
    assert book.active["stale:kiln1"].code == "stale_none_valid"


def test_the_page_time_zone_defaults_to_utc_and_must_be_an_iana_name() -> None:
    assert PageSettings().timezone == "UTC"
    assert PageSettings(timezone="Asia/Baku").timezone == "Asia/Baku"
    with pytest.raises(ValidationError, match="unknown time zone 'Asia/Bakuu'"):
        PageSettings(timezone="Asia/Bakuu")
    with pytest.raises(ValidationError, match="unknown time zone"):
        PageSettings(timezone="../etc/passwd")


def test_the_page_receives_its_time_zone() -> None:
    none: Any = None
    ctx = ApiContext(
        table=none,
        kilns=[],
        live=none,
        history=none,
        readiness=none,
        registry=CollectorRegistry(),
        page=PageSettings(timezone="Asia/Baku"),
    )
    client = TestClient(create_app(ctx))
    assert client.get("/api/v1/page").json() == {"timezone": "Asia/Baku"}
    for lang in LANGUAGES:  # the catalogues are served beside the page
        response = client.get(f"/i18n/{lang}.json")
        assert response.status_code == 200 and response.json() == catalogue(lang)


def test_the_catalogues_are_valid_utf8_json_files_beside_the_page() -> None:
    files = sorted(p.name for p in (STATIC_DIR / "i18n").iterdir())
    assert files == [f"{lang}.json" for lang in sorted(LANGUAGES)]
    assert Path(STATIC_DIR / "i18n.js").exists()


def test_the_plant_file_sets_the_page_time_zone_and_names_a_wrong_one() -> None:
    assert parse_plant(demo_plant()).page.timezone == "UTC"
    assert parse_plant({**demo_plant(), "page": {"timezone": "Asia/Baku"}}).page.timezone == "Asia/Baku"
    with pytest.raises(ConfigError) as err:
        parse_plant({**demo_plant(), "page": {"timezone": "Baku"}}, "plant.yaml")
    assert err.value.errors == [
        "page.timezone: unknown time zone 'Baku': expected an IANA name such as Asia/Baku (got 'Baku')"
    ]
