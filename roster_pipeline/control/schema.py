"""The control tables, in their own SQLAlchemy MetaData so the warehouse schema version is not touched."""

from __future__ import annotations

import sqlalchemy as sa

control_metadata = sa.MetaData()

Timestamp = sa.DateTime(timezone=True)
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

REVIEW_ACTIONS: tuple[str, ...] = ("approve", "reject", "reprocess", "pause", "resume", "undo")
NOTIFICATION_KINDS: tuple[str, ...] = ("check_your_data", "import_results", "run_failure", "import_undone")
NOTIFICATION_STATUSES: tuple[str, ...] = ("sending", "sent", "failed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


district_state = sa.Table(
    "district_state",
    control_metadata,
    sa.Column("district_id", sa.String(64), primary_key=True),
    sa.Column("paused", sa.Boolean, nullable=False, default=False),
    sa.Column("paused_at", Timestamp),
    sa.Column("paused_by", sa.String(200)),
    sa.Column("reason", sa.Text),
    sa.Column("import_id", sa.BigInteger),  # the held import (or the failed run's import) that paused it
    sa.Column("run_id", sa.String(64)),
    # A review action the sensor still has to carry out (today: "reprocess", which needs a new run).
    sa.Column("pending_action", sa.String(20)),
    sa.Column("pending_action_id", sa.BigInteger),  # the review_actions row that asked for it
    sa.Column("updated_at", Timestamp, nullable=False),
)

review_actions = sa.Table(
    "review_actions",
    control_metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("district_id", sa.String(64), nullable=False),
    sa.Column("import_id", sa.BigInteger),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("outcome", sa.Text),
    sa.CheckConstraint(_in("action", REVIEW_ACTIONS), name="ck_review_actions_action"),
    sa.Index("ix_review_actions_district", "district_id", "id"),
)

notifications = sa.Table(
    "notifications",
    control_metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("district_id", sa.String(64), nullable=False),
    sa.Column("import_id", sa.BigInteger),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("idempotency_key", sa.String(300), nullable=False, unique=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_attempt_at", Timestamp),
    sa.Column("sent_at", Timestamp),
    sa.Column("message_path_or_id", sa.Text),
    sa.Column("detail", sa.JSON),  # what a retry needs to rebuild a run_failure email (run id, error)
    sa.CheckConstraint(_in("kind", NOTIFICATION_KINDS), name="ck_notifications_kind"),
    sa.CheckConstraint(_in("status", NOTIFICATION_STATUSES), name="ck_notifications_status"),
)


# CHECK constraints whose list of values grows: (table, constraint name, column, values)
_VALUE_CHECKS: tuple[tuple[sa.Table, str, str, tuple[str, ...]], ...] = (
    (review_actions, "ck_review_actions_action", "action", REVIEW_ACTIONS),
    (notifications, "ck_notifications_kind", "kind", NOTIFICATION_KINDS),
)


def _check_text(conn: sa.Connection, table: sa.Table, name: str) -> str:
    """The CHECK as the database has it (Postgres: the constraint; SQLite: the table's CREATE statement)."""
    if conn.dialect.name == "postgresql":
        return str(
            conn.execute(
                sa.text(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = :n AND conrelid = to_regclass(:t)"
                ),
                {"n": name, "t": table.name},
            ).scalar()
            or ""
        )
    return str(
        conn.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table.name}
        ).scalar()
        or ""
    )


def _stale_checks(conn: sa.Connection) -> list[tuple[sa.Table, str, str, tuple[str, ...]]]:
    """The value CHECKs that do not yet know every value."""
    return [
        check
        for check in _VALUE_CHECKS
        if not all(f"'{v}'" in _check_text(conn, check[0], check[1]) for v in check[3])
    ]


def upgrade_value_checks(conn: sa.Connection) -> list[str]:
    """Widen a CHECK that predates a new value (review action ``undo``, email kind ``import_undone``).

    ``create_all`` never alters an existing table, and the control tables have no version row: the
    constraint itself says whether it knows every value.  Postgres swaps the constraint in place; SQLite
    rebuilds the table (rows and ids kept).  Returns the tables upgraded."""
    from roster_pipeline.warehouse.migrations import rebuild_sqlite_table

    upgraded = []
    for table, name, column, values in _stale_checks(conn):
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.text(
                    f'ALTER TABLE "{table.name}" DROP CONSTRAINT IF EXISTS "{name}", '
                    f'ADD CONSTRAINT "{name}" CHECK ({_in(column, values)})'
                )
            )
        else:
            rebuild_sqlite_table(conn, table)
        upgraded.append(table.name)
    return upgraded


def create_control_schema(engine: sa.Engine) -> None:
    """Create the control tables if missing, widen their value CHECKs; safe from every process at start-up
    (DDL serialised on Postgres).

    When every table is there and knows every value nothing is locked, so the steps of many districts
    starting at once never queue behind each other here."""
    with engine.connect() as conn:
        if set(control_metadata.tables) <= set(sa.inspect(conn).get_table_names()) and not _stale_checks(
            conn
        ):
            return
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(72317003)"))
        control_metadata.create_all(conn, checkfirst=True)
        upgrade_value_checks(conn)
