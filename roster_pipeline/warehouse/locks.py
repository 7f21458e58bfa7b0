"""The one lock that serialises writers of one district's published rows.

Publish, undo and the PII purge each rewrite a district's published tables in one transaction; two of
them interleaving for the same district would publish a mix. On Postgres they all take this
transaction-scoped advisory lock (a 64-bit hash of the district id, so two districts practically never
share it and never wait on each other); SQLite has one writer at a time anyway.
"""

from __future__ import annotations

import sqlalchemy as sa

_DISTRICT_WRITES = 72317002


def lock_district_writes(conn: sa.Connection, district_id: str) -> None:
    """Wait for, then hold until commit, the district's write lock (Postgres; a no-op on SQLite)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:d, :k))"),
            {"d": district_id, "k": _DISTRICT_WRITES},
        )
