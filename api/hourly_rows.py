"""``/hourly`` from the report rows the store keeps (decision 0031): JSON spliced from the stored row
texts, CSV streamed from the stored cells ``CSV_PIECE_ROWS`` hours at a time (decision 0036). No hour
record is decoded and no row object built; only ``hour_local`` (the report's time zone) is made per
row.

The JSON is byte for byte what :func:`analytics.tables.hourly_row` dumped with orjson would give
(``ledger`` null: the ledger takes the general path); the stored rows are
:mod:`analytics.stored_rows`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, Literal

import orjson
from fastapi.responses import StreamingResponse

from analytics import stored_rows, tables
from analytics.plant_time import PlantClock
from analytics.stored_rows import fill_cells

from .context import ChangeSource, StoredHourRows
from .csv_dialect import BOM, writer

#: Hours read and sent at a time as CSV: about 0.4 MiB, one query and one worker-thread step.
CSV_PIECE_ROWS = 2048


def json_array(rows: StoredHourRows, clock: PlantClock) -> memoryview:
    """The rows as one JSON array, their local times filled in; the stored texts are used up. A view
    of the buffer: the response sends it as it is."""
    return memoryview(stored_rows.json_array(rows.text, rows.ts, clock))


def read_page(
    history: ChangeSource, kiln: str, start_ns: int, end_ns: int, changed_since: int | None, max_rows: int
) -> tuple[StoredHourRows, int | None]:
    """At most ``max_rows`` hours from ``start_ns`` and the start of the next page (None: no more)."""
    rows = history.hourly_rows(kiln, start_ns, end_ns, changed_since, max_rows + 1, "report")
    if len(rows.ts) <= max_rows:
        return rows, None
    cursor = rows.ts[max_rows]
    del rows.ts[max_rows:], rows.change_seq[max_rows:], rows.text[max_rows:]
    return rows, cursor


def csv_chunk(rows: StoredHourRows, clock: PlantClock, dialect: str) -> bytes:
    """Stored rows (``line`` for rfc4180, else ``flat``), their local times filled in, as CSV lines
    of ``dialect``."""
    if dialect == "rfc4180":
        return stored_rows.csv_lines(rows.text, rows.ts, clock)
    buf = io.StringIO()
    cells = fill_cells([orjson.loads(f) for f in rows.text], rows.ts, clock)
    if dialect == "excel-comma":
        cells = [[repr(v).replace(".", ",") if isinstance(v, float) else v for v in row] for row in cells]
    writer(buf, dialect).writerows(cells)
    return buf.getvalue().encode()


def csv_stream(
    history: ChangeSource,
    kiln: str,
    start_ns: int,
    end_ns: int,
    changed_since: int | None,
    clock: PlantClock,
    dialect: str,
    headers: dict[str, str],
    filename: str,
) -> StreamingResponse:
    """Every hour of [start, end) (changed after ``changed_since``) as CSV, read ``CSV_PIECE_ROWS`` at
    a time; each piece is read and written in one worker-thread step and sent while the next is made."""

    def body() -> Iterator[str | bytes]:  # each step in a worker thread
        buf = io.StringIO()
        if dialect == "excel-comma":
            buf.write(BOM)
        writer(buf, dialect).writerow(tables.HOURLY.csv_header)
        yield buf.getvalue()
        form: Literal["line", "flat"] = "line" if dialect == "rfc4180" else "flat"
        t = start_ns
        while t < end_ns:
            rows = history.hourly_rows(kiln, t, end_ns, changed_since, CSV_PIECE_ROWS, form)
            if not rows.ts:
                break
            yield csv_chunk(rows, clock, dialect)
            t = rows.ts[-1] + 1

    out: dict[str, Any] = {"Content-Disposition": f'attachment; filename="{filename}"', **headers}
    return StreamingResponse(body(), media_type="text/csv", headers=out)
