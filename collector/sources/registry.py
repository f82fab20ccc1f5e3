"""Source kinds: the key under ``sources`` in the plant file -> how a source of that kind is built.

To add a kind, write ``collector/sources/<kind>/`` with a ``build(plan, context)`` function and
add its line to :data:`BUILT_IN`; a test (or an embedding application) may also
:meth:`SourceKinds.register` a kind of its own.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from collector.health import HealthRegistry
from collector.metrics import Metrics

from .sink import Sink
from .supervisor import ConfigurationError, Source, Supervisor

#: kind -> the module whose ``build`` makes a source of it (imported only when a plant uses the kind)
BUILT_IN: Final[Mapping[str, str]] = {
    "opcua": "collector.sources.opcua.source",
    "mqtt": "collector.sources.mqtt.source",
    "sparkplug": "collector.sources.sparkplug.source",
}


@dataclass(frozen=True)
class SourcePlan:
    """One entry under ``sources.<kind>`` of the plant file and the signals bound to it."""

    kind: str
    name: str
    #: The entry's settings: the kind's own model for built-in kinds, else the plant file's mapping.
    spec: Any
    #: (signal table index, the signal's binding to this source)
    bindings: Sequence[tuple[int, Any]]

    @property
    def source_name(self) -> str:
        """The name in health, metrics and dead letters: ``<kind>:<name>``."""
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class SourceContext:
    """What every source is given, whatever its kind."""

    sink: Sink
    health: HealthRegistry
    metrics: Metrics
    signal_names: Sequence[str]
    instance_id: str
    #: Newest stored reading per signal name [ns]: where a source that can read back history resumes.
    newest_ns: Mapping[str, int]
    #: The data directory's installation id: a kind whose server keeps a session per client id
    #: (MQTT) adds it to the client id, so that two installations sharing an instance id never
    #: take over each other's session.
    installation_id: str


class Builder(Protocol):
    def __call__(self, plan: SourcePlan, context: SourceContext) -> Source: ...


class SourceKinds:
    """The kinds a service can build: the built-in ones plus any registered."""

    def __init__(self) -> None:
        self._builders: dict[str, Builder | str] = dict(BUILT_IN)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self._builders)

    def register(self, kind: str, build: Builder, *, replace: bool = False) -> None:
        """Add a kind; ``replace`` swaps the builder of an existing one (e.g. to wrap it in a test)."""
        if kind in self._builders and not replace:
            raise ValueError(f"source kind {kind!r} is already registered")
        self._builders[kind] = build

    def builder(self, kind: str) -> Builder:
        entry = self._builders.get(kind)
        if entry is None:
            raise ConfigurationError(f"unknown source kind {kind!r} (known: {', '.join(self._builders)})")
        if isinstance(entry, str):
            entry = self._builders[kind] = importlib.import_module(entry).build
        return entry

    def build(self, plan: SourcePlan, context: SourceContext) -> Supervisor:
        """The supervised source of ``plan``; ConfigurationError when its configuration cannot work."""
        return Supervisor(self.builder(plan.kind)(plan, context))
