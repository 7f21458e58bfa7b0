"""The control tables and every query on them: pause state per district, the review audit trail and the
email ledger. The one module of the control plane that speaks SQL, so the rest of it reads and writes
through these functions.

The tables live in their own SQLAlchemy MetaData so the warehouse schema version is not touched.

**Pause state** (``district_state``): paused or not, per district: the flag the schedules, the run's
admission and the review read. A district is paused by the sensor (a held import, a failed sync run) and
resumed by a review action (approve, reject) or by a reprocess whose fresh import published. Rows are
upserted, never deleted, so the last pause stays readable (who, when, why) after the district resumed.

**Review audit** (``review_actions``): every approve, reject, reprocess, pause, resume and undo, with who,
when and outcome.

**Email ledger** (``notifications``): one row per email, claimed before sending.

Delivery semantics — **at most once** per key:

1. ``claim_notification`` inserts the row as ``sending`` (the key is UNIQUE, so only one claimer ever wins), *then*
   the caller sends, *then* ``mark_sent`` / ``mark_failed``.
2. A send that *reported* failure (``deliver`` returned ok=False: SMTP down, refused) is ``failed`` and is
   claimed again on a later tick, after ``retry_after``, at most ``max_attempts`` times in all.
3. A row left in ``sending`` (the process died between claim and mark) is never sent again
   automatically: the message may or may not have left, and a second "Check Your Data" for the same
   import is the failure this table exists to prevent.  Such rows are reported as *stuck* (sensor log,
   district_status) and an operator can ``release_stuck`` them to allow one more attempt.

The Message-ID is derived from the same key, so even a manual re-send is recognisably the same email.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, overload

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


SENSOR_ACTOR = "roster_pipeline sensor"


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DistrictState:
    district_id: str
    paused: bool
    paused_at: datetime | None
    paused_by: str | None
    reason: str | None
    import_id: int | None
    run_id: str | None
    pending_action: str | None
    pending_action_id: int | None
    updated_at: datetime | None

    @classmethod
    def running(cls, district_id: str) -> DistrictState:
        return cls(district_id, False, None, None, None, None, None, None, None, None)

    def describe(self) -> str:
        """One line for SkipReasons, errors and logs: since when, which import, why."""
        if not self.paused:
            return f"district {self.district_id} is not paused"
        since = self.paused_at.strftime("%Y-%m-%d %H:%M UTC") if self.paused_at else "an unknown time"
        what = f"import {self.import_id}" if self.import_id is not None else f"run {self.run_id or '?'}"
        reason = (self.reason or "no reason recorded").replace("\n", " ")
        if len(reason) > 300:
            reason = reason[:297] + "..."
        return f"district {self.district_id} is paused since {since} ({what}: {reason})"


def review_hint(district_id: str) -> str:
    return (
        f"review it with `roster-pipeline review {district_id} approve|reject|reprocess --reviewer NAME` "
        "or the review_approve / review_reject / review_reprocess jobs in the Dagster launchpad"
    )


@overload
def _utc(value: datetime) -> datetime: ...
@overload
def _utc(value: None) -> None: ...
def _utc(value: datetime | None) -> datetime | None:
    # SQLite gives naive datetimes back; everything stored here is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _from_row(row: Any) -> DistrictState:
    return DistrictState(
        district_id=row["district_id"],
        paused=bool(row["paused"]),
        paused_at=_utc(row["paused_at"]),
        paused_by=row["paused_by"],
        reason=row["reason"],
        import_id=row["import_id"],
        run_id=row["run_id"],
        pending_action=row["pending_action"],
        pending_action_id=row["pending_action_id"],
        updated_at=_utc(row["updated_at"]),
    )


def get_state(engine: sa.Engine, district_id: str) -> DistrictState:
    with engine.connect() as conn:
        row = (
            conn.execute(sa.select(district_state).where(district_state.c.district_id == district_id))
            .mappings()
            .first()
        )
    return DistrictState.running(district_id) if row is None else _from_row(row)


def all_states(engine: sa.Engine) -> dict[str, DistrictState]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(district_state).order_by(district_state.c.district_id)).mappings().all()
    return {row["district_id"]: _from_row(row) for row in rows}


def _upsert(conn: sa.Connection, district_id: str, values: dict[str, Any]) -> None:
    values = {**values, "updated_at": now_utc()}
    updated = conn.execute(
        district_state.update().where(district_state.c.district_id == district_id).values(**values)
    ).rowcount
    if not updated:
        conn.execute(district_state.insert().values(district_id=district_id, **{"paused": False, **values}))


def pause_district(
    engine: sa.Engine,
    district_id: str,
    *,
    by: str,
    reason: str,
    import_id: int | None,
    run_id: str | None,
) -> bool:
    """Pause (or re-point an already paused district at a newer held import). Returns True if anything changed."""
    with engine.begin() as conn:
        current = (
            conn.execute(sa.select(district_state).where(district_state.c.district_id == district_id))
            .mappings()
            .first()
        )
        if (
            current is not None
            and current["paused"]
            and current["import_id"] == import_id
            and current["run_id"] == run_id
        ):
            return False
        values: dict[str, Any] = {
            "paused": True,
            "paused_by": by,
            "reason": reason[:10_000],
            "import_id": import_id,
            "run_id": run_id,
        }
        if current is None or not current["paused"]:
            values["paused_at"] = now_utc()
        _upsert(conn, district_id, values)
    return True


def resume_district(engine: sa.Engine, district_id: str) -> bool:
    """Clear the paused flag (the last pause's details stay for the record). Returns True if it was paused."""
    with engine.begin() as conn:
        was = conn.execute(
            sa.select(district_state.c.paused).where(district_state.c.district_id == district_id)
        ).scalar()
        _upsert(conn, district_id, {"paused": False, "pending_action": None, "pending_action_id": None})
    return bool(was)


def request_action(engine: sa.Engine, district_id: str, action: str, action_id: int) -> None:
    """Leave a review action for the sensor to carry out (a reprocess needs a new sync run)."""
    with engine.begin() as conn:
        _upsert(conn, district_id, {"pending_action": action, "pending_action_id": action_id})


def clear_pending(engine: sa.Engine, district_id: str, action_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            district_state.update()
            .where(
                district_state.c.district_id == district_id, district_state.c.pending_action_id == action_id
            )
            .values(pending_action=None, pending_action_id=None, updated_at=now_utc())
        )


@dataclass(frozen=True)
class AuditRow:
    id: int
    district_id: str
    import_id: int | None
    action: str
    actor: str
    note: str | None
    at: datetime
    outcome: str | None


def record_action(
    engine: sa.Engine,
    district_id: str,
    action: str,
    actor: str,
    *,
    import_id: int | None = None,
    note: str | None = None,
    outcome: str | None = None,
) -> int:
    if action not in REVIEW_ACTIONS:
        raise ValueError(f"unknown review action {action!r}; one of {', '.join(REVIEW_ACTIONS)}")
    with engine.begin() as conn:
        return int(
            conn.execute(
                review_actions.insert()
                .values(
                    district_id=district_id,
                    import_id=import_id,
                    action=action,
                    actor=actor[:200],
                    note=note,
                    at=now_utc(),
                    outcome=outcome,
                )
                .returning(review_actions.c.id)
            ).scalar_one()
        )


def set_outcome(engine: sa.Engine, action_id: int, outcome: str) -> None:
    with engine.begin() as conn:
        conn.execute(review_actions.update().where(review_actions.c.id == action_id).values(outcome=outcome))


def actions_for(engine: sa.Engine, district_id: str) -> list[AuditRow]:
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.select(review_actions)
                .where(review_actions.c.district_id == district_id)
                .order_by(review_actions.c.id)
            )
            .mappings()
            .all()
        )
    return [AuditRow(**{**row, "at": _utc(row["at"])}) for row in rows]


