"""Each import's staging tables: its own ``stg_<resource>_<import_id>``, created when the import opens and
dropped in the transaction that publishes or discards it.

Why one table per import and not one shared ``stg_<resource>`` (schema v3) or a partitioned parent:
schedules and backfills run many districts at once on one Postgres warehouse, and a district's run must
never wait on another's.  With shared tables, ``ANALYZE stg_<resource>`` (needed: freshly loaded staging
has no statistics) takes a self-conflicting SHARE UPDATE EXCLUSIVE lock until commit, so two imports'
checks or publishes queued behind each other and deadlocked.  A LIST-partitioned parent does not remove
the sharing: a COPY into a partition holds ACCESS SHARE on the parent until commit, dropping or
detaching a partition takes ACCESS EXCLUSIVE on the parent, and ATTACH takes the parent's (self-
conflicting) SHARE UPDATE EXCLUSIVE, so one import's cleanup would wait for every other import's open
load transaction and stall everyone queued behind it.  Standalone tables share no lock with anything:
creating and dropping them only touches catalog rows of their own, and every statement of an import
names only its own tables (and the published rows of its own district).

The same layout is used on SQLite (one code path; a single writer there anyway).  Each table keeps the
``import_id`` column so every query reads as before (``s.import_id = :import_id`` is simply always true).
On Postgres the tables are UNLOGGED (staging is transient and re-fetchable: no WAL, about half the COPY
time), and are ANALYZEd in short transactions of their own (``analyze``), never inside a long one.
``TABLES[name].staging`` is only the template the per-import tables are built from; it no longer
exists in the database (a query that forgot to use ``for_import`` fails loudly instead of reading
nothing).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable

import sqlalchemy as sa

from .schema import TABLES, ResourceTables, vanished_template

_NAME = re.compile(r"^stg_(?P<resource>[a-z_]+)_(?P<import_id>\d+)$")


def table_name(resource_name: str, import_id: int) -> str:
    return f"stg_{resource_name}_{int(import_id)}"


def parse_name(name: str) -> tuple[str, int] | None:
    """(resource, import_id) of a per-import staging table name, else None."""
    match = _NAME.match(name)
    if match is None or match["resource"] not in TABLES:
        return None
    return match["resource"], int(match["import_id"])


def vanished_name(import_id: int) -> str:
    return f"vanished_{int(import_id)}"


def _table(template: sa.Table, name: str, metadata: sa.MetaData, loaded_only: bool = False) -> sa.Table:
    """A copy of the staging template under the import's own name (its own index and constraint names).

    ``loaded_only``: without the columns the classification pass fills in (the loader's view of the table:
    it writes every column of the table object it is given except ``row_id``)."""
    columns = [c for c in template.columns if not (loaded_only and c.info.get("classification"))]
    table = sa.Table(name, metadata, *[column._copy() for column in columns])
    sa.Index(f"ix_{name}_sourced", table.c.import_id, table.c.sourced_id)
    return table


@functools.lru_cache(maxsize=256)
def tables_for(import_id: int) -> dict[str, ResourceTables]:
    """{resource: the resource's tables with ``staging`` = this import's own table} (cached, immutable)."""
    metadata = sa.MetaData()
    return {
        name: dataclasses.replace(t, staging=_table(t.staging, table_name(name, import_id), metadata))
        for name, t in TABLES.items()
    }


def for_import(import_id: int, resource_name: str) -> ResourceTables:
    return tables_for(int(import_id))[resource_name]


@functools.lru_cache(maxsize=256)
def _loading_for(import_id: int) -> dict[str, ResourceTables]:
    metadata = sa.MetaData()
    return {
        name: dataclasses.replace(
            t, staging=_table(t.staging, table_name(name, import_id), metadata, loaded_only=True)
        )
        for name, t in TABLES.items()
    }


def for_loading(import_id: int, resource_name: str) -> ResourceTables:
    """The import's tables as the loader sees them: staging without the ``change`` column (filled in later
    by the classification pass, never by a batch)."""
    return _loading_for(int(import_id))[resource_name]


@functools.lru_cache(maxsize=256)
def vanished_for(import_id: int) -> sa.Table:
    """The import's ``vanished_<import_id>`` table (see ``schema.vanished_template``)."""
    name = vanished_name(import_id)
    table = sa.Table(name, sa.MetaData(), *[column._copy() for column in vanished_template.columns])
    sa.Index(f"ix_{name}_resource", table.c.resource, table.c.sourced_id)
    return table


