"""Report rows: one schema per row kind, each field declared once, and the rows made from them.

This is the one place to change a report's columns. A field's position in its schema is its CSV
column and JSON key order; its type, unit and description go into the API's response models and
OpenAPI docs (``api/models.py`` builds them from here), its ``get`` says where the value comes
from. To add a column to the hourly report, add a :class:`Field` to :data:`HOURLY` (after the
existing ones: the first columns never change), e.g.::

    Field("plant", str, "", "plant id"),  # the value: the hour's attribute ``plant``
    Field("n_half_hours", int, "half-hours", "half-hours stored", get=lambda h: len(h.half_hours)),

The CSV header, the JSON rows, ``kilnwatch report`` and ``/docs`` follow. Rows are plain dicts of
JSON-ready values; JSON rows may hold nested parts (``parameters``, ``ledger``), CSV only the flat
columns. Local dates and times (``day``, ``hour_local``, ``start_local``...) are in the time zone the
report is asked in (the plant's, or ``?tz=``): the row functions take its ``clock`` (default UTC).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from .aggregates import HourAggregate, ParameterStats, PollutantHalfHour
from .kiln_params import CLINKER_RATE, CO2_DRY, CO_DRY, FLOW_N_DRY
from .ledger import LEDGER_REASONS
from .periods import DailyPollutant
from .plant_time import PlantClock, local_isos
from .reporting import DailyCrossCheck, PeriodTotals, PlantHour
from .schema import UTC_CLOCK, Field, Local, Nested, Schema, num

#: Derived parameters shown per hour, with their availability column in CSV.
HOUR_PARAMETERS = (FLOW_N_DRY, CO2_DRY, CLINKER_RATE, CO_DRY)
_ISO = "ISO 8601 UTC"


def iso(ns: int) -> str:
    """ISO 8601 UTC with a Z, seconds resolution unless finer is needed."""
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


def _local_time(what: str, start_ns: Callable[[Any], int]) -> Field:
    """``<what>_local``: the start of the row's hour or half-hour in the report's time zone."""
    return Field(
        f"{what}_local", str, "", "start in the report's time zone, ISO 8601 with its offset",
        get=Local(lambda r, clock: clock.local_iso(start_ns(r)), local_isos),
    )  # fmt: skip


def _local_day(start_ns: Callable[[Any], int]) -> Field:
    return Field(
        "day", str, "", "local date in the report's time zone, YYYY-MM-DD",
        get=Local(lambda r, clock: clock.date_of(start_ns(r)).isoformat()),
    )  # fmt: skip


def _bounds(what: str, start_ns: Callable[[Any], int], end_ns: Callable[[Any], int]) -> tuple[Field, ...]:
    """The local period's bounds in UTC and in the report's time zone (the rule of
    :mod:`analytics.plant_time`: a period starts at the first UTC hour at or after its local midnight)."""
    return (
        Field("start", str, "", f"start of the local {what}, {_ISO}", get=lambda r: iso(start_ns(r))),
        Field("end", str, "", f"end of the local {what} (exclusive), {_ISO}", get=lambda r: iso(end_ns(r))),
        Field("start_local", str, "", f"start of the {what} in the report's time zone, with its offset",
              get=Local(lambda r, clock: clock.local_iso(start_ns(r)))),
        Field("end_local", str, "", f"end of the {what} in the report's time zone, with its offset",
              get=Local(lambda r, clock: clock.local_iso(end_ns(r)))),
    )  # fmt: skip


class LedgerLine(NamedTuple):
    """One signal in one hour, the record of a ledger row."""

    hour_ns: int
    signal: str
    stats: ParameterStats
    substituted: bool
    revision: int


class PeriodLine(NamedTuple):
    """A kiln's totals over one local month or year, the record of a period-totals row."""

    period: str  # 2026-03 or 2026
    totals: PeriodTotals


class HalfHourLine(NamedTuple):
    """One pollutant in one half-hour, the record of a half-hour row."""

    start_ns: int
    pollutant: str
    stats: PollutantHalfHour
    operating: bool
    revision: int


