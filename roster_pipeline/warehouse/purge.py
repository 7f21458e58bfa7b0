"""Hard deletion of one resource's data for one district, for data a district no longer lets us keep.

Everything else in the warehouse is soft-deleted and versioned, because an import must be explainable
and reversible.  Personal data a district has switched off (``pii: demographics: false``) is the
exception: the admin expects it gone, so every copy of it goes — published rows, their history,
staging rows of any import, quarantined records (which keep the raw record) and per-field diffs (which
keep old and new values).  Counts in ``import_resource_counts`` stay: they hold no personal data and
keep past imports explainable.  Each purge that removed anything is recorded in ``data_purges``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from . import staging
from .locks import lock_district_writes
from .schema import (
    TABLES,
    data_purges,
    import_field_changes,
    import_resource_counts,
    import_runs,
    rejected_records,
)

# Imports whose snapshot is still in staging: their counts row for the purged resource goes too, so a
# later approve cannot mistake the emptied staging for a snapshot (it would publish "nothing fetched").
_PENDING = ("running", "staged", "held", "dry_run", "failed")


@dataclass(frozen=True)
class PurgeCounts:
    """Rows removed per place; all zero when there was nothing to purge."""

    published_rows: int = 0
    history_rows: int = 0
    staging_rows: int = 0
    rejected_rows: int = 0
    field_change_rows: int = 0

    @property
    def total(self) -> int:
        return (
            self.published_rows
            + self.history_rows
            + self.staging_rows
            + self.rejected_rows
            + self.field_change_rows
        )


def purge_resource(
    conn: sa.Connection,
    district_id: str,
    resource_name: str,
    import_id: int | None,
    reason: str,
    now: datetime,
) -> PurgeCounts:
    """Delete every row of ``resource_name`` the district has, in the caller's transaction; record it.

    Scoped by ``district_id`` literally in every statement: another district's rows, even with the same
    sourcedIds, are never touched.
    """
    t = TABLES[resource_name]
    lock_district_writes(conn, district_id)  # never interleaves with a publish or undo of the district

    def delete(statement: sa.Delete) -> int:
        return int(conn.execute(statement).rowcount or 0)

    pending = sa.select(import_runs.c.import_id).where(
        import_runs.c.district_id == district_id, import_runs.c.status.in_(_PENDING)
    )
    staged_rows = 0
    present = staging.existing(conn)  # each import stages into tables of its own, whatever its status
    of_district = sa.select(import_runs.c.import_id).where(import_runs.c.district_id == district_id)
    for staged_id in conn.execute(of_district).scalars():
        if resource_name in present.get(int(staged_id), set()):
            staged_rows += delete(sa.delete(staging.for_import(staged_id, resource_name).staging))
    counts = PurgeCounts(
        published_rows=delete(sa.delete(t.published).where(t.published.c.district_id == district_id)),
        history_rows=delete(sa.delete(t.history).where(t.history.c.district_id == district_id)),
        staging_rows=staged_rows,
        rejected_rows=delete(
            sa.delete(rejected_records).where(
                rejected_records.c.district_id == district_id, rejected_records.c.resource == resource_name
            )
        ),
        field_change_rows=delete(
            sa.delete(import_field_changes).where(
                import_field_changes.c.district_id == district_id,
                import_field_changes.c.resource == resource_name,
            )
        ),
    )
    conn.execute(
        sa.delete(import_resource_counts).where(
            import_resource_counts.c.resource == resource_name,
            import_resource_counts.c.import_id.in_(pending),
        )
    )
    if counts.total:
        conn.execute(
            data_purges.insert().values(
                district_id=district_id,
                resource=resource_name,
                import_id=import_id,
                reason=reason[:2000],
                purged_at=now,
                published_rows=counts.published_rows,
                history_rows=counts.history_rows,
                staging_rows=counts.staging_rows,
                rejected_rows=counts.rejected_rows,
                field_change_rows=counts.field_change_rows,
            )
        )
    return counts


def purges(conn: sa.Connection, district_id: str) -> list[dict[str, object]]:
    """The district's recorded purges, oldest first."""
    rows = conn.execute(
        sa.select(data_purges)
        .where(data_purges.c.district_id == district_id)
        .order_by(data_purges.c.purge_id)
    ).mappings()
    return [dict(row) for row in rows]
