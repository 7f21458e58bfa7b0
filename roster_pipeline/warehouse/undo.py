"""Undo: roll a district back to exactly what was published before its latest published import.

A publish (``diff.apply_changes``) leaves everything an undo needs: each row it changed keeps the
version it replaced in ``<resource>_history`` (``superseded_by_import_id`` = the import; ``valid_from`` =
that version's ``updated_at``, ``import_id`` = its ``last_import_id``, its ``deleted_at``, status, raw and
hash), and each row it inserted carries ``last_import_id`` = the import with no such history row.  The
flattened columns are not in history; they are derived again from the raw record by the one flattener
of ``columns.py`` that staging used.  So, per resource, in ONE transaction:

=====================================  ====================================================================
what the import did                    what the undo does
=====================================  ====================================================================
updated / deleted (tobedeleted) /      the row gets the version from history back, every column: content,
vanished / readded a row               ``updated_at``, ``deleted_at``, ``last_import_id`` (``first_seen_at``
                                       and ``archived_at`` were never changed by the publish)
inserted a row (new, or first seen     the row is removed from the published table (it did not exist)
as tobedeleted)
archived the older school years        the previous current year is un-archived
(its first import of a newer year)
=====================================  ====================================================================

so the published tables read exactly as before the import, row for row and column for column.  Every
row the undo changes or removes first goes to history itself (``change`` = ``undone`` / ``removed``,
``superseded_by_import_id`` = the undone import, ``valid_to`` = the undo's time): the undo can be
explained like any import.  The import becomes ``undone`` (who, when, why on ``import_runs``) and its
per-resource figures go to ``import_undo_counts``.

Rules:

* Only the district's latest published import can be undone (the one whose publish is on top); undoing
  again undoes the one before it.  With a ``running``, ``staged`` or ``held`` import in flight the undo is
  refused: that import's checks and diff were made against what is published now.
* The restored state was itself published (and checked) before, so it is referentially consistent.  It
  is also checked as a change against what is published now: the caller's ``check`` (the district's
  change and per-school thresholds, see ``control.undo``) sees the undo's summary *before* the commit;
  failures refuse the undo unless ``force`` is set, and a forced undo is recorded (``undo_forced``).
* ``preview=True`` does everything, runs the check, reports it all (``check_failures``) and rolls back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypedDict

import pandas as pd
import sqlalchemy as sa

from roster_pipeline.records.catalogue import RESOURCES

from .columns import flattener
from .errors import WarehouseError
from .locks import lock_district_writes
from .schema import TABLES, ResourceTables, import_runs, import_undo_counts
from .scope import Scope
from .summaries import CHANGE_SUMMARY_COLUMNS, SCHOOL_RESOURCES, SCHOOL_SUMMARY_COLUMNS, pct, school_counts

PUBLISH_CHANGES: tuple[str, ...] = ("updated", "deleted", "vanished", "readded")  # written by a publish
OPEN_STATUSES: tuple[str, ...] = ("running", "staged", "held")  # an import whose diff reads today's tables
SNAPSHOT_TABLE = "roster_undo_before"
BATCH = 5_000


class UndoRefusedError(WarehouseError):
    """The undo cannot apply (nothing published, another import in flight, not the latest import)."""


class UndoCheckError(UndoRefusedError):
    """The restored state fails the district's checks; ``force`` overrides (recorded)."""

    def __init__(self, district_id: str, import_id: int, failures: Sequence[str]) -> None:
        self.district_id = district_id
        self.import_id = import_id
        self.failures = tuple(failures)
        super().__init__(
            f"district {district_id!r}: undoing import {import_id} fails the district's checks, nothing was "
            f"changed: {'; '.join(self.failures)}. If this is what you want, undo again with force "
            "(the override is recorded)"
        )


