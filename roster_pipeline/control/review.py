"""The admin's review of a paused district: approve, reject, reprocess. Shared by the Dagster review jobs
and ``roster-pipeline review``, so both do exactly the same thing and leave the same audit row.

Every action writes one ``review_actions`` row (who, when, what, note, outcome) — also when it fails,
with the error as the outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from roster_pipeline.control import store
from roster_pipeline.control.store import get_state, pause_district, request_action, resume_district
from roster_pipeline.warehouse import ImportRun, Warehouse
from roster_pipeline.warehouse.counts import ChangeCounts

REVIEW_JOBS: dict[str, str] = {
    "approve": "review_approve",
    "reject": "review_reject",
    "reprocess": "review_reprocess",
}
REVIEW_OPS: dict[str, str] = {
    "approve": "approve_held_import",
    "reject": "reject_held_import",
    "reprocess": "reprocess_district",
}


def launchpad_config(
    action: str, district_id: str, import_id: int | None, reviewer: str = "YOUR NAME"
) -> str:
    """The YAML to paste into the launchpad of the action's job (the email and the docs show it)."""
    lines = ["ops:", f"  {REVIEW_OPS[action]}:", "    config:", f'      district_id: "{district_id}"']
    if import_id:
        lines.append(f"      import_id: {import_id}")
    lines += [f'      reviewer: "{reviewer}"', '      note: ""']
    if action == "reject":
        lines.append("      stay_paused: false")
    return "\n".join(lines) + "\n"


class ReviewError(RuntimeError):
    """The review action cannot apply (no held import, wrong district, already published...)."""


@dataclass(frozen=True)
class ReviewOutcome:
    action: str
    district_id: str
    import_id: int | None
    audit_id: int
    outcome: str
    resumed: bool
    # approve only: what the publish did per resource, so the caller can record it on the district's
    # partition of published_roster (the figures a sync run records there)
    published: Mapping[str, ChangeCounts] | None = field(default=None, kw_only=True)


def _held(
    warehouse: Warehouse, district_id: str, import_id: int | None, *, required: bool
) -> ImportRun | None:
    if import_id is None:
        run = warehouse.held_import(district_id)
        if run is None and required:
            raise ReviewError(f"district {district_id} has no held import to review")
        return run
    run = warehouse.get_import(import_id)
    if run.district_id != district_id:
        raise ReviewError(f"import {import_id} belongs to district {run.district_id}, not {district_id}")
    if run.status != "held":
        raise ReviewError(
            f"import {import_id} of district {district_id} is {run.status}, not held; nothing to review"
        )
    return run


def _audited(
    warehouse: Warehouse,
    district_id: str,
    action: str,
    reviewer: str,
    note: str,
    import_id: int | None,
    error: Exception,
) -> None:
    store.record_action(
        warehouse.engine,
        district_id,
        action,
        reviewer,
        import_id=import_id,
        note=note or None,
        outcome=f"failed: {type(error).__name__}: {error}",
    )


def _require_reviewer(reviewer: str) -> str:
    if not reviewer or not reviewer.strip():
        raise ReviewError("a reviewer name is required (who takes this decision is recorded)")
    return reviewer.strip()


def approve(
    warehouse: Warehouse,
    district_id: str,
    reviewer: str,
    note: str = "",
    import_id: int | None = None,
    *,
    excluded_resources: Mapping[str, str] | None = None,
) -> ReviewOutcome:
    """Publish the held snapshot as it is (thresholds overridden for that import only, recorded), resume.

    ``excluded_resources`` ({resource: reason}, ``District.excluded_resources()``): data the district
    switched off since the snapshot was staged (pii) is purged first, so approving never publishes it."""
    reviewer = _require_reviewer(reviewer)
    try:
        run = _held(warehouse, district_id, import_id, required=True)
        assert run is not None
        for resource_name, reason in (excluded_resources or {}).items():
            warehouse.purge_resource(district_id, resource_name, reason, import_id=run.import_id)
        published = warehouse.publish(
            run.import_id,
            override=True,
            overridden_by=reviewer,
            override_reason=note or f"approved by {reviewer}",
        )
    except Exception as exc:
        _audited(warehouse, district_id, "approve", reviewer, note, import_id, exc)
        raise
    totals = {k: sum(getattr(c, k) for c in published.values()) for k in ("added", "updated", "deleted")}
    resumed = resume_district(warehouse.engine, district_id)
    outcome = (
        f"import {run.import_id} published with thresholds overridden "
        f"(+{totals['added']} ~{totals['updated']} -{totals['deleted']}); district resumed"
    )
    audit_id = store.record_action(
        warehouse.engine,
        district_id,
        "approve",
        reviewer,
        import_id=run.import_id,
        note=note or None,
        outcome=outcome,
    )
    return ReviewOutcome(
        "approve", district_id, run.import_id, audit_id, outcome, resumed, published=published
    )


