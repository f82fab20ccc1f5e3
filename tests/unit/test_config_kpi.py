"""The plant file's KPI parts: companies and fleet, fuel classes, cementitious product and targets."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kilnwatch.config import ConfigError, parse_plant
from kilnwatch.demo import demo_plant
from kilnwatch.kpi_setup import kpi_setup


def _plant(**top: Any) -> dict[str, Any]:
    plant = demo_plant()
    second = copy.deepcopy(plant["plants"][0])
    second["id"] = "north"
    for kiln in second["kilns"]:
        kiln["id"] = f"n{kiln['id']}"
        for s in kiln["signals"]:
            s["id"] = f"n{s['id']}"
        for f in kiln["accounting"]["fuels"]:
            f["signal"] = f"n{f['signal']}"
    plant["plants"].append(second)
    plant["plants"][0]["company"] = "acme"
    plant["plants"][1]["company"] = "zenith"
    plant["companies"] = [{"id": "acme", "name": "Acme Cement"}, {"id": "zenith"}]
    plant.update(top)
    return plant


def _errors(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as err:
        parse_plant(data, "p.yaml")
    return "\n".join(err.value.errors)


def test_grouping_fuel_classes_and_targets() -> None:
    data = _plant(fleet={"name": "association", "target": {
        "baseline": {"year": 2020, "value": 820},
        "milestones": [{"year": 2030, "reduction_pct": 20}, {"year": 2050, "reduction_pct": 100}],
    }})  # fmt: skip
    fuels = data["plants"][0]["kilns"][0]["accounting"]["fuels"]
    fuels[0]["class"] = "mixed"
    fuels[0]["biomass_fraction"] = 0.3
    data["plants"][0]["cementitious_t_per_h"] = 250.0
    data["plants"][1]["target"] = {"baseline": {"year": 2021}, "milestones": [{"year": 2030, "value": 600}]}
    setup = kpi_setup(parse_plant(data))
    g = setup.grouping
    assert g.entity("kiln1", "company") == "acme" and g.entity("nkiln2", "company") == "zenith"
    assert g.entity("nkiln1", "fleet") == "association" and g.names["acme"] == "Acme Cement"
    coal = setup.fuels["kiln1"][0]
    assert coal.fuel_class == "mixed" and coal.biomass_share == 0.3
    assert setup.fuels["kiln2"][0].fuel_class == "conventional_fossil"
    assert setup.cementitious_t_per_h == {"demo": 250.0}
    assert setup.targets["fleet", "association"].trajectory().value_at(2030) == pytest.approx(656.0)
    assert setup.targets["plant", "north"].baseline_value is None  # computed from the store


def test_without_companies_a_plant_is_its_own_company() -> None:
    setup = kpi_setup(parse_plant(demo_plant()))
    assert setup.grouping.entity("kiln1", "company") == "demo"
    assert setup.grouping.entity("kiln1", "fleet") == "fleet"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["plants"][1].update(company="nobody"), "plants[1].company: 'nobody' is not under"),
        (lambda d: d["plants"][0].pop("company"), "plants[0].company: plant demo names no company"),
        (lambda d: d["companies"].append({"id": "acme"}), "an id is used twice"),
        (
            lambda d: d["plants"][0]["kilns"][0]["accounting"]["fuels"][0].update({"class": "mixed"}),
            "plants[0].kilns[0].accounting.fuels[0]: fuel 'coal': a mixed fuel needs biomass_fraction",
        ),
        (
            lambda d: d["plants"][0]["kilns"][0]["accounting"]["fuels"][0].update({"class": "peat"}),
            "plants[0].kilns[0].accounting.fuels[0].class",
        ),
        (
            lambda d: d["plants"][0].update(
                target={"baseline": {"year": 2020}, "milestones": [{"year": 2019, "value": 1}]}
            ),
            "plants[0].target: milestones must come after the baseline year 2020",
        ),
        (
            lambda d: d["plants"][0].update(
                target={
                    "baseline": {"year": 2020},
                    "milestones": [{"year": 2030, "value": 1, "reduction_pct": 5}],
                }
            ),
            "plants[0].target.milestones[0]: milestone 2030: give value or reduction_pct",
        ),
    ],
)
def test_errors_name_the_path(change: Any, message: str) -> None:
    data = _plant()
    change(data)
    assert message in _errors(data)