@dataclass(frozen=True)
class ResourceUndo:
    """What the undo did to one resource.

    ``restored``: rows given their previous version back; ``removed``: rows the import had inserted;
    ``unarchived``: rows of the previous school year back in the current view.  The rest compares the
    resource's current view (alive rows, current school year) after the undo with before it, by
    sourcedId: what the change thresholds read.
    """

    resource: str
    restored: int = 0
    removed: int = 0
    unarchived: int = 0
    published_before: int = 0
    published_after: int = 0
    added: int = 0
    updated: int = 0
    deleted: int = 0


@dataclass(frozen=True)
class UndoResult:
    district_id: str
    import_id: int
    school_year: int  # the undone import's
    current_school_year: int | None  # the district's current school year after the undo (None: empty)
    undone_by: str
    undone_at: datetime
    note: str | None
    resources: dict[str, ResourceUndo]
    summary: pd.DataFrame  # CHANGE_SUMMARY_COLUMNS: the undo as a change of the current views
    schools: pd.DataFrame  # SCHOOL_SUMMARY_COLUMNS: users and enrollments per school, before → after
    check_failures: tuple[str, ...] = ()
    forced: bool = False  # committed although check_failures is not empty
    preview: bool = False  # nothing was committed

    def totals(self) -> dict[str, int]:
        keys = ("restored", "removed", "unarchived", "added", "updated", "deleted")
        return {k: sum(getattr(r, k) for r in self.resources.values()) for k in keys}


UndoCheck = Callable[[UndoResult], Sequence[str]]


class _Preview(Exception):
    def __init__(self, result: UndoResult) -> None:
        self.result = result


# -- selecting the import ---------------------------------------------------------------------------


def _lock_district(conn: sa.Connection, district_id: str) -> None:
    """One writer per district: the publish's advisory lock on Postgres; on SQLite a write that takes
    the database's write lock now, so nothing can publish between the checks below and the undo."""
    if conn.dialect.name == "postgresql":
        lock_district_writes(conn, district_id)
    else:
        conn.execute(
            import_runs.update()
            .where(import_runs.c.district_id == district_id)
            .values(district_id=import_runs.c.district_id)
        )