def reject(
    warehouse: Warehouse,
    district_id: str,
    reviewer: str,
    note: str = "",
    import_id: int | None = None,
    stay_paused: bool = False,
) -> ReviewOutcome:
    """Discard the held snapshot (published data untouched) and resume, unless asked to stay paused.

    Without a held import (the district was paused by a failed run) this only resumes it."""
    reviewer = _require_reviewer(reviewer)
    try:
        run = _held(warehouse, district_id, import_id, required=False)
        if run is None and not get_state(warehouse.engine, district_id).paused:
            raise ReviewError(
                f"district {district_id} has no held import and is not paused; nothing to reject"
            )
        if run is not None:
            warehouse.discard_import(run.import_id)
    except Exception as exc:
        _audited(warehouse, district_id, "reject", reviewer, note, import_id, exc)
        raise
    what = f"import {run.import_id} discarded, published data kept" if run else "no held import"
    if stay_paused:
        resumed = False
        outcome = f"{what}; district stays paused"
    else:
        resumed = resume_district(warehouse.engine, district_id)
        outcome = f"{what}; district resumed"
    audit_id = store.record_action(
        warehouse.engine,
        district_id,
        "reject",
        reviewer,
        import_id=run.import_id if run else None,
        note=note or None,
        outcome=outcome,
    )
    return ReviewOutcome("reject", district_id, run.import_id if run else None, audit_id, outcome, resumed)


def reprocess(
    warehouse: Warehouse,
    district_id: str,
    reviewer: str,
    note: str = "",
    import_id: int | None = None,
    *,
    leave_to_sensor: bool = True,
) -> ReviewOutcome:
    """Discard the held snapshot (if any) and ask for a fresh sync; the district stays paused until it lands.

    ``leave_to_sensor``: the control sensor launches the sync run (the Dagster job's way); the CLI passes
    False and runs the sync itself, then calls ``settle_reprocess``.
    """
    reviewer = _require_reviewer(reviewer)
    try:
        run = _held(warehouse, district_id, import_id, required=False)
        if run is not None:
            warehouse.discard_import(run.import_id)
    except Exception as exc:
        _audited(warehouse, district_id, "reprocess", reviewer, note, import_id, exc)
        raise
    what = f"import {run.import_id} discarded" if run else "no held import"
    how = "the control sensor launches a new sync run" if leave_to_sensor else "a new sync runs now"
    outcome = f"{what}; {how} (the district stays paused until its import publishes)"
    audit_id = store.record_action(
        warehouse.engine,
        district_id,
        "reprocess",
        reviewer,
        import_id=run.import_id if run else None,
        note=note or None,
        outcome=outcome,
    )
    if leave_to_sensor:
        request_action(warehouse.engine, district_id, "reprocess", audit_id)
    return ReviewOutcome("reprocess", district_id, run.import_id if run else None, audit_id, outcome, False)


def settle_reprocess(
    warehouse: Warehouse,
    district_id: str,
    import_id: int | None,
    actor: str,
    action_id: int | None = None,
    run_id: str | None = None,
    error: str | None = None,
) -> str:
    """After a reprocess sync: resume if its import published, re-point the pause if it was held again."""
    engine = warehouse.engine
    run = warehouse.get_import(import_id) if import_id is not None else None
    if run is not None and run.status == "published":
        resume_district(engine, district_id)
        outcome = f"reprocess: import {run.import_id} passed its checks and was published; district resumed"
        store.record_action(engine, district_id, "resume", actor, import_id=run.import_id, outcome=outcome)
    elif run is not None and run.status == "held":
        pause_district(
            engine,
            district_id,
            by=actor,
            reason=run.hold_reason or "held by its checks",
            import_id=run.import_id,
            run_id=run.run_id,
        )
        outcome = (
            f"reprocess: import {run.import_id} failed its checks again and is held; district stays paused"
        )
    else:
        outcome = (
            f"reprocess: the sync did not finish ({error or (run.status if run else 'no import')}); "
            "district stays paused"
        )
    if action_id is not None:
        store.set_outcome(engine, action_id, outcome)
    return outcome
