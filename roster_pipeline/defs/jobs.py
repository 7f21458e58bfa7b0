"""Jobs a data engineer launches from the UI or the CLI."""

from __future__ import annotations

import dagster as dg

from roster_pipeline.pipeline.run_tags import SYNC_MODE_TAG

from .assets import DRY_RUN_JOB_NAME, GROUP
from .derived_assets import DERIVED_GROUP

SYNC_JOB_NAME = "sync_district"
# Run monitoring (dagster.yaml) fails a run still going after this long. DefaultRunLauncher cannot check
# whether a run worker is alive, so this is what ends a run whose worker died with its code server (or a
# killed `dagster job execute`); the control sensor then fails its import and pauses the district.
# A large district (~1M enrollments) syncs in minutes: six hours is far beyond any healthy run.
MAX_RUNTIME_TAGS = {"dagster/max_runtime": str(6 * 3600)}


def build_sync_job() -> dg.UnresolvedAssetJobDefinition:
    """The whole sync of one district partition (the assets' district partitions are the job's).

    In-process executor: the resources of one district are fetched one after another, each with the
    client's own bounded concurrency, so a district never sees more than ``max_concurrency`` requests at
    once (Infinite Campus asks for at most 5).  Districts still run in parallel as separate runs.
    The derived tables (class_teachers, student_logins) follow the publish in the same run.
    """
    return dg.define_asset_job(
        name=SYNC_JOB_NAME,
        selection=dg.AssetSelection.groups(GROUP, DERIVED_GROUP),
        executor_def=dg.in_process_executor,
        tags=MAX_RUNTIME_TAGS,
        description=(
            "Sync of one district: fetch every OneRoster resource into staging (full or delta: the run tag "
            f"{SYNC_MODE_TAG} if set, else roster_import's config, else full for a review reprocess, else "
            "the district's sync plan for its local today), check, publish, then "
            "rebuild its derived tables (class_teachers, student_logins) from the published rows."
        ),
    )


def build_dry_run_job() -> dg.UnresolvedAssetJobDefinition:
    """Fetch, check and diff a district without ever publishing: the preview of what a sync would do."""
    return dg.define_asset_job(
        name=DRY_RUN_JOB_NAME,
        selection=dg.AssetSelection.groups(GROUP) - dg.AssetSelection.assets("published_roster"),
        executor_def=dg.in_process_executor,
        tags=MAX_RUNTIME_TAGS,
        description=(
            "Dry run of one district: fetch every resource, run every check and build the per-field diff "
            "(import_field_changes), then stop. Nothing is published, whatever the checks say."
        ),
    )
