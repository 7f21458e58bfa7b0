"""SQL of the derived tables: read a district's published (current) rows, replace its derived rows.

Reads go through the ``current_<resource>`` views (alive rows of the current school year), never the
staging tables, so a held or running import can never show in a derived table.  A rebuild replaces the
district's rows and records its warnings in ONE transaction (on Postgres at REPEATABLE READ, so every
page reads the same published state): readers see the old table or the new one, never half of each.
Students are read in pages by sourcedId (keyset), so a district with 150,000 students is never held in
memory at once; class teachers come from two plain queries (the classes, and the teaching enrollments:
a few rows per class).
The rules that turn the rows into the tables are in ``roster_pipeline.derived`` (Python, so SQLite and
Postgres give identical results); this module only moves rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from .archive import current_view_name
from .schema import class_teachers, derived_warnings, student_logins

DERIVED_TABLES: dict[str, sa.Table] = {"class_teachers": class_teachers, "student_logins": student_logins}
PAGE_SIZE = 5_000  # students read per query

_classes = sa.table(
    current_view_name("classes"), sa.column("district_id"), sa.column("school_year"), sa.column("sourced_id")
)
_enrollments = sa.table(
    current_view_name("enrollments"),
    sa.column("district_id"),
    sa.column("school_year"),
    sa.column("class_sourced_id"),
    sa.column("user_sourced_id"),
    sa.column("role"),
    sa.column("primary"),
)
_users = sa.table(
    current_view_name("users"),
    sa.column("district_id"),
    sa.column("sourced_id"),
    sa.column("family_name"),
    sa.column("given_name"),
    sa.column("role"),
    sa.column("email"),
    sa.column("username"),
)


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


def current_classes(conn: sa.Connection, district_id: str) -> list[tuple[str, int]]:
    """The district's current classes as (sourcedId, school year)."""
    query = sa.select(_classes.c.sourced_id, _classes.c.school_year).where(
        _classes.c.district_id == district_id
    )
    return [(str(sourced_id), int(year)) for sourced_id, year in conn.execute(query)]


def teaching_enrollments(conn: sa.Connection, district_id: str, roles: Sequence[str]) -> list[sa.RowMapping]:
    """The district's current enrollments in ``roles`` with the enrolled person's names (NULL when the
    user is not published: the reference checks normally quarantine such enrollments).

    Deliberately not joined to the classes: enrollments have no index on their class, and a planner that
    misjudges the classes (it did, on a fresh district) rescans every enrollment once per class.  One scan
    of the enrollments, each person found by the users' primary key; a few rows per class come back.
    """
    e, u = _enrollments.c, _users.c
    joined = _enrollments.outerjoin(
        _users, sa.and_(u.district_id == e.district_id, u.sourced_id == e.user_sourced_id)
    )
    query = (
        sa.select(
            e.class_sourced_id,
            e.school_year,
            e.user_sourced_id,
            e.role,
            e.primary,
            u.family_name,
            u.given_name,
        )
        .select_from(joined)
        .where(e.district_id == district_id, e.role.in_(list(roles)))
    )
    return list(conn.execute(query).mappings())


def student_pages(
    conn: sa.Connection, district_id: str, page_size: int = PAGE_SIZE
) -> Iterator[Sequence[sa.Row]]:
    """The district's current students (sourced_id, family_name, given_name, email, username), a page at
    a time."""
    u = _users.c
    after: str | None = None
    while True:
        query = sa.select(u.sourced_id, u.family_name, u.given_name, u.email, u.username).where(
            u.district_id == district_id, u.role == "student"
        )
        if after is not None:
            query = query.where(u.sourced_id > after)
        page = conn.execute(query.order_by(u.sourced_id).limit(page_size)).all()
        if not page:
            return
        yield page
        after = str(page[-1].sourced_id)


def clear_district(conn: sa.Connection, table_name: str, district_id: str) -> None:
    table = DERIVED_TABLES[table_name]
    conn.execute(sa.delete(table).where(table.c.district_id == district_id))


def columns(table_name: str) -> tuple[str, ...]:
    """The table's columns, in the order ``insert_rows`` takes each row's values."""
    return tuple(c.name for c in DERIVED_TABLES[table_name].columns)


def insert_rows(conn: sa.Connection, table_name: str, values: Sequence[tuple[Any, ...]]) -> int:
    """Bulk-write rows (tuples in ``columns(table_name)`` order) in the connection's transaction: COPY on
    Postgres (psycopg 3), one executemany on SQLite; both past SQLAlchemy's per-row processing, which
    tripled the time of 150,000 students."""
    if not values:
        return 0
    table = DERIVED_TABLES[table_name]
    columns = [c.name for c in table.columns]
    preparer = conn.dialect.identifier_preparer
    quoted = ", ".join(preparer.quote(c) for c in columns)
    driver = conn.connection.driver_connection
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        with driver.cursor() as cursor:  # type: ignore[union-attr]  # Optional in SQLAlchemy's types; never None once checked out
            with cursor.copy(f"COPY {preparer.quote(table.name)} ({quoted}) FROM STDIN") as copy:
                for value in values:
                    copy.write_row(value)
        return len(values)
    if conn.dialect.name != "sqlite":
        conn.execute(
            table.insert(), [dict(zip(columns, value, strict=True)) for value in values]
        )  # another driver
        return len(values)
    placeholders = ", ".join("?" * len(columns))
    cursor = driver.cursor()  # type: ignore[union-attr]  # Optional in SQLAlchemy's types; never None once checked out
    try:
        cursor.executemany(
            f"INSERT INTO {preparer.quote(table.name)} ({quoted}) VALUES ({placeholders})", values
        )
    finally:
        cursor.close()
    return len(values)


def record_warnings(
    conn: sa.Connection, district_id: str, import_id: int, table_name: str, warnings: Sequence[DerivedWarning]
) -> None:
    """The rebuild's findings for the import it read, replacing those of an earlier rebuild of that import."""
    w = derived_warnings.c
    conn.execute(sa.delete(derived_warnings).where(w.import_id == import_id, w.table_name == table_name))
    now = datetime.now(UTC)
    rows = [
        {
            "district_id": district_id,
            "import_id": import_id,
            "table_name": table_name,
            "check_name": warning.check,
            "count": warning.count,
            "sample_ids": json.dumps(warning.sample_ids),
            "message": warning.message,
            "recorded_at": now,
        }
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
            .where(w.import_id == import_id)
            .order_by(w.table_name, w.warning_id)
        ).all()
    return [DerivedWarning(t, c, int(n), list(json.loads(s)), m) for t, c, n, s, m in rows]


def derived_rows(engine: sa.Engine, table_name: str, district_id: str) -> list[dict[str, Any]]:
    """A district's derived rows in their natural order (class, display order; student): for tests and
    the CLI; consumers query the table."""
    table = DERIVED_TABLES[table_name]
    order = (
        [table.c.class_sourced_id, table.c.display_order]
        if table_name == "class_teachers"
        else [table.c.student_sourced_id]
    )
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                sa.select(table).where(table.c.district_id == district_id).order_by(*order)
            ).mappings()
        ]
