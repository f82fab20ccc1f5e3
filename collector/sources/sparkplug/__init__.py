"""Sparkplug B source: kilnwatch as a Sparkplug host application (births, aliases, seq, deaths)."""
