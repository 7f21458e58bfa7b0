"""School years in the warehouse: archiving at rollover, the "current" views, and the past-year guard.

OneRoster serves only the active school year, and the year-scoped resources (academic_sessions,
courses, classes, enrollments) are keyed by (district_id, school_year, sourced_id), so an import of a
new year writes new rows and can never touch an old year's.  What this module adds:

* **archive** — when a district's first import of a newer school year publishes, every row of its older
  years is stamped ``archived_at`` in the same transaction.  Archived rows are kept as they were (alive
  or soft-deleted, with their history) and stay queryable in the base tables; they simply leave the
  ``current_<resource>`` views and ``Warehouse.current_counts``.
* **current views** — ``current_<resource>`` for every resource: alive rows (``deleted_at IS NULL``),
  and for year-scoped resources not archived, i.e. the district's current school year only.
* **past-year guard** — an import for a school year older than the district's latest published one is
  refused when it is opened and again when it would publish: an old year is frozen after rollover.

The "current school year" of a district is the school year of its latest published import.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from .schema import TABLES, import_runs


class PastSchoolYearError(RuntimeError):
    """An import asked for a school year older than the district's current one (frozen after rollover)."""

    def __init__(self, district_id: str, school_year: int, current: int) -> None:
        self.district_id = district_id
        self.school_year = school_year
        self.current = current
        super().__init__(
            f"district {district_id!r}: school year {school_year} is in the past (the district's current school "
            f"year is {current}, published and archived at rollover); a past school year can never be imported "
            "into again. Its rows stay queryable in the base tables (archived_at set); check the SIS's active "
            "school year or the registry's school_year override"
        )


def year_scoped_tables() -> list[sa.Table]:
    return [t.published for t in TABLES.values() if t.resource.year_scoped]


def current_school_year(
    conn: sa.Connection, district_id: str, exclude_import: int | None = None
) -> int | None:
    """The school year of the district's latest published import (None before the first publish)."""
    query = sa.select(sa.func.max(import_runs.c.school_year)).where(
        import_runs.c.district_id == district_id, import_runs.c.status == "published"
    )
    if exclude_import is not None:
        query = query.where(import_runs.c.import_id != exclude_import)
    value = conn.execute(query).scalar()
    return None if value is None else int(value)


def refuse_past_year(
    conn: sa.Connection, district_id: str, school_year: int, exclude_import: int | None = None
) -> int | None:
    """Raise PastSchoolYearError when ``school_year`` is older than the current one; returns the current."""
    current = current_school_year(conn, district_id, exclude_import)
    if current is not None and int(school_year) < current:
        raise PastSchoolYearError(district_id, int(school_year), current)
    return current


def archive_before(conn: sa.Connection, district_id: str, school_year: int, now: datetime) -> dict[str, int]:
    """Stamp ``archived_at`` on the district's year-scoped rows of years before ``school_year``.

    Called by publish when the import's year is newer than the district's current one, in the publish
    transaction: the new year appears and the old one leaves the current views atomically.
    Returns {resource: rows archived}.
    """
    archived: dict[str, int] = {}
    for table in year_scoped_tables():
        c = table.c
        result = conn.execute(
            sa.update(table)
            .where(c.district_id == district_id, c.school_year < int(school_year), c.archived_at.is_(None))
            .values(archived_at=now)
        )
        archived[table.name] = int(result.rowcount or 0)
    return archived


def archive_superseded_years(conn: sa.Connection, now: datetime) -> None:
    """Every district at once (the schema v3 migration): archive years older than its current one."""
    for table in year_scoped_tables():
        c = table.c
        latest = (
            sa.select(sa.func.max(import_runs.c.school_year))
            .where(import_runs.c.status == "published", import_runs.c.district_id == c.district_id)
            .scalar_subquery()
        )
        conn.execute(
            sa.update(table).where(c.archived_at.is_(None), c.school_year < latest).values(archived_at=now)
        )


def school_years(conn: sa.Connection, district_id: str) -> dict[int, dict[str, int]]:
    """{school_year: {resource: alive rows}} over every year the warehouse holds for the district,
    archived years included (what a data engineer checks after a rollover)."""
    out: dict[int, dict[str, int]] = {}
    for table in year_scoped_tables():
        c = table.c
        rows = conn.execute(
            sa.select(c.school_year, sa.func.count())
            .where(c.district_id == district_id, c.deleted_at.is_(None))
            .group_by(c.school_year)
        )
        for year, count in rows:
            out.setdefault(int(year), {})[table.name] = int(count)
    return dict(sorted(out.items()))


def current_view_name(resource_name: str) -> str:
    return f"current_{resource_name}"


def _view_sql(conn: sa.Connection, resource_name: str) -> str:
    tables = TABLES[resource_name]
    quote = conn.dialect.identifier_preparer.quote
    where = "deleted_at IS NULL"
    if tables.resource.year_scoped:
        where += " AND archived_at IS NULL"
    return f"CREATE VIEW {quote(current_view_name(resource_name))} AS SELECT * FROM {quote(tables.published.name)} WHERE {where}"


def create_current_views(conn: sa.Connection) -> list[str]:
    """Create the missing ``current_<resource>`` views (idempotent; called by ``create_schema``).

    ``SELECT *`` is expanded when the view is created on Postgres: a later migration that adds columns to
    a published table must drop its view so that this step recreates it.
    """
    existing = set(sa.inspect(conn).get_view_names())
    created = []
    for name in TABLES:
        if current_view_name(name) not in existing:
            conn.execute(sa.text(_view_sql(conn, name)))
            created.append(current_view_name(name))
    return created
