"""`roster-pipeline review DISTRICT approve|reject|reprocess|undo`: the admin's review from a shell.

It runs the same functions as the review_* Dagster jobs, in-process, against the warehouse of
``ROSTER_DATABASE_URL`` (or ``--database-url``) and the registry of ``ROSTER_DISTRICTS_FILE`` (or
``--districts-file``).  ``reprocess`` runs the district's sync right here (tagged as a review action, so a
paused district is allowed through) and then resumes the district if the fresh import published, or
leaves it paused on the new held import.  ``undo`` rolls the district back to the state before its last
published import (``--dry-run`` shows what it would do; ``--force`` past the thresholds; ``--resume``).
The emails follow from the district_control sensor.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

import dagster as dg

from roster_pipeline.control import review as actions
from roster_pipeline.control import undo as undo_action
from roster_pipeline.control.store import create_control_schema
from roster_pipeline.defs.publish_events import approved_materialization, undone_materialization
from roster_pipeline.derived.build import rebuild_after_review
from roster_pipeline.pipeline.run_tags import REVIEW_ACTION_ID_TAG, REVIEW_ACTION_TAG
from roster_pipeline.registry.districts import ENV_FILE_VARIABLE, load_registry
from roster_pipeline.warehouse import ENV_DATABASE_URL, Warehouse

ACTIONS = ("approve", "reject", "reprocess", "undo")
UNDO_ONLY = ("force", "resume", "dry_run")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("district", help="the district's registry id")
    parser.add_argument(
        "action",
        choices=ACTIONS,
        help="approve: publish the held import as it is; reject: discard "
        "it and keep the published data; reprocess: fetch again now and re-check; undo: restore what was published "
        "before the district's last published import",
    )
    parser.add_argument(
        "--import-id", type=int, default=None, help="the held import (default: the latest held one)"
    )
    parser.add_argument(
        "--reviewer", default=None, help="your name, recorded in the audit (default: your login)"
    )
    parser.add_argument("--note", default="", help="why; recorded (for approve also as the override reason)")
    parser.add_argument("--stay-paused", action="store_true", help="reject only: keep the district paused")
    parser.add_argument(
        "--force", action="store_true", help="undo only: even if it trips the thresholds (recorded)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="undo only: let scheduled imports go on right away "
        "(by default the district stays paused so the next sync does not bring the data back)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="undo only: show what it would do, change nothing"
    )
    parser.add_argument("--database-url", default=None, help=f"warehouse URL (default: ${ENV_DATABASE_URL})")
    parser.add_argument(
        "--districts-file", default=None, help=f"registry YAML (default: ${ENV_FILE_VARIABLE})"
    )


def _instance() -> dg.DagsterInstance:
    """The deployment's instance when DAGSTER_HOME is set (the run shows in the UI), else an ephemeral one."""
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def record_on_partition(instance: dg.DagsterInstance | None, event: dg.AssetMaterialization) -> None:
    """Report a change of the published roster made outside any run to the Dagster instance (the UI's,
    when DAGSTER_HOME is set), so the district's partition shows what is published now."""
    if instance is not None:
        instance.report_runless_asset_event(event)
        return
    with _instance() as own:
        own.report_runless_asset_event(event)


def run_reprocess_sync(
    warehouse: Warehouse,
    district_id: str,
    action_id: int,
    instance: dg.DagsterInstance,
    districts_file: str | None,
    database_url: str | None,
) -> tuple[int | None, str | None, bool]:
    """Run the district's sync job in-process as a review action: (import_id, run_id, success)."""
    from roster_pipeline.definitions import build_definitions
    from roster_pipeline.defs.jobs import SYNC_JOB_NAME
    from roster_pipeline.defs.resources import DistrictRegistryResource, WarehouseResource

    registry = load_registry(districts_file)
    defs = build_definitions(registry)
    job = defs.resolve_job_def(SYNC_JOB_NAME)
    result = job.execute_in_process(
        partition_key=district_id,
        instance=instance,
        tags={REVIEW_ACTION_TAG: "reprocess", REVIEW_ACTION_ID_TAG: str(action_id)},
        resources={
            "warehouse": WarehouseResource(
                database_url=database_url
            ),  # None: the env var, no password in config
            "registry": DistrictRegistryResource(districts_file=districts_file),
        },
        raise_on_error=False,
    )
    return warehouse.import_for_run(district_id, result.run_id), result.run_id, result.success


