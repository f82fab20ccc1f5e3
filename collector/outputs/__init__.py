"""Outputs: what leaves kilnwatch for other systems."""
