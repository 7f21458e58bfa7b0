"""The notifications ledger: one row per email (idempotency key), claimed before sending.

Delivery semantics — **at most once** per key:

1. ``claim`` inserts the row as ``sending`` (the key is UNIQUE, so only one claimer ever wins), *then*
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
from datetime import datetime, timedelta

import sqlalchemy as sa

from roster_pipeline.control.schema import notifications
from roster_pipeline.control.state import _utc, now_utc

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


def get(engine: sa.Engine, key: str) -> Notification | None:
    with engine.connect() as conn:
        row = (
            conn.execute(sa.select(notifications).where(notifications.c.idempotency_key == key))
            .mappings()
            .first()
        )
    return None if row is None else _row(row)


def for_district(engine: sa.Engine, district_id: str) -> list[Notification]:
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


def claim(
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
    existing = get(engine, key)
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


def retryable(engine: sa.Engine, kind: str, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> list[Notification]:
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


def stuck(
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
