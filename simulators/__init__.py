"""Simulated cement kilns: a physically consistent model with ground truth, an OPC UA server and an MQTT
CEMS publisher on an accelerated clock, and fault scenarios. Stands in for plant hardware, so it imports
nothing from the other kilnwatch packages."""

from simulators.clock import SimClock
from simulators.model import (
    ANALYSER_CHANNELS,
    SIGNAL_KEYS,
    SIGNAL_UNITS,
    TRUTH_KEY,
    KilnModel,
    KilnParams,
    build_models,
)
from simulators.truth import GroundTruth, HourTruth

__all__ = [
    "ANALYSER_CHANNELS",
    "SIGNAL_KEYS",
    "SIGNAL_UNITS",
    "TRUTH_KEY",
    "GroundTruth",
    "HourTruth",
    "KilnModel",
    "KilnParams",
    "SimClock",
    "build_models",
]