DEFAULT_MAX_ATTEMPTS = 5
STUCK_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class Notification:
    idempotency_key: str
    district_id: str
    import_id: int | None
    kind: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    sent_at: datetime | None
    message_path_or_id: str | None
    detail: dict | None = None


def _row(row: sa.RowMapping) -> Notification:
    return Notification(
        idempotency_key=row["idempotency_key"],
        district_id=row["district_id"],
        import_id=row["import_id"],
        kind=row["kind"],
        status=row["status"],
        attempts=int(row["attempts"]),
        last_error=row["last_error"],
        created_at=_utc(row["created_at"]),
        last_attempt_at=_utc(row["last_attempt_at"]),
        sent_at=_utc(row["sent_at"]),
        message_path_or_id=row["message_path_or_id"],
        detail=row["detail"],
    )


def get_notification(engine: sa.Engine, key: str) -> Notification | None:
    with engine.connect() as conn:
        row = (
            conn.execute(sa.select(notifications).where(notifications.c.idempotency_key == key))
            .mappings()
            .first()
        )
    return None if row is None else _row(row)


def notifications_for(engine: sa.Engine, district_id: str) -> list[Notification]:
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.select(notifications)
                .where(notifications.c.district_id == district_id)
                .order_by(notifications.c.id)
            )
            .mappings()
            .all()
        )
    return [_row(r) for r in rows]


