"""The built-in demo plant: one plant, two kilns of about 5000 t clinker/day, served by the simulators."""

from __future__ import annotations

from typing import Any

SIM_NAMESPACE = "urn:kilnwatch:simulator"
DEMO_OPCUA_PORT = 48400
DEMO_MQTT_PORT = 18830
DEMO_KILNS = ("kiln1", "kiln2")
#: The demo's Sparkplug B edge node (simulators.sparkplug_node): group and edge node id.
DEMO_SPARKPLUG_GROUP = "kilnwatch"
DEMO_SPARKPLUG_NODE = "sim-cems"

# (key on the simulator, quantity, unit, basis, valid range)
_OPCUA_SIGNALS = [
    ("stack.flow", "flow", "m3/h", "wet", (0.0, 1_500_000.0)),
    ("stack.temperature", "temperature", "degC", None, (0.0, 400.0)),
    ("stack.static_pressure", "static_pressure", "kPa", None, (-10.0, 10.0)),
    ("stack.barometric_pressure", "barometric_pressure", "kPa", None, (80.0, 110.0)),
    ("clinker.rate", "clinker_rate", "t/h", None, (0.0, 400.0)),
    ("fuel.rate", "fuel_rate", "t/h", None, (0.0, 100.0)),
]
_CEMS_SIGNALS = [
    ("co2", "co2", "vol %", "dry", (0.0, 30.0)),
    ("o2", "o2", "vol %", "dry", (0.0, 25.0)),
    ("h2o", "h2o", "vol %", "wet", (0.0, 30.0)),
    ("co", "co", "mg/Nm3", "dry", (0.0, 5000.0)),
    ("nox", "nox", "mg/Nm3", "dry", (0.0, 2000.0)),
    ("so2", "so2", "mg/Nm3", "dry", (0.0, 1000.0)),
    ("dust", "dust", "mg/Nm3", "dry", (0.0, 100.0)),
]


def demo_plant(
    opcua_port: int = DEMO_OPCUA_PORT,
    mqtt_port: int | None = DEMO_MQTT_PORT,
    kilns: tuple[str, ...] = DEMO_KILNS,
    mqtt_host: str = "127.0.0.1",
    cems: str = "json",
) -> dict[str, Any]:
    """The demo plant file as a dict. With ``mqtt_port=None`` the analysers are read over OPC UA too;
    ``cems="sparkplug"`` reads them from the simulator's Sparkplug B edge node instead of JSON."""
    kiln_list = []
    for n, kiln in enumerate(kilns, start=1):
        signals: list[dict[str, Any]] = []
        for key, quantity, unit, basis, rng in _OPCUA_SIGNALS:
            signals.append(_signal(f"{kiln}.{key}", quantity, unit, basis, rng, _opcua(kiln, key)))
        for channel, quantity, unit, basis, rng in _CEMS_SIGNALS:
            sid = f"{kiln}.stack.{channel}"
            if mqtt_port is None:
                source = _opcua(kiln, f"stack.{channel}")
            elif cems == "sparkplug":
                source = {
                    "sparkplug": {
                        "source": "cems",
                        "group": DEMO_SPARKPLUG_GROUP,
                        "edge_node": DEMO_SPARKPLUG_NODE,
                        "device": kiln,
                        "metric": channel,
                    }
                }
            else:
                source = {
                    "mqtt": {
                        "broker": "cems",
                        "topic": f"kilnwatch/sim/{kiln}/cems",
                        "value_path": f"channels.{channel}.value",
                        "status_path": f"channels.{channel}.status",
                        "timestamp_path": "ts",
                    }
                }
            signals.append(_signal(sid, quantity, unit, basis, rng, source))
        kiln_list.append(
            {
                "id": kiln,
                "name": f"Kiln {n}",
                "signals": signals,
                # What the simulated kilns burn and make: the mass balance for the cross-check
                # and for substituting invalid flow hours (MRR Art. 45(4), 46).
                "accounting": {
                    "composition": {"ef_clinker_t_per_t": 0.525, "toc_pct": 0},
                    "fuels": [
                        {
                            "name": "coal",
                            "signal": f"{kiln}.fuel.rate",
                            "ncv_gj_per_t": 25.8,
                            "ef_t_per_tj": 94.6,
                        }
                    ],
                },
            }
        )
    sources: dict[str, Any] = {"opcua": {"sim": {"url": f"opc.tcp://127.0.0.1:{opcua_port}"}}}
    if mqtt_port is not None:
        sources["sparkplug" if cems == "sparkplug" else "mqtt"] = {
            "cems": {"host": mqtt_host, "port": mqtt_port}
        }
    return {
        "plants": [{"id": "demo", "name": "Demo cement plant", "kilns": kiln_list}],
        "sources": sources,
    }


def _opcua(kiln: str, key: str) -> dict[str, Any]:
    return {"opcua": {"server": "sim", "node": f"nsu={SIM_NAMESPACE};s={kiln}.{key}"}}


def _signal(
    sid: str, quantity: str, unit: str, basis: str | None, rng: tuple[float, float], source: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": sid,
        "quantity": quantity,
        "unit": unit,
        "range": list(rng),
        "source": source,
    }
    if basis:
        out["basis"] = basis
    return out
