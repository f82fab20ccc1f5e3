"""The two CSV dialects of the reports, written with the ``csv`` module (API and ``kilnwatch report``).

``rfc4180``      comma-separated, decimal point, no BOM (RFC 4180 quoting; rows end in LF, as before)
``excel-comma``  semicolon-separated, decimal comma, UTF-8 with a BOM, CRLF: what a spreadsheet set to
                 a decimal-comma locale (az, ru, de...) opens without an import dialogue
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any, Final, Literal

from analytics import tables

Dialect = Literal["rfc4180", "excel-comma"]
DIALECTS: Final = ("rfc4180", "excel-comma")
BOM: Final = "\ufeff"


class ExcelComma(csv.excel):
    delimiter = ";"
    lineterminator = "\r\n"


class Rfc4180(csv.excel):
    lineterminator = "\n"


_DIALECTS: Final[dict[str, type[csv.Dialect]]] = {"rfc4180": Rfc4180, "excel-comma": ExcelComma}


def writer(buf: io.StringIO, dialect: str = "rfc4180") -> Any:
    """A ``csv.writer`` of ``dialect`` into ``buf``."""
    return csv.writer(buf, dialect=_DIALECTS[dialect])


def _cell(v: Any, decimal_comma: bool) -> Any:
    v = tables.csv_value(v)
    if decimal_comma and isinstance(v, float):
        return repr(v).replace(".", ",")
    return v


def csv_text(
    rows: Iterable[dict[str, Any]], fields: list[str], dialect: str = "rfc4180", header: bool = True
) -> str:
    """``rows`` as CSV in ``dialect``; with ``header`` the field names first (and the BOM of
    ``excel-comma``: ``header`` marks the start of a file)."""
    buf = io.StringIO()
    if header and dialect == "excel-comma":
        buf.write(BOM)
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", dialect=_DIALECTS[dialect])
    if header:
        writer.writeheader()
    comma = dialect == "excel-comma"
    writer.writerows({k: _cell(v, comma) for k, v in r.items()} for r in rows)
    return buf.getvalue()