def claim_notification(
    engine: sa.Engine,
    key: str,
    *,
    district_id: str,
    import_id: int | None,
    kind: str,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    retry_after: timedelta = timedelta(seconds=60),
    now: datetime | None = None,
    detail: dict | None = None,
) -> bool:
    """Take the right to send ``key`` now. False: already sent, being sent, given up, or not due yet."""
    now = now or now_utc()
    try:
        with engine.begin() as conn:
            conn.execute(
                notifications.insert().values(
                    district_id=district_id,
                    import_id=import_id,
                    kind=kind,
                    idempotency_key=key,
                    status="sending",
                    attempts=1,
                    created_at=now,
                    last_attempt_at=now,
                    detail=detail,
                )
            )
        return True
    except sa.exc.IntegrityError:
        pass
    existing = get_notification(engine, key)
    if existing is None or existing.status != "failed" or existing.attempts >= max_attempts:
        return False
    if existing.last_attempt_at is not None and existing.last_attempt_at + retry_after > now:
        return False
    with engine.begin() as conn:  # compare-and-set: one claimer wins even with concurrent ticks
        won = conn.execute(
            notifications.update()
            .where(
                notifications.c.idempotency_key == key,
                notifications.c.status == "failed",
                notifications.c.attempts == existing.attempts,
            )
            .values(status="sending", attempts=existing.attempts + 1, last_attempt_at=now)
        ).rowcount
    return bool(won)


def mark_sent(engine: sa.Engine, key: str, path_or_id: str | None, warning: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(
            notifications.update()
            .where(notifications.c.idempotency_key == key)
            .values(status="sent", sent_at=now_utc(), message_path_or_id=path_or_id, last_error=warning)
        )


def mark_failed(engine: sa.Engine, key: str, error: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            notifications.update()
            .where(notifications.c.idempotency_key == key)
            .values(status="failed", last_error=error[:10_000])
        )


def retryable_notifications(
    engine: sa.Engine, kind: str, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> list[Notification]:
    """Failed sends of ``kind`` that still have attempts left (the sensor retries them)."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.select(notifications)
                .where(
                    notifications.c.status == "failed",
                    notifications.c.attempts < max_attempts,
                    notifications.c.kind == kind,
                )
                .order_by(notifications.c.id)
            )
            .mappings()
            .all()
        )
    return [_row(r) for r in rows]


def stuck_notifications(
    engine: sa.Engine, older_than: timedelta = STUCK_AFTER, now: datetime | None = None
) -> list[Notification]:
    """Rows left ``sending`` by a crash: maybe sent, never re-sent automatically (see module docstring)."""
    cutoff = (now or now_utc()) - older_than
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.select(notifications).where(
                    notifications.c.status == "sending", notifications.c.last_attempt_at < cutoff
                )
            )
            .mappings()
            .all()
        )
    return [_row(r) for r in rows]


def release_stuck(engine: sa.Engine, key: str) -> bool:
    """Operator's decision that a stuck email was not sent: allow one more attempt."""
    with engine.begin() as conn:
        return bool(
            conn.execute(
                notifications.update()
                .where(notifications.c.idempotency_key == key, notifications.c.status == "sending")
                .values(status="failed", last_error="released by an operator after a crash mid-send")
            ).rowcount
        )
