"""The control tables, in their own SQLAlchemy MetaData so the warehouse schema version is not touched."""

from __future__ import annotations

import sqlalchemy as sa

control_metadata = sa.MetaData()

Timestamp = sa.DateTime(timezone=True)
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

REVIEW_ACTIONS: tuple[str, ...] = ("approve", "reject", "reprocess", "pause", "resume")
NOTIFICATION_KINDS: tuple[str, ...] = ("check_your_data", "import_results", "run_failure")
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


def create_control_schema(engine: sa.Engine) -> None:
    """Create the control tables if missing; safe from every process at start-up (DDL serialised on Postgres).

    When every table is there nothing is locked, so the steps of many districts starting at once never
    queue behind each other here."""
    with engine.connect() as conn:
        if set(control_metadata.tables) <= set(sa.inspect(conn).get_table_names()):
            return
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(72317003)"))
        control_metadata.create_all(conn, checkfirst=True)