def review(
    action: str,
    district_id: str,
    *,
    reviewer: str,
    note: str = "",
    import_id: int | None = None,
    stay_paused: bool = False,
    database_url: str | None = None,
    districts_file: str | None = None,
    instance: dg.DagsterInstance | None = None,
    force: bool = False,
    resume: bool = False,
    dry_run: bool = False,
) -> str:
    """Carry out one review action; returns the outcome sentence (raises ReviewError when it cannot apply)."""
    registry = load_registry(districts_file)
    district = registry.get(district_id)
    warehouse = Warehouse(database_url)
    warehouse.create_schema()
    create_control_schema(warehouse.engine)
    if action == "approve":
        approved = actions.approve(
            warehouse,
            district.id,
            reviewer,
            note,
            import_id,
            excluded_resources=district.excluded_resources(),
        )
        # Published outside a sync run: record it on the district's partition, as the review job does.
        record_on_partition(instance, approved_materialization(warehouse, approved, reviewer.strip(), note))
        return f"{approved.outcome}\n{rebuild_after_review(warehouse, district, 'approve')[1]}"
    if action == "reject":
        return actions.reject(
            warehouse, district.id, reviewer, note, import_id, stay_paused=stay_paused
        ).outcome
    if action == "undo":
        undone = undo_action.undo(
            warehouse,
            district,
            reviewer,
            note,
            import_id=import_id,
            force=force,
            resume=resume,
            preview=dry_run,
        )
        assert undone.result is not None
        text = f"{undone.outcome}\n{undo_action.describe(undone.result)}"
        if dry_run:
            return text
        record_on_partition(instance, undone_materialization(district.id, undone.result))
        return f"{text}\n{rebuild_after_review(warehouse, district, 'undo')[1]}"
    if action != "reprocess":
        raise ValueError(f"unknown review action {action!r}; one of {', '.join(ACTIONS)}")
    outcome = actions.reprocess(warehouse, district.id, reviewer, note, import_id, leave_to_sensor=False)
    new_import, run_id, success = run_reprocess_sync(
        warehouse, district.id, outcome.audit_id, instance or _instance(), districts_file, database_url
    )
    return actions.settle_reprocess(
        warehouse,
        district.id,
        new_import,
        reviewer,
        outcome.audit_id,
        run_id,
        None if success else f"run {run_id} failed",
    )


def run(args: argparse.Namespace) -> int:
    reviewer = args.reviewer or os.environ.get("ROSTER_REVIEWER") or getpass.getuser()
    if args.stay_paused and args.action != "reject":
        print("--stay-paused only applies to reject", file=sys.stderr)
        return 2
    if args.action != "undo" and any(getattr(args, name) for name in UNDO_ONLY):
        print("--force, --resume and --dry-run only apply to undo", file=sys.stderr)
        return 2
    try:
        outcome = review(
            args.action,
            args.district,
            reviewer=reviewer,
            note=args.note,
            import_id=args.import_id,
            stay_paused=args.stay_paused,
            database_url=args.database_url,
            districts_file=args.districts_file,
            force=args.force,
            resume=args.resume,
            dry_run=args.dry_run,
        )
    except (actions.ReviewError, KeyError) as exc:
        print(f"review {args.action} {args.district}: {exc}", file=sys.stderr)
        return 1
    print(f"review {args.action} {args.district} by {reviewer}: {outcome}")
    return 0
