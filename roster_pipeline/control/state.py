"""Paused or not, per district: the flag the schedules, the manual-run guard and the review read.

A district is paused by the sensor (a held import, a failed sync run) and resumed by a review action
(approve, reject) or by a reprocess whose fresh import published.  Rows are upserted, never deleted,
so the last pause stays readable (who, when, why) after the district resumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from roster_pipeline.control.schema import district_state

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
