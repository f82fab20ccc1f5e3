"""`kilnwatch fleet` on bad input: a clear message and an exit code, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kilnwatch.cli import main
from kilnwatch.demo import demo_plant
from tests.fixtures.ports import free_port


def _plant_file(tmp_path: Path, plant: str, company: str) -> Path:
    doc = demo_plant()
    doc["plants"][0].update(id=plant, company=company)
    path = tmp_path / f"{plant}.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_unreachable_historian_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    args = ["fleet", "--config", str(_plant_file(tmp_path, "p1", "north")), "--historian", url]
    assert main([*args, "--from", "2026-01-01", "--to", "2026-01-31"]) == 1
    assert f"cannot read the historian {url}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("company", "start", "message"),
    [
        ("no spaces", "2026-01-01", "company"),  # the tag value: letters, digits, _ and -
        ("north", "2026-13-01", "is not a date"),
    ],
)
def test_bad_plant_file_or_range_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], company: str, start: str, message: str
) -> None:
    config = _plant_file(tmp_path, "p1", company)
    args = ["fleet", "--config", str(config), "--historian", "http://127.0.0.1:1", "--from", start]
    assert main([*args, "--to", "2026-01-31"]) == 2
    assert message in capsys.readouterr().err


def test_a_plant_in_two_files_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _plant_file(tmp_path, "p1", "north"), tmp_path / "again.yaml"
    b.write_text(a.read_text(encoding="utf-8"), encoding="utf-8")
    args = ["fleet", "--config", str(a), "--config", str(b), "--historian", "http://127.0.0.1:1"]
    assert main([*args, "--from", "2026-01-01", "--to", "2026-01-31"]) == 2
    assert "plant 'p1' is in two plant files" in capsys.readouterr().err
