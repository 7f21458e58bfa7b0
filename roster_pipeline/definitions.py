"""The Dagster code location: builds the Definitions object from the district registry, nothing else.

The registry (``ROSTER_DISTRICTS_FILE``, else the example in the package) is read when the code location
loads, so adding a district or changing one takes effect on a reload, with no code change.
"""

from __future__ import annotations

import dagster as dg

from roster_pipeline.defs.assets import build_roster_assets
from roster_pipeline.defs.derived_assets import build_derived_assets
from roster_pipeline.defs.district_status import district_status_spec
from roster_pipeline.defs.drop_folders import build_drop_folder_sensor
from roster_pipeline.defs.freshness import import_freshness_policy
from roster_pipeline.defs.jobs import build_dry_run_job, build_sync_job
from roster_pipeline.defs.partitions import district_partitions
from roster_pipeline.defs.resources import DistrictRegistryResource, WarehouseResource
from roster_pipeline.defs.review import build_review_jobs
from roster_pipeline.defs.schedules import build_district_schedules
from roster_pipeline.defs.sensors import build_control_sensor
from roster_pipeline.registry.districts import Registry, load_registry


def build_definitions(registry: Registry | None = None) -> dg.Definitions:
    registry = registry or load_registry()
    partitions_def = district_partitions(registry)
    return dg.Definitions(
        assets=[
            *build_roster_assets(partitions_def, import_freshness_policy(registry)),
            *build_derived_assets(partitions_def),
            district_status_spec(),
        ],
        jobs=[build_sync_job(), build_dry_run_job(), *build_review_jobs()],
        schedules=build_district_schedules(registry),
        sensors=[build_control_sensor(), build_drop_folder_sensor()],
        resources={
            "warehouse": WarehouseResource(),
            "registry": DistrictRegistryResource(),
        },
        # Also for what the jobs do not cover: a "Materialize" in the UI and `dagster asset materialize`
        # run Dagster's implicit asset job, which would otherwise run every step in its own process, all
        # of a district's resources at once, past the district's max_concurrency.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
