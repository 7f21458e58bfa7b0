"""May this district sync now? One answer for every place that asks.

A schedule tick, a drop-folder sensor tick, a backfill choosing its districts and the run itself (when
``roster_import`` opens the import) all ask the same question. Each used to answer it with its own copy
of the rules, and the copies drifted (different orders, different texts for the same refusal). Here the
rules are written once, in the order they are checked:

1. the district is in the registry;
2. it is enabled (``enabled: false`` keeps its data and refuses every run);
3. it is not inside a rollover pause (``rollover.mode: pause``), unless the run carries an override or is a
   review reprocess;
4. it is not paused by the control loop (a held or failed import), unless the run is a review action
   allowed while paused (reprocess).

The first rule broken is the refusal; its text names the district and what to do. Asking costs no request
to the SIS: the last rule reads one row of the warehouse's control tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from roster_pipeline.control.guard import ALLOWED_WHILE_PAUSED, DistrictPausedError
from roster_pipeline.control.store import get_state, review_hint
from roster_pipeline.pipeline.rollover import RolloverPolicy, policy_for_run, rollover_policy
from roster_pipeline.pipeline.run_tags import REVIEW_ACTION_TAG
from roster_pipeline.registry.districts import District

if TYPE_CHECKING:  # a type only: the SQL is in control.store and warehouse/
    from roster_pipeline.warehouse.engine import Engine


@dataclass(frozen=True)
class Admission:
    """The answer: ``refusal`` is None when the district may sync; ``rollover`` is the policy that applies."""

    district_id: str
    refusal: str | None
    rollover: RolloverPolicy | None = None

    @property
    def admitted(self) -> bool:
        return self.refusal is None

    def require(self) -> RolloverPolicy:
        """For the run itself: the rollover policy, or ``DistrictPausedError`` with the refusal.

        The control sensor treats that class as a refusal, not a failed sync: a refused run neither pauses
        the district nor emails its admins.
        """
        if self.refusal is not None:
            raise DistrictPausedError(self.refusal)
        assert self.rollover is not None
        return self.rollover


def disabled_reason(district_id: str) -> str:
    return (
        f"district {district_id!r} is disabled (enabled: false in the district registry): it has no schedule and "
        "its runs are refused; its published data is kept as it is. To re-enable it set enabled: true for it in "
        "the registry file and reload the code location: its schedule comes back and the next sync resumes from "
        "what is published"
    )


def admission(
    district_id: str,
    district: District | None,
    engine: Engine | None,
    tags: Mapping[str, str] | None = None,
    *,
    local_date: dt.date | None = None,
) -> Admission:
    """Whether ``district`` (the registry's entry for ``district_id``, None if it has none) may sync now.

    ``tags``: the run's tags (an override or a review action lifts a pause); ``local_date``: the district's
    local date a schedule tick is for (default: the run's date, from its tags or today). ``engine``: the
    warehouse, for the control loop's pause; None where the caller only chooses districts to launch (a
    backfill), whose runs are then admitted one by one when they start.
    """
    tags = tags or {}
    if district is None:
        return Admission(
            district_id, f"district {district_id!r} is not in the registry; reload the code location"
        )
    if not district.enabled:
        return Admission(district_id, disabled_reason(district_id))
    policy = (
        rollover_policy(district, local_date) if local_date is not None else policy_for_run(district, tags)
    )
    if policy.block_reason is not None:
        return Admission(district_id, policy.block_reason, policy)
    if engine is not None and tags.get(REVIEW_ACTION_TAG) not in ALLOWED_WHILE_PAUSED:
        state = get_state(engine, district_id)
        if state.paused:
            refusal = f"{state.describe()}; only a review action may sync a paused district: {review_hint(district_id)}"
            return Admission(district_id, refusal, policy)
    return Admission(district_id, None, policy)
