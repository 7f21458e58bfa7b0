"""The one rule the sync enforces itself: a paused district does not sync, except as a review action."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa

from roster_pipeline.control.state import get_state, review_hint

REVIEW_ACTION_TAG = "roster/review_action"
REVIEW_ACTION_ID_TAG = "roster/review_action_id"
ALLOWED_WHILE_PAUSED = frozenset({"reprocess"})


class DistrictPausedError(RuntimeError):
    """A run of a paused district was refused; the message says why and how to review it."""


def refuse_if_paused(engine: sa.Engine, district_id: str, tags: Mapping[str, str]) -> None:
    """Raise DistrictPausedError unless the district runs or the run carries a review tag (reprocess)."""
    state = get_state(engine, district_id)
    if not state.paused or tags.get(REVIEW_ACTION_TAG) in ALLOWED_WHILE_PAUSED:
        return
    raise DistrictPausedError(
        f"{state.describe()}; this run was refused (only a review action may sync a paused district): "
        f"{review_hint(district_id)}"
    )
