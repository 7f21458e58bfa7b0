"""The diff between an import's staged snapshot and what is published, and the set-based publish.

The classification below is computed ONCE per resource and stored in the staging rows' ``change``
column (``classify.py``); ``apply_changes`` publishes from that column.

Everything here is one SQL statement per step (INSERT ... SELECT, UPDATE ... FROM, NOT EXISTS), scoped
to one district (and one school year for year-scoped resources) by literal predicates on the published
table, so two districts can never touch each other's rows and Postgres can use the primary key.

Classification of a distinct staged record ``s`` against the published row ``p`` with the same key:

=====================  ==========================  =============================================
staged status          published row               outcome
=====================  ==========================  =============================================
active (anything but   none                        added (inserted)
``tobedeleted``)       deleted                     added again: ``readded`` (deleted_at cleared)
                       alive, same hash            unchanged (row not touched at all)
                       alive, other hash           updated (old version → history)
``tobedeleted``        alive                       deleted (soft; new content stored, old → history)
                       none                        inserted soft-deleted: ``new_tobedeleted``
                       already deleted             nothing to do (counted as tobedeleted only)
=====================  ==========================  =============================================

plus, for a FULL import only, alive published rows of the district (and school year) with no staged
record: ``vanished`` → soft-deleted, status kept.  A delta never infers deletions from absence.

Quarantined records (an error reject in ``rejected_records`` for this import and resource) are never
in staging (``purge_quarantined`` withdraws any that got there) and never count as vanished: a record
the SIS served but that failed a check keeps its published version exactly as it was.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from . import classify
from .counts import ChangeCounts
from .schema import ResourceTables, rejected_records
from .scope import (  # Scope and _joined are also used through this module (sql.Scope, sql._joined)
    Scope,
    _is_quarantined,
    _joined,
    _raw,
    _tobedeleted,
    published_scope,
    quarantined_ids,
    unreadable_id,
)


def _vanished(t: ResourceTables, scope: Scope) -> sa.ColumnElement[bool]:
    """Alive published rows of the scope the full import neither staged nor quarantined, unless one of
    the import's records of the resource has an id that could not be read (see ``scope.unreadable_id_sql``)."""
    p, s = t.published.c, t.staging.c
    staged = sa.select(sa.literal(1)).where(s.import_id == scope.import_id, s.sourced_id == p.sourced_id)
    return sa.and_(
        *published_scope(t, scope),
        p.deleted_at.is_(None),
        sa.not_(sa.exists(staged)),
        sa.not_(_is_quarantined(t, scope.import_id, p.sourced_id)),
        sa.not_(unreadable_id(t, scope.import_id)),
    )


def purge_quarantined(conn: sa.Connection, t: ResourceTables, import_id: int) -> int:
    """Delete staged rows whose sourcedId has an error reject in this import; returns rows removed.

    Batch checks keep bad records out of staging in the first place; this catches the records found bad
    after staging (referential checks) and anything recorded as rejected yet staged anyway, so that a
    quarantined record can never be published.  One indexed probe when there is nothing to purge.
    """
    r = rejected_records.c
    any_reject = conn.execute(
        sa.select(sa.literal(1))
        .where(r.import_id == import_id, r.resource == t.resource.name, r.severity == "error")
        .limit(1)
    ).first()
    if any_reject is None:
        return 0
    s = t.staging.c
    removed = conn.execute(
        sa.delete(t.staging).where(s.import_id == import_id, s.sourced_id.in_(quarantined_ids(t, import_id)))
    ).rowcount
    return int(removed or 0)


