"""The control plane: which districts are paused, what admins decided, which emails went out.

It lives in the warehouse's own database (``warehouse.engine``) but in tables of its own, created by
``create_control_schema`` (idempotent), so pausing, auditing and notifying never touch the roster tables:

- ``district_state``: one row per district that was ever paused (paused flag, who, when, why, which
  import and run; a pending review action such as a requested reprocess);
- ``review_actions``: the audit trail of approve / reject / reprocess / pause / resume / undo;
- ``notifications``: the ledger of emails, one row per idempotency key (``<district>:<import>:<kind>``).

Everything here is free of Dagster, so the sensor, the review jobs, the CLI and the demo share it.
"""

from roster_pipeline.control.store import (
    DistrictState,
    all_states,
    create_control_schema,
    get_state,
    pause_district,
    resume_district,
)

__all__ = [
    "DistrictState",
    "all_states",
    "create_control_schema",
    "get_state",
    "pause_district",
    "resume_district",
]