def _reason(name: str) -> Field:
    return Field(
        name, int, "grid points", f"invalid points whose first reason is {name}",
        get=lambda r: r.stats.reasons.get(name, 0),
    )  # fmt: skip


#: Completeness of one signal in one hour [grid points]: valid + the reasons = expected.
LEDGER_ENTRY = Schema((
    Field("expected", int, "grid points", "points of the hour", get=lambda r: r.stats.n_expected),
    Field("received", int, "grid points", "points with a value in force", get=lambda r: r.stats.n_received),
    Field("valid", int, "grid points", "valid points", get=lambda r: r.stats.n_valid),
    *(_reason(name) for name in LEDGER_REASONS),
    Field("substituted", bool, "", "the hourly value this signal feeds was substituted"),
))  # fmt: skip

LEDGER = Schema((
    Field("hour", str, "", f"start of the hour, {_ISO}", get=lambda r: iso(r.hour_ns)),
    Field("signal", str, "", "signal id"),
    *LEDGER_ENTRY.fields,
    Field("revision", int, "", "the hour's revision"),
    _local_time("hour", lambda r: r.hour_ns),
))  # fmt: skip

#: One derived parameter over one hour.
PARAMETER = Schema((
    Field("mean", float | None, "", "mean of the valid points (pro rata), in the parameter's unit"),
    Field("availability", float, "1", "valid share of the points", get=lambda s: round(s.availability, 6)),
    Field("n_valid", int, "grid points", "valid points"),
    Field("n_expected", int, "grid points", "points of the hour"),
    Field("substituted", bool, "", "the hour uses a substitute for this parameter"),
    Field("substitute", float | None, "", "the value used instead of the mean"),
    Field("substitution_method", str | None, "", "how the substitute was found"),
))  # fmt: skip


def _availability(name: str) -> Field:
    def get(h: HourAggregate) -> float | None:
        s = h.params.get(name)
        return None if s is None else round(s.availability, 6)

    return Field(f"availability_{name}", float | None, "1", f"valid share of the points of {name}", get=get)


def _parameters(h: HourAggregate) -> dict[str, dict[str, Any]]:
    return {name: PARAMETER.row(h.params[name]) for name in HOUR_PARAMETERS if name in h.params}


def _ledger_not_asked(h: HourAggregate) -> None:
    """The ledger is added by :func:`hourly_row` when asked for (it needs the signals' parameters)."""
    return None


HOURLY = Schema((
    Field("hour", str, "", f"start of the hour, {_ISO}", get=lambda h: iso(h.start_ns)),
    Field("co2_t", float | None, "t", "reported CO2: substitutes applied, CO as CO2 included (eu_mrr)"),
    Field("clinker_t", float | None, "t", "clinker produced"),
    Field("intensity_kg_per_t", float | None, "kg/t", "CO2 per tonne of clinker (sum / sum)"),
    Field("valid", bool, "", "flow, CO2 and clinker each met the hour validity rule"),
    Field("completeness", float, "1", "lowest availability of the required parameters",
          get=lambda h: round(h.completeness, 6)),
    Field("revision", int, "", "times late data recomputed the hour"),
    Field("co_as_co2_t", float | None, "t", "CO counted as CO2 (MRR Art. 43(1))"),
    Field("co2_t_measured", float | None, "t", "CO2 analyser part from the valid points only: no "
          "substitute, no CO (valid eu_mrr hour: co2_t = co2_t_measured + co_as_co2_t)"),
    Field("co2_t_substituted", bool, "", "co2_t rests on a substituted parameter"),
    Field("substitution_method", str | None, "", "parameter=method;..."),
    Field("convention", str, "", "eu_mrr, us_part75 or us_part98"),
    Field("co2_short_tons", float | None, "short ton", "us_part75: Eq. F-2 result"),
    Field("calculated_co2_t", float | None, "t", "mass balance of the hour",
          get=lambda h: num(h.calculated.total_t)),
    Field("running_fraction", float | None, "1", "share of the hour in which the kiln ran",
          get=lambda h: num(h.running_fraction, 6)),
    *(_availability(p) for p in HOUR_PARAMETERS),
    Field("parameters", Nested(PARAMETER), "", "per derived parameter", get=_parameters, csv=False),
    Field("ledger", Nested(LEDGER_ENTRY, nullable=True), "", "per signal, with ?ledger=true",
          get=_ledger_not_asked, csv=False),
    _local_time("hour", lambda h: h.start_ns),
    Field("operating", bool, "", "false: operators marked the kiln stopped (kiln_stopped annotation); "
          "not substituted"),
    Field("annotations", list[str], "", "operators' annotations overlapping the hour, id:kind (CSV: a|b)",
          get=lambda h: []),
))  # fmt: skip