def deduplicate(conn: sa.Connection, t: ResourceTables, import_id: int) -> int:
    """Keep the last staged copy of each sourcedId (paging over a changing table repeats records).

    Duplicates are rare (only a pull that restarted after drift has any), so the doomed row ids are
    read first and deleted by id: one GROUP BY pass, instead of a correlated DELETE that Postgres, with
    no statistics on freshly COPYed staging, may run as a per-row subplan (minutes for 10k rows).
    """
    s = t.staging
    if conn.dialect.name == "postgresql":
        # Hash joins/aggregates over a whole district want more than the default 4MB work_mem.  (The
        # statistics come from ``staging.analyze``, run before, outside this transaction: an ANALYZE here
        # would hold its lock until the end of a long transaction.)
        conn.execute(sa.text("SET LOCAL work_mem = '128MB'"))
    latest = (
        sa.select(s.c.sourced_id, sa.func.max(s.c.row_id).label("keep"))
        .where(s.c.import_id == import_id)
        .group_by(s.c.sourced_id)
        .having(sa.func.count() > 1)
        .subquery()
    )
    s2 = s.alias("dup")
    doomed = list(
        conn.execute(
            sa.select(s2.c.row_id)
            .join(latest, latest.c.sourced_id == s2.c.sourced_id)
            .where(s2.c.import_id == import_id, s2.c.row_id != latest.c.keep)
        ).scalars()
    )
    for start in range(0, len(doomed), 10_000):
        conn.execute(sa.delete(s).where(s.c.row_id.in_(doomed[start : start + 10_000])))
    return len(doomed)


