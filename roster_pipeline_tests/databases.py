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
def postgres_problem() -> str | None:
    """Why the Postgres server at ``POSTGRES_URL`` cannot be used, or None when it answers (asked once)."""
    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "no server"
        return str(exc)
    finally:
        engine.dispose()


def postgres_answers() -> bool:
    return postgres_problem() is None


def one_database() -> tuple[str]:
    """The database for a test that runs once: Postgres (always in CI, where it must answer)."""
    return ("postgres",) if IN_CI or postgres_answers() else ("sqlite",)
