"""Classify an import's staged records once, in SQL: the ``change`` column of its staging tables.

Every reader of a staged snapshot (the per-resource diff of the stage step, the change and school
summaries, the field diff, the publish) used to re-join the whole staging table with the published rows
(1M enrollments: seconds per join, five times per import).  Instead, one pass per resource writes what
publishing will do with each staged row into ``stg_<resource>_<import_id>.change`` and, for a full import,
the published rows its pull no longer has into ``vanished_<import_id>``; everything else reads those:
counting is one ``GROUP BY change`` over the staging table.

Values of ``change`` (the classification table of ``diff.py``; the pass leaves the common one NULL, see
``classify_resource``: ``unmarked_change`` says which one that is):

===================  =====================================================================
``added``            active record, no published row (inserted)
``readded``          active record, published row soft-deleted (deleted_at cleared)
``unchanged``        active record, alive published row with the same hash (not touched)
``updated``          active record, alive published row with another hash (old version → history)
``deleted``          ``tobedeleted`` record of an alive published row (soft-deleted)
``new_tobedeleted``  ``tobedeleted`` record never published (inserted soft-deleted)
``already_deleted``  ``tobedeleted`` record of a deleted published row (nothing to do)
===================  =====================================================================

When the classification stays right, and when it must be redone:

* rows withdrawn from staging after the pass (the quarantine's ``reject_staged``, an additions_only
  import's withheld deletions) simply drop out of the aggregate;
* vanished rows are filtered when read: a record quarantined (or a resource with an unreadable id, see
  ``scope.unreadable_id_sql``) after the pass never counts as vanished;
* staging more rows for a resource clears its ``classified_watermark`` (``Warehouse.stage``): the next
  reader classifies again (duplicates are removed first, so a record is classified once);
* the district's published rows changed since the pass (another import published, an undo, a purge):
  ``published_watermark`` differs from the one recorded, and the pass runs again — inside the publish
  transaction too, under the district lock, so a held import approved days later publishes against what
  is published *then*.
"""

from __future__ import annotations

import sqlalchemy as sa

from .counts import ChangeCounts
from .schema import ResourceTables, data_purges, import_resource_counts, import_runs
from .scope import Scope, published_scope, quarantined_ids, unreadable_id
from .staging import vanished_for

#: Rows whose published version the publish replaces (history + UPDATE), and rows it inserts.
REPLACES: tuple[str, ...] = ("updated", "readded", "deleted")
INSERTS: tuple[str, ...] = ("added", "new_tobedeleted")
CHANGES: tuple[str, ...] = (
    "added",
    "readded",
    "unchanged",
    "updated",
    "deleted",
    "new_tobedeleted",
    "already_deleted",
)


def published_watermark(conn: sa.Connection, district_id: str) -> str:
    """What the district's published rows are the result of: the latest import published (or undone),
    how many were undone, and the latest purge.  Any publish, undo or purge of the district changes it."""
    r = import_runs.c
    top, undone = conn.execute(
        sa.select(
            sa.func.max(sa.case((r.status.in_(("published", "undone")), r.import_id), else_=None)),
            sa.func.coalesce(sa.func.sum(sa.case((r.status == "undone", 1), else_=0)), 0),
        ).where(r.district_id == district_id)
    ).one()
    purged = conn.execute(
        sa.select(sa.func.max(data_purges.c.purge_id)).where(data_purges.c.district_id == district_id)
    ).scalar()
    return f"{int(top or 0)}:{int(undone or 0)}:{int(purged or 0)}"


def _tobedeleted(status: sa.ColumnElement[str | None]) -> sa.ColumnElement[bool]:
    return sa.func.lower(sa.func.coalesce(status, "")) == "tobedeleted"


def _unmatched(status: sa.ColumnElement[str | None]) -> sa.ColumnElement[str]:
    return sa.case((_tobedeleted(status), "new_tobedeleted"), else_="added")


def anything_published(conn: sa.Connection, t: ResourceTables, scope: Scope) -> bool:
    """Any published row (alive or not) of the resource in the scope: else there is nothing to join."""
    query = sa.select(sa.literal(1)).select_from(t.published).where(*published_scope(t, scope)).limit(1)
    return conn.execute(query).first() is not None


