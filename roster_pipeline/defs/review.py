"""The review jobs an admin launches from the Dagster launchpad: review_approve, review_reject,
review_reprocess, review_undo.  Each is one op (``approve_held_import``, ``reject_held_import``, ``reprocess_district``:
an op cannot share its job's name) calling the same functions as ``roster-pipeline review``; the
launchpad YAML the Check Your Data email shows comes from ``control.review.launchpad_config``.
"""

import dagster as dg
from pydantic import Field

from roster_pipeline.control import review as actions
from roster_pipeline.control import undo as undo_action
from roster_pipeline.derived.build import rebuild_after_review
from roster_pipeline.registry.districts import District

from .derived_assets import build_metadata
from .district_status import district_status_event
from .publish_events import approved_materialization, undone_materialization
from .resources import DistrictRegistryResource, WarehouseResource


class ReviewConfig(dg.Config):
    district_id: str = Field(description="The paused district (its registry id).")
    reviewer: str = Field(description="Your name: recorded in the audit table with the action.")
    import_id: int | None = Field(
        default=None, description="The held import; default: the district's latest held import."
    )
    note: str = Field(default="", description="Why (recorded; for approve also the override reason).")


class RejectConfig(ReviewConfig):
    stay_paused: bool = Field(
        default=False, description="Keep the district paused after discarding the snapshot."
    )


class UndoConfig(dg.Config):
    district_id: str = Field(
        description="The district to roll back to the state before its last published import."
    )
    reviewer: str = Field(description="Your name: recorded in the audit table and on the undone import.")
    import_id: int | None = Field(
        default=None,
        description="The import to undo; it must be the district's latest published one (default: that one).",
    )
    note: str = Field(default="", description="Why (recorded, and shown in the Import Undone email).")
    force: bool = Field(
        default=False,
        description="Undo even if the change trips the district's thresholds "
        "(e.g. undoing a first import empties the district); recorded.",
    )
    resume: bool = Field(
        default=False,
        description="Let scheduled imports go on right away; by default the "
        "district stays paused so the next sync does not bring the undone data back.",
    )


def _finish(
    context: dg.OpExecutionContext,
    outcome: actions.ReviewOutcome,
    warehouse: WarehouseResource,
    registry: DistrictRegistryResource,
) -> dict[str, object]:
    context.log.info(
        f"{outcome.action} {outcome.district_id}: {outcome.outcome} (audit row {outcome.audit_id})"
    )
    context.log_event(district_status_event(warehouse.get(), registry.get()))
    context.add_output_metadata(
        {
            "district": outcome.district_id,
            "import_id": outcome.import_id,
            "outcome": outcome.outcome,
            "audit_id": outcome.audit_id,
        }
    )
    return {"district": outcome.district_id, "import_id": outcome.import_id, "outcome": outcome.outcome}


def _rebuild_derived(
    context: dg.OpExecutionContext, warehouse: WarehouseResource, district: District, action: str
) -> None:
    """The published roster changed outside a sync run: rebuild the derived tables and say so on their
    partitions, so the UI shows them built from the approved (or restored) data."""
    builds, line = rebuild_after_review(warehouse.get(), district, action)
    (context.log.info if builds else context.log.warning)(line)
    for name, build in builds.items():
        context.log_event(
            dg.AssetMaterialization(
                asset_key=name,
                partition=district.id,
                description=f"rebuilt after {action}",
                metadata=build_metadata(build),
            )
        )


def _known(registry: DistrictRegistryResource, district_id: str) -> str:
    return registry.get().get(district_id).id  # KeyError names the known districts


@dg.op(
    name=actions.REVIEW_OPS["approve"],
    description="Publish the held snapshot as it is (thresholds overridden, recorded); resume.",
)
def review_approve_op(
    context: dg.OpExecutionContext,
    config: ReviewConfig,
    warehouse: WarehouseResource,
    registry: DistrictRegistryResource,
) -> dict:
    district = registry.get().get(config.district_id)  # KeyError names the known districts
    outcome = actions.approve(
        warehouse.get(),
        district.id,
        config.reviewer,
        config.note,
        config.import_id,
        excluded_resources=district.excluded_resources(),
    )
    # Published outside a sync run: record it on the district's partition of published_roster.
    context.log_event(
        approved_materialization(warehouse.get(), outcome, config.reviewer.strip(), config.note)
    )
    _rebuild_derived(context, warehouse, district, "approve")
    return _finish(context, outcome, warehouse, registry)


@dg.op(
    name=actions.REVIEW_OPS["reject"],
    description="Discard the held snapshot, keep the published data; resume unless stay_paused.",
)
def review_reject_op(
    context: dg.OpExecutionContext,
    config: RejectConfig,
    warehouse: WarehouseResource,
    registry: DistrictRegistryResource,
) -> dict:
    outcome = actions.reject(
        warehouse.get(),
        _known(registry, config.district_id),
        config.reviewer,
        config.note,
        config.import_id,
        stay_paused=config.stay_paused,
    )
    return _finish(context, outcome, warehouse, registry)


@dg.op(
    name=actions.REVIEW_OPS["reprocess"],
    description="Discard the held snapshot and fetch again: the district_control sensor launches a new sync run.",
)
def review_reprocess_op(
    context: dg.OpExecutionContext,
    config: ReviewConfig,
    warehouse: WarehouseResource,
    registry: DistrictRegistryResource,
) -> dict:
    outcome = actions.reprocess(
        warehouse.get(),
        _known(registry, config.district_id),
        config.reviewer,
        config.note,
        config.import_id,
        leave_to_sensor=True,
    )
    return _finish(context, outcome, warehouse, registry)


@dg.op(
    name=undo_action.UNDO_OP,
    description="Roll the district back to the state before its last published import (same thresholds, "
    "force to override; recorded); the district stays paused unless resume.",
)
def review_undo_op(
    context: dg.OpExecutionContext,
    config: UndoConfig,
    warehouse: WarehouseResource,
    registry: DistrictRegistryResource,
) -> dict:
    district = registry.get().get(config.district_id)  # KeyError names the known districts
    outcome = undo_action.undo(
        warehouse.get(),
        district,
        config.reviewer,
        config.note,
        import_id=config.import_id,
        force=config.force,
        resume=config.resume,
    )
    assert outcome.result is not None
    # The district's published roster changed: say so on its partition of published_roster.
    context.log_event(undone_materialization(district.id, outcome.result))
    _rebuild_derived(context, warehouse, district, "undo")
    return _finish(context, outcome, warehouse, registry)


def _job(name: str, op: dg.OpDefinition, description: str) -> dg.JobDefinition:
    @dg.job(name=name, description=description, tags={"roster/kind": "review"})
    def _review() -> None:
        op()

    return _review


def build_review_jobs() -> list[dg.JobDefinition]:
    return [
        _job(
            actions.REVIEW_JOBS["approve"],
            review_approve_op,
            "Approve a paused district's held import: publish it with thresholds overridden.",
        ),
        _job(
            actions.REVIEW_JOBS["reject"],
            review_reject_op,
            "Reject a paused district's held import: discard it and keep the published data.",
        ),
        _job(
            actions.REVIEW_JOBS["reprocess"],
            review_reprocess_op,
            "Reprocess a paused district: discard the held import and sync it again now.",
        ),
        _job(
            undo_action.UNDO_JOB,
            review_undo_op,
            "Undo a district's last published import: restore what was published before it.",
        ),
    ]