def count_changes(
    conn: sa.Connection,
    t: ResourceTables,
    scope: Scope,
    fetched: int,
    quarantined: int = 0,
    withheld: int = 0,
) -> ChangeCounts:
    """What publishing would do, by joining staging with the published rows (call after ``deduplicate``
    and ``purge_quarantined``).  Not used by the pipeline any more (it reads the classification, see
    ``classify.py``): kept as the plain statement of the table above, which the tests hold the
    classification to.

    ``quarantined``: staged rows withdrawn by the quarantine, and ``withheld``: by an additions_only
    import (``classify.withhold_deletions``), so neither is mistaken for duplicates.
    """
    p, s = t.published.c, t.staging.c
    tbd = _tobedeleted(t)
    active = sa.not_(tbd)
    missing = p.sourced_id.is_(None)
    alive = sa.and_(p.sourced_id.is_not(None), p.deleted_at.is_(None))

    def n(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    row = conn.execute(
        sa.select(
            sa.func.count().label("distinct"),
            n(tbd).label("tobedeleted"),
            n(sa.and_(active, sa.or_(missing, p.deleted_at.is_not(None)))).label("added"),
            n(sa.and_(active, p.sourced_id.is_not(None), p.deleted_at.is_not(None))).label("readded"),
            n(sa.and_(active, alive, p.record_hash != s.record_hash)).label("updated"),
            n(sa.and_(active, alive, p.record_hash == s.record_hash)).label("unchanged"),
            n(sa.and_(tbd, alive)).label("deleted"),
            n(sa.and_(tbd, missing)).label("new_tobedeleted"),
        )
        .select_from(t.staging.outerjoin(t.published, _joined(t, scope)))
        .where(s.import_id == scope.import_id)
    ).one()
    vanished = 0
    if scope.full:
        vanished = conn.execute(
            sa.select(sa.func.count()).select_from(t.published).where(_vanished(t, scope))
        ).scalar_one()
    return ChangeCounts(
        fetched=fetched,
        added=int(row.added),
        updated=int(row.updated),
        deleted=int(row.deleted) + int(vanished),
        unchanged=int(row.unchanged),
        tobedeleted=int(row.tobedeleted),
        duplicates=max(fetched - quarantined - withheld - int(row.distinct), 0),
        readded=int(row.readded),
        new_tobedeleted=int(row.new_tobedeleted),
        quarantined=quarantined,
        withheld=withheld,
    )


def _history_columns(t: ResourceTables) -> list[str]:
    return [
        *t.key,
        "status",
        "raw",
        "record_hash",
        "valid_from",
        "valid_to",
        "deleted_at",
        "import_id",
        "superseded_by_import_id",
        "change",
    ]


def apply_changes(
    conn: sa.Connection, t: ResourceTables, scope: Scope, now: datetime, expected: ChangeCounts | None = None
) -> tuple[int, int, int]:
    """Publish one resource's classified staged snapshot. Returns (rows updated, rows inserted, rows vanished).

    A set-based apply of the staging rows' ``change`` (classify.py), in the caller's transaction: the
    previous versions of replaced rows to history, one UPDATE ... FROM staging for them, one INSERT of the
    new records, and (full import) the vanished rows soft-deleted.  ``expected`` (the counts of the same
    classification) lets steps with nothing to do be skipped: an unchanged nightly sync touches nothing.
    """
    unmarked = classify.unmarked_change(conn, scope.import_id, t.resource.name)
    if expected is None:
        expected = classify.count(conn, t, scope, 0, unmarked=unmarked)
    p, s = t.published.c, t.staging.c
    at = sa.literal(now, type_=t.published.c.updated_at.type)
    import_id = sa.literal(scope.import_id, type_=sa.BigInteger)
    updated = inserted = vanished = 0
    replaced = sa.and_(s.import_id == scope.import_id, classify.is_change(s, unmarked, classify.REPLACES))

    # 1. previous versions of the rows this import replaces, then the new versions themselves.
    if expected.updated + expected.readded + expected.tobedeleted > 0:  # a superset of the replaced rows
        conn.execute(
            t.history.insert().from_select(
                _history_columns(t),
                sa.select(
                    *[p[k] for k in t.key],
                    p.status,
                    p.raw,
                    p.record_hash,
                    p.updated_at,
                    at,
                    p.deleted_at,
                    p.last_import_id,
                    import_id,
                    s.change,
                )
                .select_from(t.published.join(t.staging, _joined(t, scope)))
                .where(replaced),
            )
        )
        updated = conn.execute(
            sa.update(t.published)
            .where(_joined(t, scope), replaced)
            .values(
                **{c: s[c] for c in t.data_columns},
                raw=_raw(t, conn.dialect.name),
                record_hash=s.record_hash,
                updated_at=at,
                deleted_at=sa.case((s.change == "deleted", at), else_=sa.null()),
                last_import_id=import_id,
            )
        ).rowcount

    # 2. full pull: alive rows that vanished are soft-deleted, status and content kept.
    if scope.full and expected.deleted > 0:
        gone = sa.and_(
            *published_scope(t, scope),
            p.deleted_at.is_(None),
            p.sourced_id.in_(classify.vanished_rows(t, scope)),
        )
        conn.execute(
            t.history.insert().from_select(
                _history_columns(t),
                sa.select(
                    *[p[k] for k in t.key],
                    p.status,
                    p.raw,
                    p.record_hash,
                    p.updated_at,
                    at,
                    p.deleted_at,
                    p.last_import_id,
                    import_id,
                    sa.literal("vanished"),
                ).where(gone),
            )
        )
        vanished = conn.execute(
            sa.update(t.published).where(gone).values(deleted_at=at, last_import_id=import_id)
        ).rowcount

    # 3. new records, and records first seen as tobedeleted (inserted soft-deleted: nothing the SIS sent
    #    is lost).  The classification says they have no published row; the primary key would refuse one.
    if expected.added > expected.readded or expected.new_tobedeleted > 0:
        key_values = [sa.literal(scope.district_id, type_=sa.Text)]
        if t.resource.year_scoped:
            key_values.append(sa.literal(scope.school_year, type_=sa.Integer))
        inserted = conn.execute(
            t.published.insert().from_select(
                [
                    *t.key,
                    *t.data_columns,
                    "raw",
                    "record_hash",
                    "first_seen_at",
                    "updated_at",
                    "deleted_at",
                    "last_import_id",
                ],
                sa.select(
                    *key_values,
                    s.sourced_id,
                    *[s[c] for c in t.data_columns],
                    _raw(t, conn.dialect.name),
                    s.record_hash,
                    at,
                    at,
                    sa.case((s.change == "new_tobedeleted", at), else_=sa.null()),
                    import_id,
                ).where(s.import_id == scope.import_id, classify.is_change(s, unmarked, classify.INSERTS)),
            ),
            execution_options={"preserve_rowcount": True},  # INSERT rowcount is not kept by default
        ).rowcount
    return int(updated or 0), int(inserted or 0), int(vanished or 0)
