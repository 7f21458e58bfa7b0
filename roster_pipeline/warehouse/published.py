"""Which import the published rows of a district reflect: one query, run on the caller's connection.

Three callers need it (a delta counts from it, the derived tables record it, the status table shows it),
and the derived rebuild needs it inside its own transaction, so it takes a connection rather than opening
one; ``Warehouse.last_published_import`` wraps it for everyone else.
"""

from __future__ import annotations

import sqlalchemy as sa

from .schema import import_runs


def latest_published_import_id(
    conn: sa.Connection,
    district_id: str,
    *,
    school_year: int | None = None,
    before_import_id: int | None = None,
    sync_mode: str | None = None,
) -> int | None:
    """The district's latest published import, optionally of one school year, before an import, or of a mode."""
    query = sa.select(sa.func.max(import_runs.c.import_id)).where(
        import_runs.c.district_id == district_id, import_runs.c.status == "published"
    )
    if school_year is not None:
        query = query.where(import_runs.c.school_year == int(school_year))
    if before_import_id is not None:
        query = query.where(import_runs.c.import_id < before_import_id)
    if sync_mode is not None:
        query = query.where(import_runs.c.sync_mode == sync_mode)
    found = conn.execute(query).scalar()
    return None if found is None else int(found)