def latest_published(conn: sa.Connection, district_id: str) -> dict[str, Any] | None:
    """The import whose publish is on top of the district's published rows (the last to publish)."""
    query = (
        sa.select(import_runs)
        .where(import_runs.c.district_id == district_id, import_runs.c.status == "published")
        .order_by(import_runs.c.finished_at.desc(), import_runs.c.import_id.desc())
        .limit(1)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def _target(conn: sa.Connection, district_id: str, import_id: int | None) -> dict[str, Any]:
    run = latest_published(conn, district_id)
    if run is None:
        raise UndoRefusedError(f"district {district_id!r} has no published import to undo")
    if import_id is not None and int(import_id) != run["import_id"]:
        raise UndoRefusedError(
            f"district {district_id!r}: import {import_id} is not the district's latest published import "
            f"(import {run['import_id']} is); only the latest can be undone, one after the other"
        )
    in_flight = conn.execute(
        sa.select(import_runs.c.import_id, import_runs.c.status)
        .where(import_runs.c.district_id == district_id, import_runs.c.status.in_(OPEN_STATUSES))
        .order_by(import_runs.c.import_id)
    ).first()
    if in_flight is not None:
        other, status = in_flight
        hint = (
            f"reject it first (`roster-pipeline review {district_id} reject`)"
            if status == "held"
            else "wait until its run has finished"
        )
        raise UndoRefusedError(
            f"district {district_id!r} has import {other} {status}, made against what is published now; "
            f"{hint}, then undo import {run['import_id']}"
        )
    return run


def _previous_year(conn: sa.Connection, district_id: str, import_id: int) -> int | None:
    value = conn.execute(
        sa.select(sa.func.max(import_runs.c.school_year)).where(
            import_runs.c.district_id == district_id,
            import_runs.c.status == "published",
            import_runs.c.import_id != import_id,
        )
    ).scalar()
    return None if value is None else int(value)


# -- the current views, before and after ------------------------------------------------------------


def _current(t: ResourceTables, district_id: str) -> list[sa.ColumnElement[bool]]:
    p = t.published.c
    conditions = [p.district_id == district_id, p.deleted_at.is_(None)]
    if t.resource.year_scoped:
        conditions.append(p.archived_at.is_(None))
    return conditions


def _snapshot_table(conn: sa.Connection) -> sa.Table:
    """A temporary (sourcedId, hash) copy of the district's current views, to compare the undo with."""
    dialect_options: dict[str, Any] = (
        {"postgresql_on_commit": "DROP"} if conn.dialect.name == "postgresql" else {}
    )
    snapshot = sa.Table(
        SNAPSHOT_TABLE,
        sa.MetaData(),
        sa.Column("resource", sa.Text),
        sa.Column("sourced_id", sa.Text),
        sa.Column("record_hash", sa.Text),
        prefixes=["TEMPORARY"],
        **dialect_options,
    )
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {SNAPSHOT_TABLE}"))
    snapshot.create(conn)
    conn.execute(sa.text(f"CREATE INDEX ix_{SNAPSHOT_TABLE} ON {SNAPSHOT_TABLE} (resource, sourced_id)"))
    return snapshot


def _take_snapshot(conn: sa.Connection, snapshot: sa.Table, district_id: str) -> None:
    for res in RESOURCES:
        t = TABLES[res.name]
        p = t.published.c
        conn.execute(
            snapshot.insert().from_select(
                ["resource", "sourced_id", "record_hash"],
                sa.select(sa.literal(res.name, type_=sa.Text), p.sourced_id, p.record_hash).where(
                    *_current(t, district_id)
                ),
            )
        )


class _Comparison(TypedDict):
    """The current view after the undo against the snapshot taken before it (ResourceUndo's fields)."""

    published_before: int
    published_after: int
    added: int
    updated: int
    deleted: int


def _compare(conn: sa.Connection, snapshot: sa.Table, t: ResourceTables, district_id: str) -> _Comparison:
    p, b = t.published.c, snapshot.c
    name = t.resource.name
    mine = b.resource == name
    current = _current(t, district_id)
    before = conn.execute(sa.select(sa.func.count()).where(mine)).scalar_one()
    after = conn.execute(sa.select(sa.func.count()).select_from(t.published).where(*current)).scalar_one()
    was = sa.select(sa.literal(1)).where(mine, b.sourced_id == p.sourced_id)
    added = conn.execute(
        sa.select(sa.func.count()).select_from(t.published).where(*current, sa.not_(sa.exists(was)))
    ).scalar_one()
    updated = conn.execute(
        sa.select(sa.func.count())
        .select_from(t.published)
        .join(snapshot, sa.and_(mine, b.sourced_id == p.sourced_id))
        .where(*current, b.record_hash != p.record_hash)
    ).scalar_one()
    is_now = sa.select(sa.literal(1)).select_from(t.published).where(*current, p.sourced_id == b.sourced_id)
    deleted = conn.execute(sa.select(sa.func.count()).where(mine, sa.not_(sa.exists(is_now)))).scalar_one()
    return {
        "published_before": int(before),
        "published_after": int(after),
        "added": int(added),
        "updated": int(updated),
        "deleted": int(deleted),
    }


def _school_counts(conn: sa.Connection, district_id: str, year: int | None) -> dict[str, dict[str, int]]:
    """{resource: {school: alive records}} for users and enrollments of the current view."""
    scope = Scope(0, district_id, year if year is not None else 0, full=False)
    return {name: school_counts(conn, scope, name, staged=False)[0] for name in SCHOOL_RESOURCES}


def _school_names(conn: sa.Connection, district_id: str) -> tuple[dict[str, str | None], set[str]]:
    o = TABLES["orgs"].published.c
    names: dict[str, str | None] = {}
    schools: set[str] = set()
    for sourced_id, name, kind in conn.execute(
        sa.select(o.sourced_id, o.name, o.type).where(o.district_id == district_id)
    ):
        names[sourced_id] = name
        if (kind or "").lower() == "school":
            schools.add(sourced_id)
    return names, schools


def _school_summary(
    before: dict[str, dict[str, int]],
    after: dict[str, dict[str, int]],
    names: dict[str, str | None],
    schools: set[str],
) -> pd.DataFrame:
    """The same frame ``summaries.school_summary`` gives a staged import, for the undo."""
    schools = schools | set(before["enrollments"]) | set(after["enrollments"])
    rows = []
    for resource_name in SCHOOL_RESOURCES:
        b_counts, a_counts = before[resource_name], after[resource_name]
        for school in sorted((set(b_counts) | set(a_counts)) & schools):
            b, a = b_counts.get(school, 0), a_counts.get(school, 0)
            drop = max(b - a, 0)
            rows.append(
                {
                    "school_sourced_id": school,
                    "school_name": names.get(school),
                    "resource": resource_name,
                    "published_before": b,
                    "after": a,
                    "drop": drop,
                    "drop_pct": pct(drop, b),
                }
            )
    frame = pd.DataFrame(rows, columns=list(SCHOOL_SUMMARY_COLUMNS))
    return frame.astype(
        {"published_before": "int64", "after": "int64", "drop": "int64", "drop_pct": "float64"}
    )


def _change_summary(resources: dict[str, ResourceUndo]) -> pd.DataFrame:
    """The undo as the threshold checks' change summary (nothing fetched, nothing rejected)."""
    rows = []
    for res in RESOURCES:
        r = resources[res.name]
        base = r.published_before
        rows.append(
            {
                "resource": res.name,
                "published_before": base,
                "fetched": 0,
                "added": r.added,
                "updated": r.updated,
                "deleted": r.deleted,
                "unchanged": max(base - r.updated - r.deleted, 0),
                "tobedeleted": 0,
                "rejected": 0,
                "added_pct": pct(r.added, base),
                "updated_pct": pct(r.updated, base),
                "deleted_pct": pct(r.deleted, base),
                "rejected_pct": 0.0,
            }
        )
    frame = pd.DataFrame(rows, columns=list(CHANGE_SUMMARY_COLUMNS))
    return frame.astype(
        {c: "int64" for c in CHANGE_SUMMARY_COLUMNS[1:9]} | {c: "float64" for c in CHANGE_SUMMARY_COLUMNS[9:]}
    )


# -- restoring one resource -------------------------------------------------------------------------


def _history_insert_columns(t: ResourceTables) -> list[str]:
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


def _same_key(t: ResourceTables, h: sa.Table) -> list[sa.ColumnElement[bool]]:
    return [t.published.c[k] == h.c[k] for k in t.key]


def restore_resource(
    conn: sa.Connection, t: ResourceTables, district_id: str, import_id: int, now: datetime
) -> tuple[int, int]:
    """Give every row the import changed its previous version back, remove the rows it inserted.

    Returns (restored, removed).  Raises WarehouseError (the transaction rolls back) when a history row
    finds no published row to restore: the tables are then not what the import left, and guessing would
    be worse than refusing.
    """
    p, h = t.published, t.history
    by_import = [
        h.c.superseded_by_import_id == import_id,
        h.c.district_id == district_id,
        h.c.change.in_(PUBLISH_CHANGES),
    ]
    at = sa.literal(now, type_=p.c.updated_at.type)
    undone = sa.literal(import_id, type_=sa.BigInteger)
    restorable = conn.execute(sa.select(sa.func.count()).select_from(h).where(*by_import)).scalar_one()
    changed_by_import = sa.exists(sa.select(sa.literal(1)).select_from(h).where(*by_import, *_same_key(t, h)))
    inserted = sa.and_(
        p.c.district_id == district_id, p.c.last_import_id == import_id, sa.not_(changed_by_import)
    )

    def audit(change: str) -> sa.Select[Any]:
        return sa.select(
            *[p.c[k] for k in t.key],
            p.c.status,
            p.c.raw,
            p.c.record_hash,
            p.c.updated_at,
            at,
            p.c.deleted_at,
            p.c.last_import_id,
            undone,
            sa.literal(change, type_=sa.Text),
        )

    # 1. the versions the undo replaces or removes go to history first (the undo is explained there)
    conn.execute(
        h.insert().from_select(
            _history_insert_columns(t),
            audit("undone").select_from(p.join(h, sa.and_(*_same_key(t, h)))).where(*by_import),
        )
    )
    removed_audit = conn.execute(
        h.insert().from_select(_history_insert_columns(t), audit("removed").where(inserted)),
        execution_options={"preserve_rowcount": True},
    ).rowcount

    # 2. flattened columns from the previous raw record (a vanished row's content never changed)
    _restore_columns(conn, t, by_import)

    # 3. everything else straight from history, in SQL
    restored = conn.execute(
        sa.update(p)
        .where(*_same_key(t, h), *by_import)
        .values(
            status=h.c.status,
            raw=h.c.raw,
            record_hash=h.c.record_hash,
            updated_at=h.c.valid_from,
            deleted_at=h.c.deleted_at,
            last_import_id=h.c.import_id,
        )
    ).rowcount
    if restored != restorable:
        raise WarehouseError(
            f"district {district_id!r}, {t.resource.name}: import {import_id} left {restorable} previous versions "
            f"but only {restored} published rows match them; the published table is not what the import left, "
            "nothing was undone"
        )

    # 4. rows the import inserted (after step 3, no restored row carries the import's id any more)
    removed = conn.execute(
        sa.delete(p).where(p.c.district_id == district_id, p.c.last_import_id == import_id)
    ).rowcount
    if removed != removed_audit:
        raise WarehouseError(
            f"district {district_id!r}, {t.resource.name}: undoing import {import_id} would remove {removed} rows "
            f"but recorded {removed_audit}; nothing was undone"
        )
    return int(restored or 0), int(removed or 0)


def _restore_columns(conn: sa.Connection, t: ResourceTables, by_import: list[sa.ColumnElement[bool]]) -> None:
    p, h = t.published, t.history
    flatten = flattener(t.resource.name)
    key_params = {k: f"k_{k}" for k in t.key}
    statement = (
        sa.update(p)
        .where(*[p.c[k] == sa.bindparam(param) for k, param in key_params.items()])
        .values({c: sa.bindparam(f"v_{c}") for c in t.data_columns})
    )
    result = conn.execute(
        sa.select(*[h.c[k] for k in t.key], h.c.raw).where(*by_import, h.c.change != "vanished")
    )
    while batch := result.fetchmany(BATCH):
        params = []
        for row in batch:
            values = dict(zip(t.data_columns, flatten(row.raw), strict=True))
            params.append(
                {
                    **{param: row._mapping[k] for k, param in key_params.items()},
                    **{f"v_{c}": v for c, v in values.items()},
                }
            )
        conn.execute(statement, params)


def _unarchive(conn: sa.Connection, district_id: str, previous_year: int, undone_year: int) -> dict[str, int]:
    """Undo a rollover: the previous current year's rows (archived by the undone import) come back.

    Before that import the previous year was the current one, so none of its rows was archived; years
    before it had been archived by earlier rollovers and stay so."""
    out = {}
    for t in TABLES.values():
        if not t.resource.year_scoped:
            continue
        c = t.published.c
        out[t.resource.name] = int(
            conn.execute(
                sa.update(t.published)
                .where(
                    c.district_id == district_id,
                    c.school_year >= previous_year,
                    c.school_year < undone_year,
                    c.archived_at.is_not(None),
                )
                .values(archived_at=None)
            ).rowcount
            or 0
        )
    return out


# -- the whole undo ---------------------------------------------------------------------------------


def undo_last_import(
    engine: sa.Engine,
    district_id: str,
    *,
    undone_by: str,
    note: str | None = None,
    import_id: int | None = None,
    check: UndoCheck | None = None,
    force: bool = False,
    preview: bool = False,
) -> UndoResult:
    """Undo the district's latest published import in one transaction (see the module docstring)."""
    if not undone_by or not undone_by.strip():
        raise UndoRefusedError(f"district {district_id!r}: an undo needs the name of who undoes it")
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            _lock_district(conn, district_id)
            run = _target(conn, district_id, import_id)
            target, year = int(run["import_id"]), int(run["school_year"])
            previous_year = _previous_year(conn, district_id, target)
            rollover = previous_year is not None and year > previous_year
            after_year = previous_year if rollover else (year if previous_year is not None else None)

            snapshot = _snapshot_table(conn)
            _take_snapshot(conn, snapshot, district_id)
            schools_before = _school_counts(conn, district_id, year)
            names, school_ids = _school_names(conn, district_id)

            counts: dict[str, ResourceUndo] = {}
            for res in RESOURCES:
                restored, removed = restore_resource(conn, TABLES[res.name], district_id, target, now)
                counts[res.name] = ResourceUndo(res.name, restored=restored, removed=removed)
            if rollover:
                assert previous_year is not None
                for name, n in _unarchive(conn, district_id, previous_year, year).items():
                    counts[name] = replace(counts[name], unarchived=n)
            for res in RESOURCES:
                counts[res.name] = replace(
                    counts[res.name], **_compare(conn, snapshot, TABLES[res.name], district_id)
                )
            conn.execute(sa.text(f"DROP TABLE {SNAPSHOT_TABLE}"))

            after_names, after_ids = _school_names(conn, district_id)
            names = {**names, **after_names}
            result = UndoResult(
                district_id=district_id,
                import_id=target,
                school_year=year,
                current_school_year=after_year,
                undone_by=undone_by.strip(),
                undone_at=now,
                note=note or None,
                resources=counts,
                summary=_change_summary(counts),
                schools=_school_summary(
                    schools_before,
                    _school_counts(conn, district_id, after_year),
                    names,
                    school_ids | after_ids,
                ),
            )
            failures = tuple(check(result)) if check is not None else ()
            result = replace(result, check_failures=failures, forced=bool(failures) and force)
            if preview:  # what would happen, failures included; nothing is kept
                raise _Preview(replace(result, preview=True))
            if failures and not force:
                raise UndoCheckError(district_id, target, failures)
            conn.execute(
                import_runs.update()
                .where(import_runs.c.import_id == target)
                .values(
                    status="undone",
                    undone_by=result.undone_by,
                    undone_at=now,
                    undo_note=result.note,
                    undo_forced=result.forced,
                )
            )
            conn.execute(
                import_undo_counts.insert(), [{"import_id": target, **asdict(r)} for r in counts.values()]
            )
    except _Preview as done:
        return done.result
    return result


def undo_counts(conn: sa.Connection, import_id: int) -> dict[str, ResourceUndo]:
    """The recorded figures of an undone import, by resource (catalogue order)."""
    rows = {
        row["resource"]: row
        for row in conn.execute(
            sa.select(import_undo_counts).where(import_undo_counts.c.import_id == import_id)
        ).mappings()
    }
    fields = [f for f in ResourceUndo.__dataclass_fields__ if f != "resource"]
    return {
        name: ResourceUndo(name, **{f: int(rows[name][f]) for f in fields})
        for name in (r.name for r in RESOURCES)
        if name in rows
    }


__all__ = [
    "ResourceUndo",
    "UndoCheck",
    "UndoCheckError",
    "UndoRefusedError",
    "UndoResult",
    "latest_published",
    "undo_counts",
    "undo_last_import",
]