def classify_resource(
    conn: sa.Connection, t: ResourceTables, scope: Scope, marked_before: bool = True
) -> str:
    """Set ``change`` on the staged rows of the resource, and (full import) record its vanished rows;
    returns the change of the rows left unmarked (NULL): ``added`` or ``unchanged``.

    Call after ``deduplicate`` and ``purge_quarantined`` (one row per record).  Rewriting a row is what
    costs (Postgres writes a new version of the whole row and its index entries: 1M enrollments, 13 s
    for a constant), so the pass writes only rows whose change is not the common one: nothing published
    (a first import) → no join, only ``new_tobedeleted`` rows are marked and NULL means ``added``; else one
    UPDATE from the staging table left-joined with the published rows of the scope marks every row that is
    not ``unchanged``, and NULL means ``unchanged`` (a nightly sync that changes little writes little).
    ``marked_before=False``: no pass ever ran on these rows (nothing to reset first).
    """
    s = t.staging
    vanished = _vanished_table(scope)
    conn.execute(sa.delete(vanished).where(vanished.c.resource == t.resource.name))
    if marked_before:  # a previous pass's marks
        conn.execute(sa.update(s).where(s.c.change.is_not(None)).values(change=None))
    if not anything_published(conn, t, scope):  # the first import of the district (or of the school year)
        conn.execute(sa.update(s).where(_tobedeleted(s.c.status)).values(change="new_tobedeleted"))
        return "added"
    p = t.published.c
    s2 = s.alias("s2")
    tbd = _tobedeleted(s2.c.status)
    change = sa.case(
        (p.sourced_id.is_(None), _unmatched(s2.c.status)),
        (sa.and_(tbd, p.deleted_at.is_(None)), "deleted"),
        (tbd, "already_deleted"),
        (p.deleted_at.is_not(None), "readded"),
        (p.record_hash == s2.c.record_hash, "unchanged"),
        else_="updated",
    )
    classified = (
        sa.select(s2.c.row_id, change.label("change"))
        .select_from(
            s2.outerjoin(t.published, sa.and_(*published_scope(t, scope), p.sourced_id == s2.c.sourced_id))
        )
        .subquery("classified")
    )
    conn.execute(
        sa.update(s)
        .where(s.c.row_id == classified.c.row_id, classified.c.change != "unchanged")
        .values(change=classified.c.change)
    )
    if scope.full:
        # import_id too: the staging index is (import_id, sourced_id), and a published table loaded by the
        # previous publish may have no statistics yet (the planner then probes per published row).
        staged = sa.select(sa.literal(1)).where(
            s.c.import_id == scope.import_id, s.c.sourced_id == p.sourced_id
        )
        conn.execute(
            vanished.insert().from_select(
                ["resource", "sourced_id"],
                sa.select(sa.literal(t.resource.name, type_=sa.Text), p.sourced_id).where(
                    *published_scope(t, scope), p.deleted_at.is_(None), sa.not_(sa.exists(staged))
                ),
            )
        )
    return "unchanged"


def is_change(
    s: sa.ColumnCollection[str, sa.Column[object]], unmarked: str, changes: tuple[str, ...]
) -> sa.ColumnElement[bool]:
    """The staged row's change is one of ``changes`` (``unmarked``: what a NULL stands for)."""
    condition = s.change.in_(changes)
    return sa.or_(condition, s.change.is_(None)) if unmarked in changes else condition


def change_of(s: sa.ColumnCollection[str, sa.Column[object]], unmarked: str) -> sa.ColumnElement[str]:
    return sa.func.coalesce(s.change, sa.literal(unmarked, type_=sa.Text))


def unmarked_change(conn: sa.Connection, import_id: int, resource_name: str) -> str:
    """What an unmarked (NULL) ``change`` of the resource's staging rows stands for (``added`` when the
    resource has no counts row: then nothing of it was staged)."""
    c = import_resource_counts.c
    value = conn.execute(
        sa.select(c.unmarked_change).where(c.import_id == import_id, c.resource == resource_name)
    ).scalar()
    return value or "added"


def _vanished_table(scope: Scope) -> sa.Table:

    return vanished_for(scope.import_id)


def vanished_rows(t: ResourceTables, scope: Scope) -> sa.Select[tuple[str]]:
    """sourcedIds of the resource's published rows the full import soft-deletes: recorded by the pass,
    minus records quarantined since, and none at all once a record's id could not be read."""
    v = _vanished_table(scope)
    return sa.select(v.c.sourced_id).where(
        v.c.resource == t.resource.name,
        v.c.sourced_id.not_in(quarantined_ids(t, scope.import_id)),
        sa.not_(unreadable_id(t, scope.import_id)),
    )


def count(
    conn: sa.Connection,
    t: ResourceTables,
    scope: Scope,
    fetched: int,
    quarantined: int = 0,
    withheld: int = 0,
    unmarked: str | None = None,
) -> ChangeCounts:
    """The resource's ChangeCounts from its classified staging rows: one aggregate, no join."""
    s = t.staging.c
    if unmarked is None:
        unmarked = unmarked_change(conn, scope.import_id, t.resource.name)
    n: dict[str, int] = {}
    for change, rows in conn.execute(
        sa.select(s.change, sa.func.count()).where(s.import_id == scope.import_id).group_by(s.change)
    ):
        key = unmarked if change is None else change
        n[key] = n.get(key, 0) + int(rows)
    vanished = 0
    if scope.full:
        vanished = int(
            conn.execute(
                sa.select(sa.func.count()).select_from(vanished_rows(t, scope).subquery())
            ).scalar_one()
        )
    distinct = sum(n.values())
    return ChangeCounts(
        fetched=fetched,
        added=n.get("added", 0) + n.get("readded", 0),
        updated=n.get("updated", 0),
        deleted=n.get("deleted", 0) + vanished,
        unchanged=n.get("unchanged", 0),
        tobedeleted=n.get("deleted", 0) + n.get("new_tobedeleted", 0) + n.get("already_deleted", 0),
        duplicates=max(fetched - quarantined - withheld - distinct, 0),
        readded=n.get("readded", 0),
        new_tobedeleted=n.get("new_tobedeleted", 0),
        quarantined=quarantined,
        withheld=withheld,
    )


def withhold_deletions(conn: sa.Connection, t: ResourceTables, scope: Scope) -> int:
    """additions_only (rollover window): withdraw the staged deletions of alive rows (``deleted``).

    Such an import adds and updates but never deletes: the alive row stays exactly as published (its
    tobedeleted version is not stored either, or the row would say ``tobedeleted`` while alive).  The
    caller also treats the import as not full, so nothing vanishes.  Records first seen as tobedeleted
    are kept: storing them soft-deleted deletes nothing.  Returns staged rows withdrawn.
    """
    s = t.staging.c
    removed = conn.execute(
        sa.delete(t.staging).where(s.import_id == scope.import_id, s.change == "deleted")
    ).rowcount
    return int(removed or 0)
