"""Reading the fleet's hours back from a VictoriaMetrics historian (its ``/api/v1/export``).

VictoriaMetrics keeps every sample it is sent, in no particular order within one timestamp, so an
hour re-sent after a restart shows twice and a revised hour shows once per revision. The hour's
``kiln_hour_rev`` points carry the revision as a tag: per kiln and hour the newest revision is
kept, its value once. Samples of one revision that disagree (none should) are counted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from math import isnan

import httpx
import numpy as np
import orjson

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
    disagreeing: int = 0  # kiln hours whose newest revision was re-sent with other values
    revised: int = 0  # kiln hours with more than one revision


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
    # (plant, kiln) -> parts of (timestamps [ms], revision, field index, values), one per series line;
    # the company tag is not part of the key: a kiln whose company changed is still one kiln
    parts: dict[tuple[str, str], list[tuple[list[int], int, int, list[float]]]] = defaultdict(list)
    companies: dict[tuple[str, str], str] = {}
    n = 0
    for line in text.splitlines():
        if not line:
            continue
        item = orjson.loads(line)  # one series may come in several lines
        labels = item["metric"]
        name = labels["__name__"].removeprefix(KILN_HOUR_REV + "_")
        key = (labels.get("plant", ""), labels.get("kiln", ""))
        companies[key] = labels.get("company", "")
        revision = int(labels.get("revision", "0"))
        parts[key].append((item["timestamps"], revision, _FIELDS.index(name), item["values"]))
        n += len(item["timestamps"])
    out = HistorianHours([], n)
    for (plant, kiln), kiln_parts in parts.items():
        _newest(KilnRef(companies[(plant, kiln)], plant, kiln), kiln_parts, out)
    out.hours.sort(key=lambda h: (h.kiln, h.start_ns))
    return out


def _newest(kiln: KilnRef, parts: list[tuple[list[int], int, int, list[float]]], out: HistorianHours) -> None:
    """Append the newest revision of each of the kiln's hours to ``out``, counting the revised hours
    and the re-sent samples that disagree."""
    ts = np.concatenate([np.asarray(p[0], dtype=np.int64) for p in parts])
    rev = np.concatenate([np.full(len(p[0]), p[1], dtype=np.int64) for p in parts])
    fld = np.concatenate([np.full(len(p[0]), p[2], dtype=np.intp) for p in parts])
    val = np.concatenate([np.asarray(p[3], dtype=np.float64) for p in parts])
    hours, inv = np.unique(ts, return_inverse=True)
    newest = np.full(len(hours), -1, dtype=np.int64)
    np.maximum.at(newest, inv, rev)
    keep = rev == newest[inv]
    values = np.full((len(hours), len(_FIELDS)), np.nan)
    lo = np.full_like(values, np.inf)
    hi = np.full_like(values, -np.inf)
    np.minimum.at(lo, (inv[keep], fld[keep]), val[keep])
    np.maximum.at(hi, (inv[keep], fld[keep]), val[keep])
    seen = np.isfinite(lo)
    values[seen] = lo[seen]
    out.disagreeing += int(np.any(seen & ~np.isclose(lo, hi, rtol=_SAME, atol=1e-12), axis=1).sum())
    pairs = np.unique(np.stack([inv, rev]), axis=1)
    out.revised += int((np.bincount(pairs[0], minlength=len(hours)) > 1).sum())
    co2, clinker = values[:, 0].tolist(), values[:, 1].tolist()
    for i, t in enumerate(hours.tolist()):
        c, k = co2[i], clinker[i]
        out.hours.append(
            KilnHour(kiln, t * 1_000_000, None if isnan(c) else c, None if isnan(k) else k, int(newest[i]))
        )
