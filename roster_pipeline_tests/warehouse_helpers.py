"""Rows and snapshots for warehouse tests: OneRoster records built from a number, a full sync in one call,
and dumps of the published tables for before/after comparisons (shared by the warehouse test modules)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from roster_pipeline.warehouse import ChangeCounts, Warehouse
from roster_pipeline.warehouse.schema import TABLES

YEAR = 2027


def ref(kind: str, sourced_id: str) -> dict[str, str]:
    return {"href": f"/ims/oneroster/v1p1/{kind}s/{sourced_id}", "sourcedId": sourced_id, "type": kind}


def enrollment(n: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "sourcedId": f"enr-{n}",
        "status": "active",
        "dateLastModified": "2026-11-01T12:00:00.000Z",
        "class": ref("class", f"cls-{n % 4}"),
        "user": ref("user", f"usr-{n}"),
        "school": ref("org", "sch-1"),
        "role": "student",
        "primary": "false",
        "beginDate": "2026-08-20",
        "endDate": "2027-06-05",
    }
    record.update(fields)
    return record


def user(n: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "sourcedId": f"usr-{n}",
        "status": "active",
        "dateLastModified": "2026-11-01T12:00:00.000Z",
        "username": f"student{n}",
        "enabledUser": "true",
        "givenName": "Ada",
        "familyName": f"Lovelace{n}",
        "role": "student",
        "email": f"student{n}@springfield.k12.us",
        "orgs": [ref("org", "sch-1"), ref("org", "dist-1")],
        "grades": ["05"],
    }
    record.update(fields)
    return record


def klass(n: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "sourcedId": f"cls-{n}",
        "status": "active",
        "dateLastModified": "2026-11-01T12:00:00.000Z",
        "title": f"Math {n}",
        "classType": "scheduled",
        "course": ref("course", "crs-1"),
        "school": ref("org", "sch-1"),
        "terms": [ref("academicSession", "term-1"), ref("academicSession", "term-2")],
    }
    record.update(fields)
    return record


def sync(
    wh: Warehouse,
    batches: dict[str, list[dict[str, Any]]],
    district: str = "springfield",
    mode: str = "full",
    year: int = YEAR,
) -> dict[str, ChangeCounts]:
    import_id = wh.begin_import(district, f"run-{district}", year, mode)
    for name, records in batches.items():
        wh.stage(import_id, name, records)
    return wh.publish(import_id)


def rows(wh: Warehouse, table: str, *columns: str, where: str = "") -> list[tuple[Any, ...]]:
    """Selected columns; a column given as a condition (``deleted_at IS NULL``) comes back as a bool."""
    conditions = {i for i, c in enumerate(columns) if " " in c}
    cols = ", ".join(
        f"CASE WHEN {c} THEN 1 ELSE 0 END" if i in conditions else f'"{c}"' for i, c in enumerate(columns)
    )
    with wh.engine.connect() as conn:
        result = conn.execute(sa.text(f'SELECT {cols} FROM "{table}" {where} ORDER BY 1, 2'))
        return [tuple(bool(v) if i in conditions else v for i, v in enumerate(r)) for r in result]


def staging_tables(wh: Warehouse) -> set[str]:
    with wh.engine.connect() as conn:
        return {t for t in sa.inspect(conn).get_table_names() if t.startswith("stg_")}


def dump_published(wh: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    """Every published, history and control table, fully, in a stable order (for byte-for-byte compares)."""
    names = [t.published.name for t in TABLES.values()] + [t.history.name for t in TABLES.values()]
    out = {}
    with wh.engine.connect() as conn:
        for name in names:
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            query = sa.select(*[sa.cast(c, sa.Text) for c in table.columns]).order_by(
                *[sa.cast(c, sa.Text) for c in table.columns]
            )
            out[name] = [tuple(r) for r in conn.execute(query)]
    return out