HALFHOURLY = Schema((
    Field("half_hour", str, "", f"start, {_ISO}", get=lambda r: iso(r.start_ns)),
    Field("pollutant", str, "", "nox, so2, dust, toc or co"),
    Field("concentration_ref_mg_per_nm3", float | None, "mg/Nm3", "mean at the reference O2 (10 %), dry",
          get=lambda r: num(r.stats.mean_ref)),
    Field("availability", float, "1", "valid share of the points",
          get=lambda r: round(r.stats.availability, 6)),
    Field("valid", bool, "", "enough valid points", get=lambda r: r.stats.valid),
    Field("operating", bool, "", "within effective operating time"),
    Field("ci_mg_per_nm3", float | None, "mg/Nm3", "confidence interval subtracted",
          get=lambda r: num(r.stats.ci)),
    Field("validated_mg_per_nm3", float | None, "mg/Nm3", "mean minus the confidence interval",
          get=lambda r: num(r.stats.validated)),
    Field("elv_mg_per_nm3", float | None, "mg/Nm3", "daily ELV", get=lambda r: num(r.stats.elv)),
    Field("above_elv", bool, "", "validated value above the daily ELV (information only)",
          get=lambda r: r.stats.above_elv),
    Field("revision", int, "", "the hour's revision"),
    _local_time("half_hour", lambda r: r.start_ns),
))  # fmt: skip

DAILY = Schema((
    _local_day(lambda d: d.day_start_ns),
    Field("pollutant", str, "", "nox, so2, dust, toc or co"),
    Field("mean_ref_mg_per_nm3", float | None, "mg/Nm3", "mean of the valid half-hours",
          get=lambda d: num(d.mean_ref)),
    Field("validated_mg_per_nm3", float | None, "mg/Nm3", "mean of the validated half-hours",
          get=lambda d: num(d.validated)),
    Field("elv_mg_per_nm3", float | None, "mg/Nm3", "daily ELV", get=lambda d: num(d.elv)),
    Field("exceedance", bool, "", "validated mean above the ELV"),
    Field("valid", bool, "", "at most the allowed number of discarded half-hours"),
    Field("complete", bool, "", "no half-hour pending"),
    Field("n_valid", int, "half-hours", "valid half-hours"),
    Field("n_discarded", int, "half-hours", "in operating time but not valid"),
    Field("n_not_operating", int, "half-hours", "outside operating time"),
    Field("n_pending", int, "half-hours", "not closed yet"),
    Field("revision", int, "", "sum of the revisions of the day's hours"),
    Field("n_half_hours", int, "half-hours", "half-hours in the local day: 46, 48 or 50"),
    *_bounds("day", lambda d: d.day_start_ns, lambda d: d.day_end_ns),
))  # fmt: skip

