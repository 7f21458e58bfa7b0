"""Creating or upgrading the warehouse schema: the one module that knows the tables (schema), the views
(archive) and the upgrade steps (migrations), so those three never import each other in a circle.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from .archive import create_current_views, current_view_name
from .migrations import MIGRATIONS
from .schema import SCHEMA_VERSION, TABLES, metadata, schema_version


def _up_to_date(conn: sa.Connection) -> bool:
    """Every table and view is there and the recorded version is this one (read without any lock)."""
    inspector = sa.inspect(conn)
    if not set(metadata.tables) <= set(inspector.get_table_names()):
        return False
    if not {current_view_name(name) for name in TABLES} <= set(inspector.get_view_names()):
        return False
    return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() == SCHEMA_VERSION


def create_schema(engine: sa.Engine) -> int:
    """Create or upgrade the schema; safe to call from every process at start-up. Returns the version.

    An up-to-date schema is recognised without the DDL lock, so the steps of many districts starting at
    once never queue behind each other here; only a creation or an upgrade serialises.
    """
    with engine.connect() as conn:
        if _up_to_date(conn):
            return SCHEMA_VERSION
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Several Dagster steps may start at once: serialise DDL (released at commit).
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(72317001)"))
        metadata.create_all(conn, checkfirst=True)
        current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
        if current is None:
            conn.execute(schema_version.insert().values(version=SCHEMA_VERSION, applied_at=datetime.now(UTC)))
            current = SCHEMA_VERSION
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"warehouse schema is version {current}, newer than this roster_pipeline ({SCHEMA_VERSION}); "
                "upgrade the package"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version](conn)
            conn.execute(schema_version.insert().values(version=version, applied_at=datetime.now(UTC)))
        create_current_views(conn)
    return SCHEMA_VERSION
