"""Bulk-loading one batch of OneRoster records into a staging table.

Postgres gets COPY through psycopg 3's ``cursor.copy`` on the raw driver connection (inside the
SQLAlchemy transaction), SQLite a plain ``executemany`` on the driver cursor.  Both bypass SQLAlchemy's
per-row type processing: rows are built once as tuples, with the raw JSON already serialised, which is
also what the record hash is computed from.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from .columns import canonical_json, flattener
from .schema import ResourceTables


class StagingError(ValueError):
    """A batch cannot be staged at all (e.g. a record without sourcedId, which has no key)."""


def staging_columns(tables: ResourceTables) -> list[str]:
    """Columns a staging row is built with, in tuple order (row_id is left to its default)."""
    return [c.name for c in tables.staging.columns if c.name != "row_id"]


# The JSON string after "href": unrolled (runs of plain bytes, then one escape) so the engine does not
# try an alternation per byte: 2.5x faster than ``(?:[^"\\]|\\.)*`` on enrollments, same matches.
_HREF = re.compile(rb'"href":"[^"\\]*(?:\\.[^"\\]*)*"')


def without_hrefs(raw: bytes) -> bytes:
    """The record as hashed for change detection: reference ``href`` locators blanked.

    An href is where the SIS serves the referenced record (its host and base URL plus the sourcedId),
    not roster data: a district moving its SIS to a new host, or the simulator restarting on another
    port, must not turn every record into an "update" and trip the change thresholds.  The raw column
    keeps the hrefs as served.
    """
    return _HREF.sub(b'"href":""', raw)


def build_rows(
    tables: ResourceTables,
    import_id: int,
    district_id: str,
    school_year: int,
    records: Sequence[Mapping[str, Any]],
) -> list[tuple[Any, ...]]:
    """Flatten a batch into staging tuples. The only per-record Python work of the pipeline."""
    flatten = flattener(tables.resource.name)
    prefix: tuple[Any, ...] = (
        (import_id, district_id, school_year)
        if tables.resource.year_scoped
        else (
            import_id,
            district_id,
        )
    )
    md5 = hashlib.md5
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    for index, record in enumerate(records):
        sourced_id = record.get("sourcedId")
        if sourced_id is None or sourced_id == "":
            raise StagingError(
                f"{tables.resource.name}: record #{index} of the batch has no sourcedId; it cannot be keyed"
            )
        raw = canonical_json(record)
        append(
            (*prefix, str(sourced_id), *flatten(record), raw.decode(), md5(without_hrefs(raw)).hexdigest())
        )
    return rows


def copy_rows(conn: sa.Connection, tables: ResourceTables, rows: Sequence[tuple[Any, ...]]) -> None:
    """Load rows into the staging table in the connection's current transaction."""
    if not rows:
        return
    columns = staging_columns(tables)
    preparer = conn.dialect.identifier_preparer
    table = preparer.quote(tables.staging.name)
    quoted = ", ".join(preparer.quote(c) for c in columns)
    driver = conn.connection.driver_connection
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        with driver.cursor() as cursor:  # type: ignore[union-attr]  # Optional in SQLAlchemy's types; never None once checked out
            with cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
                write_row = copy.write_row
                for row in rows:
                    write_row(row)
        return
    paramstyle = "%s" if conn.dialect.paramstyle in ("format", "pyformat") else "?"
    placeholders = ", ".join([paramstyle] * len(columns))
    cursor = driver.cursor()  # type: ignore[union-attr]  # Optional in SQLAlchemy's types; never None once checked out
    try:
        cursor.executemany(f"INSERT INTO {table} ({quoted}) VALUES ({placeholders})", rows)
    finally:
        cursor.close()
