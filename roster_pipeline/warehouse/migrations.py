"""Numbered upgrade steps of the warehouse schema, run by ``create_schema`` in its own transaction.

``create_schema`` first creates every missing table (so a step never creates a brand-new table), then
runs ``MIGRATIONS[v]`` for each version above the recorded one.  A step must be safe on a database
that is exactly the previous version, and must leave it exactly like a fresh ``create_all`` of this one.

Version 2 (quarantine and review):
* ``import_runs``: new statuses ``held`` and ``dry_run`` in the status CHECK constraint, and the nullable
  columns ``hold_reason``, ``overridden_by``, ``override_reason``, ``overridden_at``.
* ``import_resource_counts``: column ``quarantined``.

SQLite cannot alter a CHECK constraint, so there the table is rebuilt the way the SQLite manual
prescribes ("Making Other Kinds Of Table Schema Changes", lang_altertable.html#otheralter): create the
new shape under a temporary name, copy the rows (keeping the import ids), drop the old table, rename,
recreate the indexes.  Nothing references ``import_runs`` by foreign key, so the foreign-key steps of
that procedure are moot.  On Postgres the constraint is dropped and re-added in place.

Version 3 (rollover):
* ``import_runs.additions_only`` and ``import_resource_counts.withheld`` (an additions_only import never
  deletes; ``withheld`` counts the deletions it held back);
* ``archived_at`` on the year-scoped published tables (academic_sessions, courses, classes,
  enrollments).  Rows of a school year older than the district's latest published one are archived by
  the step itself, so a database that already holds two years looks exactly as if the rollover had
  happened under this version.  The ``current_<resource>`` views are created by ``create_schema``.

Version 4 (undo):
* ``import_runs``: status ``undone`` in the status CHECK constraint, and the columns ``undone_by``,
  ``undone_at``, ``undo_note``, ``undo_forced`` (same procedure as version 2);
* the table ``import_undo_counts`` (created by ``create_all`` before the step runs).

Version 5 (districts side by side): staging moves from the shared ``stg_<resource>`` tables to
tables of each import's own (``stg_<resource>_<import_id>``, see ``staging.py``).  Every import whose
snapshot is still in staging (running, staged, held, dry_run, failed: a held import may be waiting for
its admin's approve) is carried over, rows in their original order and with their row ids (the diff
keeps the last copy of a duplicated record); rows of published or discarded imports are leftovers and
are not.  The shared tables are then dropped, so a process still on version 3 fails loudly instead of
staging where nobody reads.

Version 6 (classify once): every per-import staging table gets the nullable ``change`` column
the classification pass fills in (``classify.py``), every import with staging tables its
``vanished_<import_id>`` table, and ``import_resource_counts`` the columns ``classified_watermark``
and ``purged_reject_id``.  Carried-over imports are not classified by the step: their
``classified_watermark`` is NULL, so the first reader (a review's summary, an approve's publish)
classifies them.

Version 7 (derived tables): the tables ``class_teachers``, ``student_logins`` and
``derived_warnings``, created by ``create_all`` before the step runs.  They start empty: the next sync of
each district (or a materialization of the two assets) builds them from its published rows, since how
they are built depends on registry settings the warehouse does not hold.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from . import staging
from .archive import archive_superseded_years
from .schema import (
    STAGED_STATUSES,
    TABLES,
    class_teachers,
    derived_warnings,
    import_resource_counts,
    import_runs,
    student_logins,
)


def _columns(conn: sa.Connection, table_name: str) -> set[str]:
    return {c["name"] for c in sa.inspect(conn).get_columns(table_name)}


def add_missing_columns(conn: sa.Connection, table: sa.Table) -> list[str]:
    """ALTER TABLE ... ADD COLUMN for each column of ``table`` the database lacks (nullable or defaulted)."""
    present = _columns(conn, table.name)
    preparer = conn.dialect.identifier_preparer
    added = []
    for column in table.columns:
        if column.name in present:
            continue
        spec = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE {preparer.quote(table.name)} ADD COLUMN {spec}"))
        added.append(column.name)
    return added


def rebuild_sqlite_table(conn: sa.Connection, table: sa.Table) -> None:
    """Give an existing SQLite table exactly ``table``'s definition, rows kept (the manual's procedure)."""
    preparer = conn.dialect.identifier_preparer
    temp_name = f"{table.name}__rebuild"
    temp = table.to_metadata(sa.MetaData(), name=temp_name)
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {preparer.quote(temp_name)}"))  # a crashed earlier attempt
    conn.execute(sa.schema.CreateTable(temp))  # CreateTable emits no indexes: their names stay free
    common = [c.name for c in table.columns if c.name in _columns(conn, table.name)]
    cols = ", ".join(preparer.quote(c) for c in common)
    conn.execute(
        sa.text(
            f"INSERT INTO {preparer.quote(temp_name)} ({cols}) SELECT {cols} FROM {preparer.quote(table.name)}"
        )
    )
    conn.execute(sa.text(f"DROP TABLE {preparer.quote(table.name)}"))  # drops its indexes too
    conn.execute(sa.text(f"ALTER TABLE {preparer.quote(temp_name)} RENAME TO {preparer.quote(table.name)}"))
    for index in table.indexes:
        index.create(conn)


def _replace_check(conn: sa.Connection, table: sa.Table, name: str) -> None:
    """Postgres: swap a named CHECK constraint for the one ``table`` now defines."""
    [check] = [c for c in table.constraints if isinstance(c, sa.CheckConstraint) and c.name == name]
    preparer = conn.dialect.identifier_preparer
    sqltext = check.sqltext.compile(dialect=conn.dialect)
    conn.execute(
        sa.text(
            f"ALTER TABLE {preparer.quote(table.name)} DROP CONSTRAINT IF EXISTS {preparer.quote(name)}, "
            f"ADD CONSTRAINT {preparer.quote(name)} CHECK ({sqltext})"
        )
    )


def upgrade_to_2(conn: sa.Connection) -> None:
    """Statuses held/dry_run, override/hold columns on import_runs, quarantined count per resource."""
    add_missing_columns(conn, import_resource_counts)
    if conn.dialect.name == "sqlite":
        rebuild_sqlite_table(conn, import_runs)
    else:
        add_missing_columns(conn, import_runs)
        _replace_check(conn, import_runs, "ck_import_runs_status")


def upgrade_to_3(conn: sa.Connection) -> None:
    """additions_only / withheld counters, archived_at on year-scoped tables, older years archived."""
    add_missing_columns(conn, import_runs)
    add_missing_columns(conn, import_resource_counts)
    for tables in TABLES.values():
        if tables.resource.year_scoped:
            add_missing_columns(conn, tables.published)
    archive_superseded_years(conn, datetime.now(UTC))


def upgrade_to_4(conn: sa.Connection) -> None:
    """Status undone and the undo columns on import_runs."""
    if conn.dialect.name == "sqlite":
        rebuild_sqlite_table(conn, import_runs)
    else:
        add_missing_columns(conn, import_runs)
        _replace_check(conn, import_runs, "ck_import_runs_status")


def upgrade_to_5(conn: sa.Connection) -> None:
    """Per-import staging tables: carry over the imports still in staging, drop the shared tables."""
    present = set(sa.inspect(conn).get_table_names())
    legacy = {name: t.staging for name, t in TABLES.items() if t.staging.name in present}
    in_staging = (
        conn.execute(
            sa.select(import_runs.c.import_id)
            .where(import_runs.c.status.in_(STAGED_STATUSES))
            .order_by(import_runs.c.import_id)
        )
        .scalars()
        .all()
    )
    have = staging.existing(conn)
    for import_id in in_staging:
        if import_id not in have:
            staging.create(conn, import_id)
        for name, shared in legacy.items():
            own = staging.for_import(import_id, name).staging
            columns = [c.name for c in own.columns if c.name in _columns(conn, shared.name)]
            rows = (
                sa.select(*[shared.c[c] for c in columns])
                .where(shared.c.import_id == import_id)
                .order_by(shared.c.row_id)
            )
            copied = conn.execute(
                own.insert().from_select(columns, rows), execution_options={"preserve_rowcount": True}
            )
            if (
                copied.rowcount and conn.dialect.name == "postgresql"
            ):  # later batches continue after the copied ids
                conn.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence(:t, 'row_id'), (SELECT max(row_id) FROM \"{own.name}\"))"
                    ),
                    {"t": own.name},
                )
    preparer = conn.dialect.identifier_preparer
    for shared in legacy.values():
        conn.execute(sa.text(f"DROP TABLE {preparer.quote(shared.name)}"))


def upgrade_to_6(conn: sa.Connection) -> None:
    """The ``change`` column on each import's staging tables, its vanished table, the classification state."""
    add_missing_columns(conn, import_resource_counts)
    present = set(sa.inspect(conn).get_table_names())
    for import_id, resources in staging.existing(conn).items():
        for name in resources:
            add_missing_columns(conn, staging.for_import(import_id, name).staging)
        if staging.vanished_name(import_id) not in present:
            staging.create_vanished(conn, import_id)


def upgrade_to_7(conn: sa.Connection) -> None:
    """Nothing to carry over: the derived tables are new and are filled by the next rebuild per district."""
    present = set(sa.inspect(conn).get_table_names())
    missing = {t.name for t in (class_teachers, student_logins, derived_warnings)} - present
    if missing:  # create_all runs first; a database without them was not upgraded the way this step assumes
        raise RuntimeError(f"schema v7: tables {sorted(missing)} are missing after create_all")


# version -> the step that upgrades a database from version-1. Version 1 is the initial create_all.
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {
    2: upgrade_to_2,
    3: upgrade_to_3,
    4: upgrade_to_4,
    5: upgrade_to_5,
    6: upgrade_to_6,
    7: upgrade_to_7,
}
