"""Where the warehouse lives and how to connect to it.

The embedded default (a SQLite file under ``./.roster_pipeline``) lets a newcomer run the demo with no
server; production sets ``ROSTER_DATABASE_URL`` to Postgres.  SQLite is opened in WAL mode with a busy
timeout because several Dagster step processes write to the same file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ENV_DATABASE_URL = "ROSTER_DATABASE_URL"
DEFAULT_SQLITE_PATH = Path(".roster_pipeline") / "warehouse.sqlite"

# The connection type, named here so that code outside the warehouse can hint at it without importing
# SQLAlchemy: every query it runs goes through warehouse/ or control/store.py.
Engine = sa.Engine


def resolve_url(url: str | None = None) -> str:
    """Explicit URL → ``ROSTER_DATABASE_URL`` → the embedded SQLite file (directories created)."""
    chosen = url or os.environ.get(ENV_DATABASE_URL, "").strip()
    if not chosen:
        DEFAULT_SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{DEFAULT_SQLITE_PATH.resolve()}"
    # Bare postgres URLs would pick psycopg2, which is not a dependency: COPY needs psycopg 3.
    for prefix in ("postgresql://", "postgres://"):
        if chosen.startswith(prefix):
            return "postgresql+psycopg://" + chosen[len(prefix) :]
    if chosen.startswith("sqlite:///"):
        path = chosen[len("sqlite:///") :]
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return chosen


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def make_engine(url: str) -> sa.Engine:
    """The warehouse engine. On a server database, pooled connections are pinged before use: after a
    Postgres restart (or a failover, or an idle connection cut by a proxy) every pooled connection is
    dead, and without the ping the next step of every running sync would fail on its first statement."""
    is_sqlite = sa.engine.make_url(url).get_backend_name() == "sqlite"
    engine = sa.create_engine(url, future=True, pool_pre_ping=not is_sqlite)
    if is_sqlite:
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine
