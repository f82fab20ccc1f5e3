"""Reading the fleet's hours back from a VictoriaMetrics historian (its ``/api/v1/export``).

VictoriaMetrics keeps every sample it is sent, in no particular order within one timestamp, so an
hour re-sent after a restart shows twice and a revised hour shows once per revision. The hour's
``kiln_hour_rev`` points carry the revision as a tag: per kiln and hour the newest revision is
kept, its value once. Samples of one revision that disagree (none should) are counted.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field

import httpx

from collector.outputs.historian.line_protocol import KILN_HOUR_REV

from .grouping import KilnRef
from .totals import KilnHour

_FIELDS = ("co2_t", "clinker_t", "valid")
#: Relative difference above which two samples of one revision are counted as disagreeing.
_SAME = 1e-9


@dataclass
class HistorianHours:
    hours: list[KilnHour]
    samples: int  # samples read, re-sent ones included
    disagreeing: int = 0  # (kiln, hour, revision) whose re-sent samples differ
    revised: int = 0  # kiln hours with more than one revision
    per_kiln: dict[str, int] = field(default_factory=dict)


def read_hours(url: str, start_ns: int, end_ns: int, timeout_s: float = 120.0) -> HistorianHours:
    """The newest revision of every kiln hour starting in [start_ns, end_ns). httpx.HTTPError when
    the historian cannot be read."""
    match = f'{{__name__=~"{KILN_HOUR_REV}_({"|".join(_FIELDS)})"}}'
    form = {
        "match[]": match,
        "start": f"{start_ns / 1e9:.3f}",
        "end": f"{(end_ns - 1_000_000) / 1e9:.3f}",  # inclusive end: the last ms of the range
    }
    with httpx.Client(timeout=timeout_s) as client:
        r = client.post(f"{url.rstrip('/')}/api/v1/export", data=form)
        r.raise_for_status()
        text = r.text
    # (kiln, ts ms) -> revision -> field -> values as sent
    got: dict[tuple[KilnRef, int], dict[int, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    n = 0
    for line in text.splitlines():
        if not line:
            continue
        item = json.loads(line)  # one series may come in several lines
        labels = item["metric"]
        name = labels["__name__"].removeprefix(KILN_HOUR_REV + "_")
        kiln = KilnRef(labels.get("company", ""), labels.get("plant", ""), labels.get("kiln", ""))
        revision = int(labels.get("revision", "0"))
        for ts, value in zip(item["timestamps"], item["values"], strict=True):
            got[(kiln, int(ts))][revision][name].append(float(value))
            n += 1
    out = HistorianHours([], n)
    for (kiln, ts_ms), revisions in got.items():
        newest = max(revisions)
        fields = revisions[newest]
        out.revised += len(revisions) > 1
        out.disagreeing += any(_disagree(v) for v in fields.values())
        out.hours.append(
            KilnHour(
                kiln, ts_ms * 1_000_000, _first(fields.get("co2_t")), _first(fields.get("clinker_t")), newest
            )
        )
        key = f"{kiln.plant}/{kiln.kiln}"
        out.per_kiln[key] = out.per_kiln.get(key, 0) + 1
    out.hours.sort(key=lambda h: (h.kiln, h.start_ns))
    return out


def _first(values: list[float] | None) -> float | None:
    return values[0] if values else None


def _disagree(values: list[float]) -> bool:
    lo, hi = min(values), max(values)
    return not math.isclose(lo, hi, rel_tol=_SAME, abs_tol=1e-12)