CROSSCHECK = Schema((
    _local_day(lambda c: c.day_start_ns),
    Field("kiln", str, "", "kiln id"),
    Field("cems_co2_t", float | None, "t", "sum of the reported hourly CO2"),
    Field("co_as_co2_t", float | None, "t", "CO counted as CO2"),
    Field("calculated_co2_t", float | None, "t", "calcination + fuels + raw-meal TOC"),
    Field("calcination_t", float | None, "t", "CO2 from calcination"),
    Field("fuel_t", float | None, "t", "CO2 from the fuels"),
    Field("toc_t", float | None, "t", "CO2 from the raw meal's TOC"),
    Field("clinker_t", float | None, "t", "clinker produced"),
    Field("deviation_pct", float | None, "%", "(CEMS - calculated)/calculated, hours with both"),
    Field("threshold_pct", float, "%", "deviation above which the day is flagged"),
    Field("flagged", bool, "", "deviation above the threshold"),
    Field("n_hours", int, "hours", "stored hours of the day"),
    Field("n_hours_compared", int, "hours", "hours with both CEMS and calculated CO2"),
    Field("n_substituted_hours", int, "hours", "hours whose CO2 rests on a substitute"),
    Field("cems_intensity_kg_per_t", float | None, "kg/t", "CEMS CO2 per tonne of clinker"),
    Field("calculated_intensity_kg_per_t", float | None, "kg/t", "calculated CO2 per tonne of clinker"),
    Field("revision", int, "", "sum of the revisions of the day's hours"),
    *_bounds("day", lambda c: c.day_start_ns, lambda c: c.day_end_ns),
    Field("n_not_operating_hours", int, "hours", "hours operators marked stopped (kiln_stopped)"),
))  # fmt: skip

#: A kiln over a local month or year; its record is a :class:`PeriodLine`.
PERIOD_TOTALS = Schema((
    Field("period", str, "", "the local month (YYYY-MM) or year (YYYY)"),
    Field("kiln", str, "", "kiln id", get=lambda r: r.totals.kiln),
    Field("co2_t", float | None, "t", "sum of the reported hourly CO2", get=lambda r: num(r.totals.co2_t)),
    Field("clinker_t", float | None, "t", "clinker produced", get=lambda r: num(r.totals.clinker_t)),
    Field("intensity_kg_per_t", float | None, "kg/t", "sum CO2 / sum clinker",
          get=lambda r: num(r.totals.intensity_kg_per_t)),
    Field("co_as_co2_t", float | None, "t", "CO counted as CO2", get=lambda r: num(r.totals.co_as_co2_t)),
    Field("calculated_co2_t", float | None, "t", "mass balance, hours that have it",
          get=lambda r: num(r.totals.calculated_co2_t)),
    Field("deviation_pct", float | None, "%", "(CEMS - calculated)/calculated, hours with both",
          get=lambda r: num(r.totals.deviation_pct)),
    Field("n_hours", int, "hours", "stored hours of the period", get=lambda r: r.totals.n_hours),
    Field("n_valid_hours", int, "hours", "valid hours", get=lambda r: r.totals.n_valid_hours),
    Field("n_substituted_hours", int, "hours", "hours whose CO2 rests on a substitute",
          get=lambda r: r.totals.n_substituted_hours),
    Field("revision", int, "", "sum of the revisions of the period's hours", get=lambda r: r.totals.revision),
    *_bounds("period", lambda r: r.totals.start_ns, lambda r: r.totals.end_ns),
))  # fmt: skip

PLANT_HOURLY = Schema((
    Field("hour", str, "", f"start of the hour, {_ISO}", get=lambda p: iso(p.start_ns)),
    Field("plant", str, "", "plant id"),
    Field("co2_t", float | None, "t", "sum over the kilns"),
    Field("clinker_t", float | None, "t", "sum over the kilns"),
    Field("intensity_kg_per_t", float | None, "kg/t", "sum CO2 / sum clinker"),
    Field("co_as_co2_t", float | None, "t", "CO counted as CO2, sum over the kilns"),
    Field("valid", bool, "", "every kiln has the hour and it is valid"),
    Field("completeness", float, "1", "the lowest of the kilns (0 for a kiln without the hour)"),
    Field("co2_t_substituted", bool, "", "a kiln's CO2 rests on a substitute"),
    Field("kilns", list[str], "", "kilns with the hour (CSV: a|b)"),
    Field("missing_kilns", list[str], "", "kilns without the hour (CSV: a|b)"),
    Field("revision", int, "", "sum of the kilns' revisions"),
    _local_time("hour", lambda p: p.start_ns),
))  # fmt: skip

