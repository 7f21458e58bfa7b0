"""Referential checks of a staged import, in SQL, once every resource of the import is staged (here,
with the rest of the warehouse's SQL; the per-record checks are in ``roster_pipeline.validation``).

A page cannot know whether the class an enrollment names will arrive three resources later, so these
run over the staging tables after the last page: each check is one set-based query (an anti-join on
the staging and published indexes), never a query per row.

* Only ``active`` staged records are checked: a ``tobedeleted`` record may name things already gone.
* A target exists when it is staged ``active`` in this import; for a delta import also when it is alive
  and active in the district's published tables and not re-sent (a delta omits unchanged targets).
* Checks run in dependency order (sessions → courses → classes → users → enrollments → demographics)
  and every record found failing is remembered in a temporary table, so a reference to a record that
  itself failed counts as missing: a class rejected for a missing course takes its enrollments with it
  in the same pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from roster_pipeline.records.rejects import Reject
from roster_pipeline.validation.messages import clip, record_label

from . import staging
from .schema import import_runs

REFERENCE_CHECK = "reference"
CLASS_WITHOUT_TEACHER = "class_without_teacher"
_FAILED = "roster_reference_failed"  # per-connection temporary table


@dataclass(frozen=True)
class Reference:
    """``resource.column`` holds the sourcedId(s) of ``target`` records (``many``: a JSON list)."""

    resource: str
    column: str
    field: str  # as reported: "class.sourcedId"
    target: str
    many: bool = False


# Dependency order: every target is checked before the records that point at it.
REFERENCES: tuple[Reference, ...] = (
    Reference("courses", "org_sourced_id", "org.sourcedId", "orgs"),
    Reference("classes", "course_sourced_id", "course.sourcedId", "courses"),
    Reference("classes", "school_sourced_id", "school.sourcedId", "orgs"),
    Reference("classes", "term_sourced_ids", "terms.sourcedId", "academic_sessions", many=True),
    Reference("users", "org_sourced_ids", "orgs.sourcedId", "orgs", many=True),
    Reference("enrollments", "user_sourced_id", "user.sourcedId", "users"),
    Reference("enrollments", "class_sourced_id", "class.sourcedId", "classes"),
    Reference("enrollments", "school_sourced_id", "school.sourcedId", "orgs"),
    Reference("demographics", "sourced_id", "sourcedId", "users"),  # demographics share their user's id
)


@dataclass(frozen=True)
class _Scope:
    import_id: int
    district_id: str
    school_year: int
    delta: bool


def _scope(conn: sa.Connection, import_id: int, district_id: str, sync_mode: str | None) -> _Scope:
    row = conn.execute(
        sa.select(import_runs.c.school_year, import_runs.c.sync_mode).where(
            import_runs.c.import_id == import_id
        )
    ).first()
    if row is None:
        raise ValueError(f"district {district_id!r}: unknown import {import_id}")
    mode = sync_mode or row.sync_mode
    if mode not in ("full", "delta"):
        raise ValueError(f"sync_mode must be 'full' or 'delta', got {mode!r}")
    return _Scope(import_id, district_id, int(row.school_year), mode == "delta")


def _quote(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _target_exists(conn: sa.Connection, target: str, ref: str, scope: _Scope) -> str:
    """SQL: the record ``ref`` names exists as an active target (staged, or published for a delta)."""
    tables = staging.for_import(scope.import_id, target)
    stg, pub = _quote(conn, tables.staging.name), _quote(conn, tables.published.name)
    staged = (
        f"EXISTS (SELECT 1 FROM {stg} t WHERE t.import_id = :import_id AND t.sourced_id = {ref} "
        "AND t.status = 'active')"
    )
    if not scope.delta:
        return staged
    year = " AND p.school_year = :school_year" if tables.resource.year_scoped else ""
    published = (
        f"(NOT EXISTS (SELECT 1 FROM {stg} t2 WHERE t2.import_id = :import_id AND t2.sourced_id = {ref}) "
        f"AND EXISTS (SELECT 1 FROM {pub} p WHERE p.district_id = :district_id{year} AND p.sourced_id = {ref} "
        "AND p.deleted_at IS NULL AND p.status = 'active'))"
    )
    return f"({staged} OR {published})"


def _ids_of(conn: sa.Connection, column: str) -> tuple[str, str]:
    """(FROM-clause addition, id expression) for one id per row or one row per element of a JSON list."""
    if conn.dialect.name == "postgresql":
        return f"CROSS JOIN LATERAL jsonb_array_elements_text(s.{column}::jsonb) AS j(value)", "j.value"
    return f"JOIN json_each(s.{column}) AS j", "j.value"


def _broken(
    conn: sa.Connection, reference: Reference, scope: _Scope
) -> list[tuple[str, str, str | None, bool]]:
    """(sourced_id, raw, missing id, target was itself rejected) of active records whose reference fails."""
    column = _quote(conn, reference.column)
    join, ref = _ids_of(conn, column) if reference.many else ("", f"s.{column}")
    stg = _quote(conn, staging.for_import(scope.import_id, reference.resource).staging.name)
    sql = (
        f"SELECT s.sourced_id, s.raw, {ref} AS ref_id, "
        f"CASE WHEN f.sourced_id IS NULL THEN 0 ELSE 1 END AS rejected "
        f"FROM {stg} s {join} "
        f"LEFT JOIN {_FAILED} f ON f.resource = :target AND f.sourced_id = {ref} "
        "WHERE s.import_id = :import_id AND s.status = 'active' "
        f"AND ({ref} IS NULL OR f.sourced_id IS NOT NULL OR NOT {_target_exists(conn, reference.target, ref, scope)})"
    )
    params = {
        "import_id": scope.import_id,
        "district_id": scope.district_id,
        "school_year": scope.school_year,
        "target": reference.target,
    }
    rows = conn.execute(sa.text(sql), params)
    return [(r[0], r[1], r[2], bool(r[3])) for r in rows]


def _remember_failed(conn: sa.Connection, resource_name: str, sourced_ids: Iterable[str]) -> None:
    rows = [{"resource": resource_name, "sourced_id": s} for s in set(sourced_ids)]
    if rows:
        conn.execute(
            sa.text(
                f"INSERT INTO {_FAILED} (resource, sourced_id) VALUES (:resource, :sourced_id) ON CONFLICT DO NOTHING"
            ),
            rows,
        )


def _reference_reject(
    district_id: str,
    resource_name: str,
    sourced_id: str,
    raw: Any,
    field: str,
    target: str,
    missing: str | None,
    rejected: bool,
    delta: bool,
) -> Reject:
    label = record_label(district_id, resource_name, sourced_id)
    if missing is None:
        why = f"field {field!r} must reference a {target} record, but it is empty"
    elif rejected:
        why = f"field {field!r} references {target} {missing!r}, which was itself rejected in this import"
    else:
        where = "this import nor the published roster" if delta else "this import"
        why = f"field {field!r} references {target} {missing!r}, which is not an active record in {where}"
    return Reject(
        resource=resource_name,
        sourced_id=sourced_id,
        field=field,
        check=REFERENCE_CHECK,
        value=clip(missing),
        message=f"{label}: {why}",
        severity="error",
        raw=orjson.loads(raw) if isinstance(raw, str | bytes) else raw,
    )


def _session_failures(conn: sa.Connection, scope: _Scope) -> list[Reject]:
    """Every term/semester/gradingPeriod needs a parent, and its parent chain must reach a schoolYear.

    Sessions are a handful of rows per district, so the chain is walked in Python over one fetch.
    """
    tables = staging.for_import(scope.import_id, "academic_sessions")
    s, p = tables.staging, tables.published
    staged = conn.execute(
        sa.select(s.c.sourced_id, s.c.status, s.c.type, s.c.parent_sourced_id, s.c.raw).where(
            s.c.import_id == scope.import_id
        )
    ).all()
    nodes: dict[str, tuple[str | None, str | None]] = {
        r.sourced_id: (r.type, r.parent_sourced_id) for r in staged if r.status == "active"
    }
    if scope.delta:
        restaged = {r.sourced_id for r in staged}
        published = conn.execute(
            sa.select(p.c.sourced_id, p.c.type, p.c.parent_sourced_id).where(
                p.c.district_id == scope.district_id,
                p.c.school_year == scope.school_year,
                p.c.deleted_at.is_(None),
                p.c.status == "active",
            )
        )
        for known in published:
            if known.sourced_id not in restaged:
                nodes[known.sourced_id] = (known.type, known.parent_sourced_id)

    reaches: dict[str, bool] = {}

    def reaches_year(start: str) -> bool:
        """Walk parents up to a schoolYear; a missing link or a cycle means unreachable (memoised)."""
        path: list[str] = []
        current: str | None = start
        while True:
            if current in reaches:
                verdict = reaches[current]
                break
            if current is None or current not in nodes or current in path:
                verdict = False
                break
            path.append(current)
            kind, parent = nodes[current]
            if kind == "schoolYear":
                verdict = True
                break
            current = parent
        for node in path:
            reaches[node] = verdict
        return verdict

    rejects = []
    for row in staged:
        if row.status != "active" or row.type == "schoolYear":
            continue
        parent = row.parent_sourced_id
        label = record_label(scope.district_id, "academic_sessions", row.sourced_id)
        if parent is None:
            why = f"a {row.type} session needs a 'parent.sourcedId' leading to its schoolYear session"
        elif parent not in nodes:
            where = "this import nor the published roster" if scope.delta else "this import"
            why = (
                f"field 'parent.sourcedId' references academic_sessions {parent!r}, which is not an active "
                f"record in {where}"
            )
        elif not reaches_year(row.sourced_id):
            why = f"no schoolYear session is reachable through its parents (from {parent!r})"
        else:
            continue
        rejects.append(
            Reject(
                resource="academic_sessions",
                sourced_id=row.sourced_id,
                field="parent.sourcedId",
                check=REFERENCE_CHECK,
                value=clip(parent),
                message=f"{label}: {why}",
                severity="error",
                raw=orjson.loads(row.raw),
            )
        )
    return rejects


def _dedupe(rejects: Iterable[Reject]) -> list[Reject]:
    """One Reject per (record, field, value): staged duplicates and repeated list entries collapse."""
    seen: set[tuple[str, str | None, str, str | None]] = set()
    unique = []
    for reject in rejects:
        key = (reject.resource, reject.sourced_id, reject.field, reject.value)
        if key not in seen:
            seen.add(key)
            unique.append(reject)
    return unique


def find_reference_failures(
    conn: sa.Connection, import_id: int, district_id: str, sync_mode: str
) -> list[Reject]:
    """Every broken reference of the import's active staged records (check "reference"), cascades included.

    Read-only for the warehouse: it only creates (and drops) a temporary table on ``conn``.  It reads only
    the import's own staging tables and its district's published rows, and analyses nothing: call
    ``Warehouse.analyze_staging`` before, outside the transaction (an ANALYZE here would hold its lock
    until the caller commits).
    """
    scope = _scope(conn, import_id, district_id, sync_mode)
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SET LOCAL work_mem = '128MB'"))
    conn.execute(
        sa.text(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_FAILED} "
            "(resource TEXT NOT NULL, sourced_id TEXT NOT NULL, PRIMARY KEY (resource, sourced_id))"
        )
    )
    conn.execute(sa.text(f"DELETE FROM {_FAILED}"))
    try:
        rejects = _session_failures(conn, scope)
        _remember_failed(conn, "academic_sessions", (r.sourced_id for r in rejects if r.sourced_id))
        for reference in REFERENCES:
            found = [
                _reference_reject(
                    district_id,
                    reference.resource,
                    sourced_id,
                    raw,
                    reference.field,
                    reference.target,
                    missing,
                    rejected,
                    scope.delta,
                )
                for sourced_id, raw, missing, rejected in _broken(conn, reference, scope)
            ]
            _remember_failed(conn, reference.resource, (r.sourced_id for r in found if r.sourced_id))
            rejects.extend(found)
    finally:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {_FAILED}"))
    return _dedupe(rejects)


def find_reference_warnings(conn: sa.Connection, import_id: int, district_id: str) -> list[Reject]:
    """Cross-resource warnings: an active scheduled class without an active teacher enrollment.

    For a delta import a class's unchanged (published, not re-sent) teacher enrollments count too.
    """
    scope = _scope(conn, import_id, district_id, None)
    classes = _quote(conn, staging.for_import(scope.import_id, "classes").staging.name)
    enrollments = staging.for_import(scope.import_id, "enrollments")
    stg = _quote(conn, enrollments.staging.name)
    pub = _quote(conn, enrollments.published.name)
    # Uncorrelated NOT IN: evaluated once as a hashed set on both engines (the class_sourced_id column has
    # no index in staging, so a correlated probe per class would rescan the import's enrollments).
    teachers = (
        f"SELECT e.class_sourced_id FROM {stg} e WHERE e.import_id = :import_id AND e.status = 'active' "
        "AND e.role = 'teacher' AND e.class_sourced_id IS NOT NULL"
    )
    published_teachers = (
        f"SELECT p.class_sourced_id FROM {pub} p WHERE p.district_id = :district_id "
        "AND p.school_year = :school_year AND p.deleted_at IS NULL AND p.status = 'active' "
        "AND p.role = 'teacher' AND p.class_sourced_id IS NOT NULL "
        f"AND p.sourced_id NOT IN (SELECT e2.sourced_id FROM {stg} e2 WHERE e2.import_id = :import_id)"
    )
    sql = (
        f"SELECT c.sourced_id FROM {classes} c WHERE c.import_id = :import_id AND c.status = 'active' "
        f"AND c.class_type = 'scheduled' AND c.sourced_id NOT IN ({teachers})"
    )
    if scope.delta:
        sql += f" AND c.sourced_id NOT IN ({published_teachers})"
    params = {
        "import_id": scope.import_id,
        "district_id": scope.district_id,
        "school_year": scope.school_year,
    }
    found = sorted({row[0] for row in conn.execute(sa.text(sql), params)})
    return [
        Reject(
            resource="classes",
            sourced_id=sourced_id,
            field="*",
            check=CLASS_WITHOUT_TEACHER,
            value=None,
            message=(
                f"{record_label(district_id, 'classes', sourced_id)}: scheduled class has no active teacher "
                "enrollment, so no teacher will see it"
            ),
            severity="warning",
        )
        for sourced_id in found
    ]
