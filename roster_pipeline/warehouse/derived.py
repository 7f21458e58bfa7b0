"""SQL of the derived tables: read a district's published (current) rows, replace its derived rows.

Reads go through the ``current_<resource>`` views (alive rows of the current school year), never the
staging tables, so a held or running import can never show in a derived table.  A rebuild replaces the
district's rows and records its warnings in ONE transaction (on Postgres at REPEATABLE READ, so every
page reads the same published state): readers see the old table or the new one, never half of each.
Reads are paged by sourcedId (keyset), so a district with 150,000 students is never held in memory.
The rules that turn the rows into the tables are in ``roster_pipeline.derived`` (Python, so SQLite and
Postgres give identical results); this module only moves rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from .archive import current_view_name
from .schema import class_teachers, derived_warnings, import_runs, student_logins

DERIVED_TABLES: dict[str, sa.Table] = {"class_teachers": class_teachers, "student_logins": student_logins}
PAGE_SIZE = 5_000  # classes or students read per query
_IN_CHUNK = 1_000  # class sourcedIds per IN (...) list

_classes = sa.table(current_view_name("classes"), sa.column("district_id"), sa.column("school_year"),
                    sa.column("sourced_id"))
_enrollments = sa.table(current_view_name("enrollments"), sa.column("district_id"), sa.column("school_year"),
                        sa.column("class_sourced_id"), sa.column("user_sourced_id"), sa.column("role"),
                        sa.column("primary"))
_users = sa.table(current_view_name("users"), sa.column("district_id"), sa.column("sourced_id"),
                  sa.column("family_name"), sa.column("given_name"), sa.column("role"), sa.column("email"),
                  sa.column("username"))


@dataclass(frozen=True)
class DerivedWarning:
    """One finding of a rebuild: how many records, the first few sourcedIds, and the sentence an admin reads."""

    table_name: str
    check: str
    count: int
    sample_ids: list[str] = field(default_factory=list)
    message: str = ""


@contextmanager
def rebuilding(engine: sa.Engine) -> Iterator[sa.Connection]:
    """The one transaction of a rebuild; a consistent snapshot of the published rows on Postgres."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def published_import(conn: sa.Connection, district_id: str) -> int | None:
    """The district's latest published import: what the published rows (and so the derived ones) reflect."""
    return conn.execute(
        sa.select(sa.func.max(import_runs.c.import_id)).where(
            import_runs.c.district_id == district_id, import_runs.c.status == "published"
        )
    ).scalar()


def class_pages(conn: sa.Connection, district_id: str, page_size: int = PAGE_SIZE) -> Iterator[list[tuple[str, int]]]:
    """The district's current classes as (sourcedId, school year), a page at a time, in sourcedId order."""
    after: tuple[str, int] | None = None
    while True:
        query = sa.select(_classes.c.sourced_id, _classes.c.school_year).where(_classes.c.district_id == district_id)
        if after is not None:
            query = query.where(sa.or_(_classes.c.sourced_id > after[0],
                                       sa.and_(_classes.c.sourced_id == after[0], _classes.c.school_year > after[1])))
        page = [(str(s), int(y)) for s, y in
                conn.execute(query.order_by(_classes.c.sourced_id, _classes.c.school_year).limit(page_size))]
        if not page:
            return
        yield page
        after = page[-1]


def teacher_enrollments(conn: sa.Connection, district_id: str, class_ids: Sequence[str],
                        roles: Sequence[str]) -> list[Mapping[str, Any]]:
    """The current enrollments in ``roles`` of the given classes, with the enrolled person's names
    (NULL when the user is not published: the reference checks normally quarantine such enrollments)."""
    e, u = _enrollments.c, _users.c
    rows: list[Mapping[str, Any]] = []
    for start in range(0, len(class_ids), _IN_CHUNK):
        chunk = list(class_ids[start:start + _IN_CHUNK])
        query = (
            sa.select(e.class_sourced_id, e.school_year, e.user_sourced_id, e.role, e.primary, u.family_name,
                      u.given_name)
            .select_from(_enrollments.outerjoin(_users, sa.and_(u.district_id == e.district_id,
                                                                u.sourced_id == e.user_sourced_id)))
            .where(e.district_id == district_id, e.role.in_(list(roles)), e.class_sourced_id.in_(chunk))
        )
        rows.extend(conn.execute(query).mappings())
    return rows


def student_pages(conn: sa.Connection, district_id: str, page_size: int = PAGE_SIZE) -> Iterator[list[Mapping[str, Any]]]:
    """The district's current students (sourcedId, names, email, username), a page at a time."""
    u = _users.c
    after: str | None = None
    while True:
        query = sa.select(u.sourced_id, u.family_name, u.given_name, u.email, u.username).where(
            u.district_id == district_id, u.role == "student"
        )
        if after is not None:
            query = query.where(u.sourced_id > after)
        page = list(conn.execute(query.order_by(u.sourced_id).limit(page_size)).mappings())
        if not page:
            return
        yield page
        after = str(page[-1]["sourced_id"])


def clear_district(conn: sa.Connection, table_name: str, district_id: str) -> None:
    table = DERIVED_TABLES[table_name]
    conn.execute(sa.delete(table).where(table.c.district_id == district_id))


def insert_rows(conn: sa.Connection, table_name: str, rows: Sequence[Mapping[str, Any]]) -> int:
    if rows:
        conn.execute(DERIVED_TABLES[table_name].insert(), list(rows))
    return len(rows)


def record_warnings(conn: sa.Connection, district_id: str, import_id: int, table_name: str,
                    warnings: Sequence[DerivedWarning]) -> None:
    """The rebuild's findings for the import it read, replacing those of an earlier rebuild of that import."""
    w = derived_warnings.c
    conn.execute(sa.delete(derived_warnings).where(w.import_id == import_id, w.table_name == table_name))
    now = datetime.now(UTC)
    rows = [
        {"district_id": district_id, "import_id": import_id, "table_name": table_name, "check_name": warning.check,
         "count": warning.count, "sample_ids": json.dumps(warning.sample_ids), "message": warning.message,
         "recorded_at": now}
        for warning in warnings
        if warning.count
    ]
    if rows:
        conn.execute(derived_warnings.insert(), rows)


def warnings_for_import(engine: sa.Engine, import_id: int) -> list[DerivedWarning]:
    """What the rebuilds after an import's publish found, in table then check order (the email reads this)."""
    w = derived_warnings.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(w.table_name, w.check_name, w.count, w.sample_ids, w.message)
            .where(w.import_id == import_id).order_by(w.table_name, w.warning_id)
        ).all()
    return [DerivedWarning(t, c, int(n), list(json.loads(s)), m) for t, c, n, s, m in rows]


def derived_rows(engine: sa.Engine, table_name: str, district_id: str) -> list[dict[str, Any]]:
    """A district's derived rows in their natural order (class, display order; student): for tests and
    the CLI; consumers query the table."""
    table = DERIVED_TABLES[table_name]
    order = ([table.c.class_sourced_id, table.c.display_order] if table_name == "class_teachers"
             else [table.c.student_sourced_id])
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).where(table.c.district_id == district_id)
                                               .order_by(*order)).mappings()]
