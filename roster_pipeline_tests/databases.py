"""Which warehouse databases a test runs on.

Database-specific behaviour (the warehouse's SQL, staging and publishing, crash safety) runs on both
warehouses: the embedded SQLite default and Postgres. A test whose subject is Dagster or the whole
pipeline (the ``end_to_end`` marker, or a fault that lives at the SIS) runs once, on Postgres, the
production database; where no Postgres answers outside CI it runs on SQLite instead of being skipped.
The embedded default still runs end to end through Dagster in the demo and README command tests.
"""

from __future__ import annotations

import functools
import os

import sqlalchemy as sa

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get("ROSTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BOTH = ("sqlite", "postgres")


@functools.cache
def postgres_answers() -> bool:
    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "no server"
        return False
    finally:
        engine.dispose()


def one_database() -> tuple[str]:
    """The database for a test that runs once: Postgres (always in CI, where it must answer)."""
    return ("postgres",) if IN_CI or postgres_answers() else ("sqlite",)
