"""Which published rows an import may touch, and which records of it are quarantined: the predicates
the diff, the classification and the summaries all build on (kept apart from ``diff`` so that ``classify``
and ``diff`` do not import each other).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from .schema import ResourceTables, rejected_records


@dataclass(frozen=True)
class Scope:
    """Which published rows an import may touch."""

    import_id: int
    district_id: str
    school_year: int
    full: bool


def published_scope(t: ResourceTables, scope: Scope) -> list[sa.ColumnElement[bool]]:
    p = t.published.c
    conditions = [p.district_id == scope.district_id]
    if t.resource.year_scoped:
        conditions.append(p.school_year == scope.school_year)
    return conditions


def _joined(t: ResourceTables, scope: Scope) -> sa.ColumnElement[bool]:
    return sa.and_(*published_scope(t, scope), t.published.c.sourced_id == t.staging.c.sourced_id)


def _raw(t: ResourceTables, dialect: str) -> sa.ColumnElement[object]:
    """Staged raw JSON text as the published column's type: JSONB on Postgres, the text itself on SQLite
    (where ``CAST(... AS JSON)`` would apply NUMERIC affinity)."""
    if dialect == "postgresql":
        return sa.cast(t.staging.c.raw, t.published.c.raw.type)
    return t.staging.c.raw


def _tobedeleted(t: ResourceTables) -> sa.ColumnElement[bool]:
    return sa.func.lower(sa.func.coalesce(t.staging.c.status, "")) == "tobedeleted"


def quarantined_ids(t: ResourceTables, import_id: int) -> sa.Select[tuple[str]]:
    """sourcedIds of this resource with an error reject in the import (the records to keep out)."""
    r = rejected_records.c
    return sa.select(r.sourced_id).where(
        r.import_id == import_id,
        r.resource == t.resource.name,
        r.severity == "error",
        r.sourced_id.is_not(None),
    )


def _is_quarantined(
    t: ResourceTables, import_id: int, sourced_id: sa.ColumnElement[str]
) -> sa.ColumnElement[bool]:
    r = rejected_records.c
    return sa.exists(
        sa.select(sa.literal(1)).where(
            r.import_id == import_id,
            r.resource == t.resource.name,
            r.severity == "error",
            r.sourced_id == sourced_id,
        )
    )


#: Quarantine checks that, on the field ``sourcedId``, mean the record's id itself could not be read.
UNREADABLE_ID_CHECKS = ("nul_character", "invalid_utf8")


def unreadable_id_sql() -> str:
    """SQL: this import (``:import_id``) quarantined a record of the resource (``:resource``) whose
    sourcedId could not be read (a NUL or an undecodable byte in the id). Which published record it stands
    for cannot be told, so a full pull infers no vanished record of that resource: absence proves nothing."""
    checks = ", ".join(f"'{check}'" for check in UNREADABLE_ID_CHECKS)
    return (
        "EXISTS (SELECT 1 FROM rejected_records u WHERE u.import_id = :import_id"
        " AND u.resource = :resource AND u.severity = 'error' AND u.field = 'sourcedId'"
        f" AND u.check_name IN ({checks}))"
    )


def unreadable_id(t: ResourceTables, import_id: int) -> sa.ColumnElement[bool]:
    """See ``unreadable_id_sql``."""
    r = rejected_records.c
    return sa.exists(
        sa.select(sa.literal(1)).where(
            r.import_id == import_id,
            r.resource == t.resource.name,
            r.severity == "error",
            r.field == "sourcedId",
            r.check_name.in_(UNREADABLE_ID_CHECKS),
        )
    )
