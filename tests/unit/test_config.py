"""Plant file validation and `kilnwatch check-config`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kilnwatch.cli import main
from kilnwatch.config import ConfigError, load_plant_file
from kilnwatch.demo import demo_plant
from kilnwatch.plant import build_runtime


def write(tmp_path: Path, data: object, name: str = "plant.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def test_demo_plant_is_valid_and_builds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, demo_plant())
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok")
    assert "demo/kiln1" in out and "demo/kiln2" in out
    runtime = build_runtime(load_plant_file(path))
    assert [k.id for k in runtime.kilns] == ["kiln1", "kiln2"]
    assert len(runtime.table) == 26


def test_the_trend_window_is_a_setting_of_at_least_an_hour(tmp_path: Path) -> None:
    from analytics.engine import EmissionsEngine

    assert build_runtime(load_plant_file(write(tmp_path, demo_plant()))).engine_params.keep_minutes == 360
    plant = demo_plant()
    plant["engine"] = {"trend_minutes": 90}
    rt = build_runtime(load_plant_file(write(tmp_path, plant)))
    assert rt.engine_params.keep_minutes == 90
    engine = EmissionsEngine(rt.table, rt.kilns, rt.engine_params)
    assert engine.params.keep_minutes == 90
    plant["engine"] = {"trend_minutes": 59}
    with pytest.raises(ConfigError, match="trend_minutes"):
        load_plant_file(write(tmp_path, plant))


@pytest.mark.parametrize(
    ("mutate", "path_in_error", "words"),
    [
        (
            lambda d: d["plants"][0]["kilns"][0]["signals"][2].__setitem__("range", "wide"),
            "signals[2].range",
            "tuple",
        ),
        (
            lambda d: d["plants"][0]["kilns"][1]["signals"][5].__setitem__("quantity", "co3"),
            "plants[0].kilns[1].signals[5].quantity",
            "co3",
        ),
        (
            lambda d: d["plants"][0]["kilns"][0]["signals"][0]["source"]["opcua"].pop("node"),
            "signals[0].source.opcua.node",
            "Field required",
        ),
        (
            lambda d: d["plants"][0]["kilns"][0]["signals"][0]["source"]["opcua"].__setitem__(
                "node", "ns=2;s=x"
            ),
            "signals[0].source.opcua.node",
            "namespace URI",
        ),
        (
            lambda d: d["plants"][0]["kilns"][0]["signals"][0].__setitem__("unit", "furlong/h"),
            "signals[0]",
            "furlong",
        ),
        (lambda d: d["sources"]["opcua"].pop("sim"), "(top level)", "not defined"),
    ],
)
def test_broken_file_names_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate, path_in_error, words
):
    data = demo_plant()
    mutate(data)
    path = write(tmp_path, data)
    assert main(["check-config", str(path)]) != 0
    err = capsys.readouterr().err
    assert str(path) in err
    assert path_in_error in err
    assert words in err


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="line 1"):
        load_plant_file(write(tmp_path, "plants: [unclosed"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_plant_file(tmp_path / "absent.yaml")


def test_kiln_without_co2_signal_is_rejected(tmp_path: Path) -> None:
    data = demo_plant(mqtt_port=None)
    kiln = data["plants"][0]["kilns"][0]
    kiln["signals"] = [s for s in kiln["signals"] if s["quantity"] != "co2"]
    with pytest.raises(ConfigError, match=r"kilns\[0\].*lacks signals for: co2"):
        load_plant_file(write(tmp_path, data))
