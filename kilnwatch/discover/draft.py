"""The plant-file draft: candidates grouped into kilns, written as YAML with comments to review.

The review markers are plain comments, so the draft is a valid plant file as written (once the
kilns have the signals kilnwatch needs); values with no proposal are written commented out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from analytics.signals import SINGLE_ROLE_QUANTITIES

from ..config import ConfigError, parse_plant
from .candidates import Candidate

REVIEW = "review"


@dataclass
class SourceEntry:
    """A server or broker of the draft's ``sources`` section."""

    kind: str  # "opcua" | "mqtt"
    name: str
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _s(value: Any) -> str:
    """One YAML scalar or flow collection, quoted where YAML needs it."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1_000_000).strip()
    return text.removesuffix("...").strip()


def _signal_lines(c: Candidate, active: bool, why: str) -> list[str]:
    lines = [f"- id: {_s(c.signal_id)}"]
    if active and c.quantity is not None:
        lines.append(f"  quantity: {c.quantity.value}  # {REVIEW}: {why}")
    else:
        lines.append(f"  quantity: ?  # {why}")
    if c.unit is not None:
        said = f"  # the source says {c.unit_said}" if c.unit_said and c.unit_said != c.unit else ""
        lines.append(f"  unit: {_s(c.unit)}{said}")
    elif c.unit_said:
        lines.append(f"  unit: ?  # the source says {c.unit_said}")
    if c.basis is not None:
        lines.append(f"  basis: {c.basis}  # {REVIEW}: usual moisture basis of {c.quantity}")
    if c.range is not None:
        lines.append(f"  range: {_s(list(c.range))}  # from the source (EURange)")
    elif active:
        lines.append("  # range: [min, max]  # none from the source: the instrument's, else the quantity's")
    lines.append("  source:")
    for kind, binding in c.source.items():
        lines.append(f"    {kind}:")
        lines.extend(f"      {k}: {_s(v)}" for k, v in binding.items())
    lines.extend(f"  # {note}" for note in c.notes)
    return lines


def _kiln_lines(kiln: str, members: list[Candidate]) -> list[str]:
    taken: dict[Any, str] = {}
    active: list[list[str]] = []
    parked: list[list[str]] = []
    for c in members:
        if c.quantity is None:
            parked.append(_signal_lines(c, False, c.why))
        elif c.quantity in SINGLE_ROLE_QUANTITIES and c.quantity in taken:
            why = f"another {c.quantity.value} candidate beside {taken[c.quantity]}: a kiln has one"
            parked.append(_signal_lines(c, False, why))
        else:
            taken.setdefault(c.quantity, c.signal_id)
            active.append(_signal_lines(c, True, c.why))
    out = [f"  - id: {_s(kiln)}", f"    name: {_s(kiln)}  # {REVIEW}: the name the page shows"]
    out.append("    signals:" if active else "    signals: []  # none proposed: add them by hand")
    for lines in active:
        out.extend(f"      {line}" for line in lines)
    if parked:
        out.append("      # Found but not bound (no or a second proposal); to use one, give it a quantity:")
        for lines in parked:
            out.extend(f"      # {line}" for line in lines)
    return out


def render(
    candidates: Iterable[Candidate],
    sources: list[SourceEntry],
    plant_id: str,
    origins: list[str],
    now: datetime | None = None,
) -> str:
    """The draft as YAML text (see the module docstring)."""
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    kilns: dict[str, list[Candidate]] = {}
    for c in candidates:
        kilns.setdefault(c.kiln, []).append(c)
    out = [
        f"# kilnwatch plant file DRAFT, written by `kilnwatch discover` on {when} from:",
        *(f"#   {origin}" for origin in origins),
        "# Review it before use. Every line marked 'review' is a guess from a name or a unit: confirm",
        "# the quantity, unit, moisture basis and range of each signal against the instrument list.",
        "# Values found without a proposal are at the end of each kiln, commented out.",
        "# Not discoverable, to add by hand: each kiln's accounting (fuels, composition; see",
        "# `kilnwatch demo-config`), security settings of the sources. Then: kilnwatch check-config FILE",
        "plants:",
        f"- id: {_s(plant_id)}",
        f"  name: {_s(plant_id)}  # {REVIEW}",
        "  kilns:" if kilns else "  kilns: []  # nothing found",
    ]
    for kiln, members in kilns.items():
        out.extend(_kiln_lines(kiln, members))
    out.append("sources:")
    for kind in ("opcua", "mqtt"):
        entries = [s for s in sources if s.kind == kind]
        if entries:
            out.append(f"  {kind}:")
        for entry in entries:
            out.append(f"    {_s(entry.name)}:")
            out.extend(f"      {k}: {_s(v)}" for k, v in entry.settings.items())
            out.extend(f"      # {note}" for note in entry.notes)
    return "\n".join(out) + "\n"


def problems(text: str) -> list[str]:
    """What ``kilnwatch check-config`` would say about the draft; empty when it passes."""
    try:
        parse_plant(yaml.safe_load(text), "draft")
    except ConfigError as err:
        return err.errors
    return []
