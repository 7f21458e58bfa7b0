"""CSV attachments of the Check Your Data email: rejected rows and per-field changes.

Admins open these in Excel, so the files are UTF-8 with a BOM (Excel otherwise guesses a legacy code
page and mangles accented names), CRLF rows (RFC 4180), and cells that a spreadsheet would run as a
formula (``=``, ``+``, ``-``, ``@`` ... from the SIS) are prefixed with ``'`` (OWASP "CSV injection").
Very large lists are capped so the email stays deliverable; the body says how many were left out.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from roster_pipeline.records.rejects import Reject

DEFAULT_MAX_ROWS = 50_000
REJECT_COLUMNS: tuple[str, ...] = (
    "district_id",
    "resource",
    "sourced_id",
    "field",
    "check",
    "value",
    "severity",
    "message",
)
FIELD_CHANGE_COLUMNS: tuple[str, ...] = (
    "resource",
    "sourced_id",
    "change",
    "field",
    "old_value",
    "new_value",
)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class CsvAttachment:
    """One CSV file ready to attach, and how much of the data it holds."""

    filename: str
    data: bytes
    rows_written: int
    rows_total: int

    @property
    def truncated(self) -> bool:
        return self.rows_written < self.rows_total


def safe_cell(value: Any) -> str:
    """Text of one cell, neutralised if a spreadsheet would evaluate it (plain numbers stay numbers)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing markers, without importing pandas
        return ""
    text = str(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.match(text):
        return "'" + text
    return text


def _write(
    filename: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], total: int | None, max_rows: int
) -> CsvAttachment:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    written = 0
    seen = 0
    for row in rows:
        seen += 1
        if written < max_rows:
            writer.writerow([safe_cell(v) for v in row])
            written += 1
        elif total is not None:
            break  # the caller told us the total: no need to walk the rest
    rows_total = max(total if total is not None else seen, written)
    return CsvAttachment(filename, buffer.getvalue().encode("utf-8-sig"), written, rows_total)


def rejected_rows_csv(
    district_id: str, rejects: Iterable[Reject], total: int | None = None, max_rows: int = DEFAULT_MAX_ROWS
) -> CsvAttachment:
    """``rejected_rows.csv``: one line per failed check of one record (the raw record is not included)."""
    rows: Iterator[tuple[Any, ...]] = (
        (district_id, r.resource, r.sourced_id, r.field, r.check, r.value, r.severity, r.message)
        for r in rejects
    )
    return _write("rejected_rows.csv", REJECT_COLUMNS, rows, total, max_rows)


def _change_rows(changes: Any) -> tuple[Iterator[tuple[Any, ...]], int | None]:
    """Rows of a DataFrame or a sequence of mappings, in FIELD_CHANGE_COLUMNS order."""
    if changes is None:
        return iter(()), 0
    if hasattr(changes, "itertuples") and hasattr(changes, "columns"):  # a pandas DataFrame
        missing = [c for c in FIELD_CHANGE_COLUMNS if c not in changes.columns]
        if missing:
            raise ValueError(
                f"field changes are missing column(s) {missing}; expected {list(FIELD_CHANGE_COLUMNS)}"
            )
        frame = changes[list(FIELD_CHANGE_COLUMNS)]
        return frame.itertuples(index=False, name=None), len(frame)
    rows: Iterable[Mapping[str, Any]] = changes
    size = len(changes) if isinstance(changes, Sequence) else None
    return (tuple(row.get(c) for c in FIELD_CHANGE_COLUMNS) for row in rows), size


def field_changes_csv(
    changes: Any, total: int | None = None, max_rows: int = DEFAULT_MAX_ROWS
) -> CsvAttachment:
    """``field_changes.csv``: per record, per field, old value → new value, of the held snapshot."""
    rows, size = _change_rows(changes)
    return _write(
        "field_changes.csv", FIELD_CHANGE_COLUMNS, rows, total if total is not None else size, max_rows
    )


__all__ = [
    "DEFAULT_MAX_ROWS",
    "FIELD_CHANGE_COLUMNS",
    "REJECT_COLUMNS",
    "CsvAttachment",
    "field_changes_csv",
    "rejected_rows_csv",
    "safe_cell",
]
