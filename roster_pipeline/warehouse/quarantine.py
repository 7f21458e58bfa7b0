"""The quarantine: storing and reading ``Reject``s (one failed check of one record) per import.

Rejects arrive in bulk (a bad batch can fail every row), so they are written like staging rows: COPY on
Postgres, one ``executemany`` on SQLite.  A record with an error reject is never published and never
makes its published version vanish (see ``diff.purge_quarantined`` and ``diff._vanished``); warnings are
only reported.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from roster_pipeline.records.catalogue import resource
from roster_pipeline.records.rejects import Reject
from roster_pipeline.records.unstorable import storable, storable_text

from . import staging
from .schema import SEVERITIES, rejected_records

VALUE_MAX = 200  # the Reject contract: values are truncated to 200 characters
MESSAGE_MAX = 2_000

# Postgres text can hold no NUL and JSONB no \u0000 escape, and no database takes lone surrogates (an
# undecodable byte); bad SIS data may carry all of them, and the quarantine is exactly where bad data
# must land instead of aborting the COPY (see ``roster_pipeline.records.unstorable``).

COLUMNS: tuple[str, ...] = (
    "import_id",
    "district_id",
    "resource",
    "sourced_id",
    "record_key",
    "field",
    "check_name",
    "value",
    "severity",
    "message",
    "raw",
    "recorded_at",
)


def _clean(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return storable_text(text)[:limit]


def _raw_json(raw: dict[str, Any] | None) -> str | None:
    if raw is None:
        return None
    return orjson.dumps(storable(raw), option=orjson.OPT_SORT_KEYS).decode()


def record_key(reject: Reject, raw_json: str | None) -> str:
    """What makes two rejects "the same record": the sourcedId, else a hash of the record (or message)."""
    if reject.sourced_id:
        return reject.sourced_id
    basis = raw_json if raw_json is not None else f"{reject.field}\x1f{reject.value}\x1f{reject.message}"
    return "#" + hashlib.md5(basis.encode("utf-8", "surrogatepass")).hexdigest()


def build_rows(
    import_id: int, district_id: str, rejects: Sequence[Reject], now: datetime
) -> list[tuple[Any, ...]]:
    """Rejects as tuples in ``COLUMNS`` order; resource names normalised (collection names accepted)."""
    rows = []
    for reject in rejects:
        if reject.severity not in SEVERITIES:
            raise ValueError(f"reject severity must be one of {SEVERITIES}, got {reject.severity!r}")
        raw = _raw_json(reject.raw)
        rows.append(
            (
                import_id,
                district_id,
                resource(reject.resource).name,
                _clean(reject.sourced_id, 10_000),
                _clean(record_key(reject, raw), 10_000),
                _clean(reject.field, 1_000) or "*",
                _clean(reject.check, 200),
                _clean(reject.value, VALUE_MAX),
                reject.severity,
                _clean(reject.message, MESSAGE_MAX) or "",
                raw,
                now,
            )
        )
    return rows


def insert_rows(conn: sa.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """COPY on Postgres (psycopg 3); executemany through SQLAlchemy elsewhere (it types timestamps/JSON)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        preparer = conn.dialect.identifier_preparer
        cols = ", ".join(preparer.quote(c) for c in COLUMNS)
        driver = conn.connection.driver_connection
        with driver.cursor() as cursor:  # type: ignore[union-attr]  # Optional in SQLAlchemy's types; never None once checked out
            with cursor.copy(f"COPY {preparer.quote(rejected_records.name)} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    raw_index = COLUMNS.index("raw")
    params = [
        {
            c: (orjson.loads(v) if i == raw_index and v is not None else v)
            for i, (c, v) in enumerate(zip(COLUMNS, row, strict=True))
        }
        for row in rows
    ]
    conn.execute(rejected_records.insert(), params)


def staged_raw(
    conn: sa.Connection, import_id: int, resource_name: str, sourced_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The staged raw record of each sourcedId (last copy wins), for rejects that carry none."""
    stg = staging.for_import(import_id, resource_name).staging
    found: dict[str, dict[str, Any]] = {}
    unique = sorted(set(sourced_ids))
    for start in range(0, len(unique), 5_000):
        chunk = unique[start : start + 5_000]
        result = conn.execute(
            sa.select(stg.c.sourced_id, stg.c.raw)
            .where(stg.c.import_id == import_id, stg.c.sourced_id.in_(chunk))
            .order_by(stg.c.row_id)
        )
        for sourced_id, raw in result:
            found[sourced_id] = orjson.loads(raw)
    return found


def with_staged_raw(conn: sa.Connection, import_id: int, rejects: Sequence[Reject]) -> list[Reject]:
    """Rejects with ``raw`` filled in from staging where they have none (and the record is staged)."""
    wanted: dict[str, list[str]] = defaultdict(list)
    for r in rejects:
        if r.raw is None and r.sourced_id:
            wanted[resource(r.resource).name].append(r.sourced_id)
    if not wanted:
        return list(rejects)
    raws = {name: staged_raw(conn, import_id, name, ids) for name, ids in wanted.items()}
    out = []
    for r in rejects:
        raw = raws.get(resource(r.resource).name, {}).get(r.sourced_id or "") if r.raw is None else None
        out.append(r if raw is None else dataclasses.replace(r, raw=raw))
    return out


def read(
    conn: sa.Connection, import_id: int, severity: str | None = None, limit: int | None = None
) -> list[Reject]:
    """The import's rejects as ``Reject`` objects, in the order they were recorded."""
    c = rejected_records.c
    query = sa.select(rejected_records).where(c.import_id == import_id).order_by(c.reject_id)
    if severity is not None:
        query = query.where(c.severity == severity)
    if limit is not None:
        query = query.limit(limit)
    out = []
    for row in conn.execute(query).mappings():
        raw = row["raw"]
        if isinstance(raw, str):  # a driver that hands JSON back as text
            raw = orjson.loads(raw)
        out.append(
            Reject(
                resource=row["resource"],
                sourced_id=row["sourced_id"],
                field=row["field"],
                check=row["check_name"],
                value=row["value"],
                message=row["message"],
                severity=row["severity"],
                raw=raw,
            )
        )
    return out


def counts_by_check(
    conn: sa.Connection, import_id: int, severity: str | None = None
) -> dict[str, dict[str, int]]:
    """{resource: {check_name: rejects}} (rows, not distinct records: one per failed check)."""
    c = rejected_records.c
    query = sa.select(c.resource, c.check_name, sa.func.count()).where(c.import_id == import_id)
    if severity is not None:
        query = query.where(c.severity == severity)
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for res, check, n in conn.execute(
        query.group_by(c.resource, c.check_name).order_by(c.resource, c.check_name)
    ):
        out[res][check] = int(n)
    return dict(out)


def distinct_records(conn: sa.Connection, import_id: int, severity: str = "error") -> dict[str, int]:
    """{resource: distinct records with a reject of that severity} (a record failing 3 checks counts once)."""
    c = rejected_records.c
    query = (
        sa.select(c.resource, sa.func.count(sa.distinct(c.record_key)))
        .where(c.import_id == import_id, c.severity == severity)
        .group_by(c.resource)
    )
    return {res: int(n) for res, n in conn.execute(query)}