MINUTE = Schema((
    Field("minute", str, "", f"start of the minute, {_ISO}", get=lambda m: iso(m.start_ns)),
    Field("co2_t_per_h", float | None, "t/h", "CO2 mass flow"),
    Field("clinker_t_per_h", float | None, "t/h", "clinker production rate"),
    Field("intensity_kg_per_t", float | None, "kg/t", "CO2 per tonne of clinker"),
    Field("valid", bool, "", "the minute met the validity rules"),
    Field("revision", int, "", "times late data recomputed the minute"),
))  # fmt: skip

#: A signal's newest value. The live rows are built by the API (they read the engine's current
#: values); their fields are declared here like every other row's.
SIGNAL_VALUE = Schema((
    Field("value", float | None, "the signal's unit", "the last value"),
    Field("unit", str, "", "canonical unit of the signal"),
    Field("quality", str | None, "", "good, uncertain, bad, maintenance, calibration, fault, ..."),
    Field("time", str | None, "", f"source time of the value, {_ISO}"),
))  # fmt: skip

#: The minute still open, from the points received so far (an engine's ``RunningMinute``): in ``/live``
#: and the stream's ``running_minute`` event, never stored, replaced by the closed minute.
RUNNING_MINUTE = Schema((
    Field("kiln", str, "", "kiln id"),
    Field("minute", str, "", f"start of the running minute, {_ISO}", get=lambda r: iso(r.start_ns)),
    Field("through", str, "", f"its newest grid point: every active signal has reported up to it, {_ISO}",
          get=lambda r: iso(r.through_ns)),
    Field("points", int, "points", "grid points from the minute's start through 'through'"),
    Field("co2_t_per_h", float | None, "t/h", "CO2 mass flow of those points"),
    Field("clinker_t_per_h", float | None, "t/h", "clinker production rate of those points"),
    Field("intensity_kg_per_t", float | None, "kg/t", "CO2 per tonne of clinker of those points"),
    Field("valid", bool, "", "those points meet the minute's validity rules (as fractions of them)"),
    Field("provisional", bool, "", "always true: not a minute aggregate, never stored",
          get=lambda r: True),
))  # fmt: skip

LIVE = Schema((
    Field("kiln", str, "", "kiln id"),
    Field("time", str | None, "", f"start of the newest closed minute, {_ISO}"),
    Field("co2_t_per_h", float | None, "t/h", "CO2 mass flow of that minute"),
    Field("clinker_t_per_h", float | None, "t/h", "clinker production rate of that minute"),
    Field("intensity_kg_per_t", float | None, "kg/t", "CO2 per tonne of clinker of that minute"),
    Field("valid", bool, "", "that minute is valid (false without one)"),
    Field("age_s", float | None, "s", "seconds since the end of that minute"),
    Field("signals", Nested(SIGNAL_VALUE), "", "each signal's last value", csv=False),
    Field("method", dict[str, Any], "", "the rules used for the numbers", csv=False),
    Field("running_minute", Nested(RUNNING_MINUTE, nullable=True, single=True), "",
          "the minute still open, from the points so far: provisional (null: none)", csv=False),
))  # fmt: skip

#: The stream's ``hour`` event: an hour closed or was recomputed. Its record is the engine's event
#: ``{"kiln", "start_ns", "revision"}``.
HOUR_EVENT = Schema((
    Field("kiln", str, "", "kiln id", get=lambda e: e["kiln"]),
    Field("hour", str, "", f"start of the hour, {_ISO}", get=lambda e: iso(e["start_ns"])),
    Field("revision", int, "", "the hour's revision", get=lambda e: e["revision"]),
))  # fmt: skip

#: The stream's ``revised`` event: late data recomputed an older minute.
REVISED_EVENT = Schema((
    Field("kiln", str, "", "kiln id", get=lambda e: e["kiln"]),
    Field("minute", str, "", f"start of the minute, {_ISO}", get=lambda e: iso(e["start_ns"])),
    Field("revision", int, "", "the minute's revision", get=lambda e: e["revision"]),
))  # fmt: skip

