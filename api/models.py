"""Response models. The row models are built from the row schemas in :mod:`analytics.tables`
(field names, order, types, units, descriptions): their names are a contract that downstream
tools rely on, and they are declared there, once."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field, create_model
from pydantic.config import JsonDict

from analytics import schema, tables
from analytics.schema import Nested


class KilnSummary(BaseModel):
    id: str
    name: str
    plant: str


#: The model of each row schema, by the schema's identity (for nested rows).
_MODELS: dict[int, type[BaseModel]] = {}


def row_model(name: str, rows: schema.Schema, doc: str | None = None) -> type[BaseModel]:
    """The response model of ``rows``: one field per schema field, in order, with its unit and
    description in the OpenAPI docs."""
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        name, __doc__=doc, __module__=__name__, **{f.name: _field(f) for f in rows.fields}
    )
    _MODELS[id(rows)] = model
    return model


def _field(f: schema.Field) -> tuple[Any, Any]:
    text = f"{f.description} [{f.unit}]" if f.unit else f.description
    extra: JsonDict | None = {"x-unit": f.unit} if f.unit else None
    return _annotation(f.dtype), Field(description=text or None, json_schema_extra=extra)


def _annotation(dtype: Any) -> Any:
    if isinstance(dtype, Nested):
        if id(dtype.schema) not in _MODELS:
            raise LookupError("a nested schema needs its model first: row_model(name, schema)")
        model = _MODELS[id(dtype.schema)]
        inner: Any = model if dtype.single else dict[str, model]  # type: ignore[valid-type]
        return inner | None if dtype.nullable else inner
    return dtype


# Nested rows first: the rows that hold them refer to their models. Typed Any: for mypy a class
# made at run time is a variable, not a type, and routes name them in ``response_model=list[...]``.
SignalValue: Any = row_model("SignalValue", tables.SIGNAL_VALUE)
ParameterSummary: Any = row_model("ParameterSummary", tables.PARAMETER)
LedgerEntry: Any = row_model(
    "LedgerEntry",
    tables.LEDGER_ENTRY,
    "Completeness of one signal in one hour; valid + the reasons = expected.",
)
RunningMinuteRow: Any = row_model(
    "RunningMinuteRow", tables.RUNNING_MINUTE, "The running minute: provisional, never stored."
)
LiveResponse: Any = row_model("LiveResponse", tables.LIVE)
MinuteRow: Any = row_model("MinuteRow", tables.MINUTE)
HourlyRow: Any = row_model("HourlyRow", tables.HOURLY)
HalfHourRow: Any = row_model("HalfHourRow", tables.HALFHOURLY)
DailyRow: Any = row_model("DailyRow", tables.DAILY)
CrossCheckRow: Any = row_model("CrossCheckRow", tables.CROSSCHECK)
LedgerRow: Any = row_model("LedgerRow", tables.LEDGER)
PlantHourRow: Any = row_model("PlantHourRow", tables.PLANT_HOURLY)
PeriodTotalsRow: Any = row_model("PeriodTotalsRow", tables.PERIOD_TOTALS)


RowT = TypeVar("RowT", bound=BaseModel)


class Report(BaseModel, Generic[RowT]):
    """The shape of every report list: the rules used, then the rows."""

    method: dict[str, Any]
    rows: list[RowT]
    next: str | None = Field(
        default=None, description="URL of the next page (also as Link: rel=next); null on the last page"
    )
    change_seq: int | None = Field(
        default=None,
        description="the store's change number up to which the answer is complete (also as the "
        "X-Kilnwatch-Change-Seq header): ask with ?changed_since=<it> next time",
    )
