"""Whole databases and scratch schemas: the chores around the warehouse rather than inside it.

The benchmark syncs into an empty Postgres database and compares loaders that each write to a scratch
schema of their own; those chores are SQL like any other, so they live here with the rest of the
warehouse's SQL and the benchmark only names what it wants done.
"""

from __future__ import annotations

import sqlalchemy as sa


def is_postgres_url(url: str) -> bool:
    return sa.engine.make_url(url).drivername.startswith("postgresql")


def url_for_display(url: str) -> str:
    """The URL with its password masked: what a log line or a report may print."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def url_password(url: str) -> str | None:
    return sa.engine.make_url(url).password


def libpq_url(url: str) -> str:
    """A libpq URL (postgresql://…) from a SQLAlchemy one (postgresql+psycopg://…), for psycopg and dlt."""
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def fresh_database(url: str) -> None:
    """Make ``url``'s database an empty warehouse, so the first sync really is a first full sync.

    A database whose name contains "bench" is the benchmark's own: dropped and created again. Any other
    database must already be empty (e.g. one a test just created): the benchmark never drops what it
    did not make.
    """
    parsed = sa.engine.make_url(url)
    if not is_postgres_url(url):
        raise SystemExit(
            "the benchmark needs Postgres (COPY, unlogged tables): pass --database-url postgresql+psycopg://…"
        )
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = parsed.database or ""
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).scalar()
            if exists and "bench" in name:
                conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
                exists = None
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
                return
    finally:
        admin.dispose()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                sa.text(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                )
            ).scalar()
    finally:
        engine.dispose()
    if tables:
        raise SystemExit(
            f"database {name!r} is not empty and its name has no 'bench' in it: the benchmark "
            "syncs into an empty warehouse and drops only its own databases"
        )


def drop_schema(url: str, schema: str) -> None:
    """Remove a scratch schema (limit, naive, dlt loads) so each phase starts from nothing."""
    _autocommit(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def recreate_schema(url: str, schema: str) -> None:
    """An empty scratch schema of that name, whatever was there before."""
    _autocommit(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE', f'CREATE SCHEMA "{schema}"')


def _autocommit(url: str, *statements: str) -> None:
    """Run statements that take effect at once (schemas and databases are not a transaction's business)."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()