def _create(conn: sa.Connection, table: sa.Table, defer_indexes: bool = False) -> None:
    """``defer_indexes`` (Postgres staging tables): the index is built once the table is loaded, by
    ``analyze``: one sort after a million-row COPY costs about a third of maintaining the btree row by
    row during it (measured: 10.5 s against 15.9 s for 1M rows), and the COPY is on the sync's path."""
    postgres = conn.dialect.name == "postgresql"
    ddl = str(sa.schema.CreateTable(table).compile(dialect=conn.dialect)).strip()
    if postgres:  # transient and re-fetchable: skip the WAL
        ddl = ddl.replace("CREATE TABLE", "CREATE UNLOGGED TABLE", 1)
    conn.exec_driver_sql(ddl)
    if defer_indexes and postgres:
        return
    for index in table.indexes:
        index.create(conn)


def _index_loaded(conn: sa.Connection, import_id: int, names: Iterable[str]) -> None:
    """Build the deferred indexes of the import's loaded staging tables that do not have theirs yet."""
    wanted = {
        index.name: index
        for resource_name in TABLES
        if table_name(resource_name, import_id) in set(names)
        for index in for_import(import_id, resource_name).staging.indexes
    }
    if not wanted:
        return
    built = set(
        conn.execute(
            sa.text("SELECT indexname FROM pg_indexes WHERE indexname = ANY(:names)"), {"names": list(wanted)}
        ).scalars()
    )
    for name, index in wanted.items():
        if name not in built:
            index.create(conn)


def create_vanished(conn: sa.Connection, import_id: int) -> None:
    """Create the import's vanished table (``create`` does; the v6 migration for older imports)."""
    _create(conn, vanished_for(int(import_id)))


def create(conn: sa.Connection, import_id: int) -> None:
    """Create the import's staging tables (every resource: readers never have to ask whether one exists).

    Run in the transaction that opens the import, so an import row never exists without its tables."""
    for t in tables_for(int(import_id)).values():
        _create(conn, t.staging, defer_indexes=True)
    create_vanished(conn, import_id)


def drop(conn: sa.Connection, import_id: int) -> None:
    """Drop the import's staging tables (publish, discard). Locks nothing but these tables."""
    quote = conn.dialect.identifier_preparer.quote
    for name in [*(table_name(resource, import_id) for resource in TABLES), vanished_name(import_id)]:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(name)}")


def existing(conn: sa.Connection) -> dict[int, set[str]]:
    """{import_id: resources} of the per-import staging tables present in the database."""
    out: dict[int, set[str]] = {}
    for name in sa.inspect(conn).get_table_names():
        parsed = parse_name(name)
        if parsed is not None:
            out.setdefault(parsed[1], set()).add(parsed[0])
    return out


def analyze(
    conn: sa.Connection, import_id: int, resources: Iterable[str] | None = None, only_new: bool = False
) -> list[str]:
    """Postgres: ANALYZE the import's own tables (all, or ``resources``); ``only_new``: those never analysed.

    Freshly COPYed staging has no statistics and the planner then guesses badly on the diff's joins
    (minutes instead of seconds).  Call it in a short transaction of its own, after the load: it takes
    SHARE UPDATE EXCLUSIVE on the tables it analyses until commit (only this import's, so no other
    district could ever wait on it).  First builds the tables' deferred indexes (same lock scope: only
    this import's tables).  Returns the tables analysed.
    """
    if conn.dialect.name != "postgresql":
        return []
    names = [table_name(r, import_id) for r in (TABLES if resources is None else resources)]
    # Tables of an unknown, published or discarded import are simply absent.  reltuples is -1 until the
    # first ANALYZE or VACUUM (Postgres 14+), whatever was loaded since.
    found = conn.execute(
        sa.text(
            "SELECT relname, reltuples FROM pg_class "
            "WHERE relname = ANY(:names) AND relkind = 'r' AND pg_table_is_visible(oid)"
        ),
        {"names": names},
    )
    present = {relname: reltuples for relname, reltuples in found}
    _index_loaded(conn, import_id, present)  # deferred from the COPY (see ``_create``)
    names = [n for n in names if n in present and (not only_new or present[n] < 0)]
    quote = conn.dialect.identifier_preparer.quote
    for name in names:
        conn.exec_driver_sql(f"ANALYZE {quote(name)}")
    return names