#: Every row kind by name (the ``--table`` names of ``kilnwatch report`` among them).
SCHEMAS: Mapping[str, Schema] = {
    "hourly": HOURLY,
    "halfhourly": HALFHOURLY,
    "daily": DAILY,
    "crosscheck": CROSSCHECK,
    "ledger": LEDGER,
    "plant_hourly": PLANT_HOURLY,
    "period_totals": PERIOD_TOTALS,
    "minutes": MINUTE,
    "live": LIVE,
}


def hourly_row(
    h: HourAggregate,
    signal_param: Mapping[str, str] | None = None,
    ledger: bool = True,
    clock: PlantClock = UTC_CLOCK,
) -> dict[str, Any]:
    """One hour of a kiln; with ``ledger`` its completeness ledger, where ``signal_param`` maps a
    signal id to the derived parameter it feeds (for ``substituted``)."""
    row = HOURLY.row(h, clock)
    if ledger:
        row["ledger"] = {line.signal: LEDGER_ENTRY.row(line) for line in ledger_lines(h, signal_param)}
    return row


def ledger_lines(h: HourAggregate, signal_param: Mapping[str, str] | None = None) -> list[LedgerLine]:
    """The signals of one hour (parameters with a received count)."""
    mapping = signal_param or {}
    out = []
    for name, s in h.params.items():
        if s.n_received is None:
            continue
        feeds = h.params.get(mapping.get(name, ""))
        out.append(LedgerLine(h.start_ns, name, s, bool(feeds is not None and feeds.substituted), h.revision))
    return out


def ledger_rows(
    h: HourAggregate, signal_param: Mapping[str, str] | None = None, clock: PlantClock = UTC_CLOCK
) -> list[dict[str, Any]]:
    """The completeness ledger of one hour: one row per signal."""
    return [LEDGER.row(line, clock) for line in ledger_lines(h, signal_param)]


def halfhourly_rows(
    hours: Sequence[HourAggregate],
    pollutant: str | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    clock: PlantClock = UTC_CLOCK,
) -> list[dict[str, Any]]:
    """Half-hour rows per pollutant, for half-hours starting in [start_ns, end_ns) when given."""
    out = []
    for h in hours:
        for hh in h.half_hours:
            if (start_ns is not None and hh.start_ns < start_ns) or (
                end_ns is not None and hh.start_ns >= end_ns
            ):
                continue
            for name, p in sorted(hh.pollutants.items()):
                if pollutant is None or name == pollutant:
                    line = HalfHourLine(hh.start_ns, name, p, hh.operating, h.revision)
                    out.append(HALFHOURLY.row(line, clock))
    return out


def daily_rows(days: Sequence[DailyPollutant], clock: PlantClock = UTC_CLOCK) -> list[dict[str, Any]]:
    """IED days; ``day`` is the local date in ``clock``'s zone."""
    return [DAILY.row(d, clock) for d in days]


def crosscheck_row(c: DailyCrossCheck, clock: PlantClock = UTC_CLOCK) -> dict[str, Any]:
    """A kiln-day's cross-check; ``day`` is the local date in ``clock``'s zone."""
    return CROSSCHECK.row(c, clock)


def period_totals_row(p: PeriodTotals, label: str, clock: PlantClock) -> dict[str, Any]:
    """A local month or year of one kiln; ``label`` names it (``2026-03``, ``2026``)."""
    return PERIOD_TOTALS.row(PeriodLine(label, p), clock)


def plant_hourly_rows(hours: Sequence[PlantHour], clock: PlantClock = UTC_CLOCK) -> list[dict[str, Any]]:
    return [PLANT_HOURLY.row(p, clock) for p in hours]


def csv_value(v: Any) -> Any:
    """Lists as ``a|b`` in CSV cells."""
    return "|".join(map(str, v)) if isinstance(v, list) else v
