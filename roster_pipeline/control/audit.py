"""The review audit trail: every approve, reject, reprocess, pause and resume, with who, when and outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from roster_pipeline.control.schema import REVIEW_ACTIONS, review_actions
from roster_pipeline.control.state import _utc, now_utc


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
