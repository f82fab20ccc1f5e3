"""kilnwatch: live CO2 of cement kilns. This package wires the rooms: configuration, CLI, start-up."""

__version__ = "0.1.0"
