"""The district sync as Dagster assets, one partition per district.

    roster_import ─┬─ orgs ───────────────┐
                   ├─ academic_sessions   │
                   ├─ courses             ├─ published_roster
                   ├─ classes             │
                   ├─ users               │
                   ├─ enrollments         │
                   └─ demographics ───────┘

``roster_import`` opens an import in the warehouse; each resource asset streams its OneRoster collection
into staging and reports what publishing would change; ``published_roster`` publishes the whole import
in one transaction.  Staging before publishing is what lets blocking checks sit between the two: a
failed step leaves the published tables as they were.  Every asset writes to the warehouse itself and
returns only metadata, so no roster data goes through Dagster's pickling IO manager.
"""


from collections.abc import Sequence

import dagster as dg

from roster_pipeline.control.guard import refuse_if_paused
from roster_pipeline.oneroster import OneRosterClient
from roster_pipeline.resources import RESOURCES, Resource
from roster_pipeline.sync import (
    ResourceStageResult,
    client_config_for,
    import_for_run,
    open_import,
    stage_resource,
)
from roster_pipeline.warehouse import ChangeCounts

from .resources import DistrictRegistryResource, WarehouseResource

GROUP = "roster_sync"

RESOURCE_DESCRIPTIONS: dict[str, str] = {
    "orgs": "The district and its schools (OneRoster /orgs).",
    "academic_sessions": "School year, terms and grading periods (OneRoster /academicSessions).",
    "courses": "The course catalogue of the school year (OneRoster /courses).",
    "classes": "Class sections with their course, school and terms (OneRoster /classes).",
    "users": "Students, teachers, administrators and guardians (OneRoster /users).",
    "enrollments": "Who is in which class, in which role; the primary-teacher flag (OneRoster /enrollments).",
    "demographics": "Per-student demographics (OneRoster /demographics).",
}


def change_metadata(changes: ChangeCounts) -> dict[str, int]:
    return {
        "added": changes.added,
        "updated": changes.updated,
        "deleted": changes.deleted,
        "unchanged": changes.unchanged,
        "tobedeleted": changes.tobedeleted,
    }


def stage_metadata(result: ResourceStageResult, import_id: int) -> dict[str, object]:
    return {
        "district": result.district_id,
        "import_id": import_id,
        "dagster/row_count": result.staged,
        "rows_fetched": result.fetched,
        "pages": result.pages,
        "requests": result.requests,
        "retries": result.retries,
        "duration_seconds": round(result.seconds, 3),
        "records_per_second": round(result.records_per_second, 1),
        **change_metadata(result.changes),
    }


def changes_table_markdown(published: dict[str, ChangeCounts]) -> str:
    lines = [
        "| resource | fetched | added | updated | deleted | unchanged |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, c in published.items():
        lines.append(f"| {name} | {c.fetched} | {c.added} | {c.updated} | {c.deleted} | {c.unchanged} |")
    return "\n".join(lines)


def build_roster_import_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="roster_import",
        partitions_def=partitions_def,
        group_name=GROUP,
        kinds={"oneroster"},
        description=(
            "Opens an import for the district: checks it is enabled, asks the SIS for its current school "
            "year and records the import in the warehouse's import_runs table. Every resource of the same "
            "run stages into this import."
        ),
    )
    def roster_import(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, registry: DistrictRegistryResource
    ) -> dg.MaterializeResult:
        district = registry.get().get(context.partition_key)
        wh = warehouse.get()
        refuse_if_paused(wh.engine, district.id, context.run.tags)  # paused: only a review action may sync
        with OneRosterClient(client_config_for(district)) as client:
            import_id, school_year = open_import(wh, district, client, context.run.run_id, sync_mode="full")
        context.log.info(f"district {district.id}: import {import_id} opened for school year {school_year}")
        return dg.MaterializeResult(
            metadata={
                "district": district.id,
                "district_name": district.name,
                "import_id": import_id,
                "school_year": school_year,
                "sync_mode": "full",
            }
        )

    return roster_import


def build_resource_asset(resource: Resource, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=resource.name,
        partitions_def=partitions_def,
        group_name=GROUP,
        deps=["roster_import"],
        kinds={"oneroster", "sql"},
        description=(
            f"{RESOURCE_DESCRIPTIONS[resource.name]} Streamed page by page into the warehouse staging table "
            f"staging_{resource.name}; metadata says what publishing this snapshot would add, update and delete."
        ),
    )
    def stage(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, registry: DistrictRegistryResource
    ) -> dg.MaterializeResult:
        district = registry.get().get(context.partition_key)
        wh = warehouse.get()
        import_id = import_for_run(wh, district.id, context.run.run_id)
        try:
            with OneRosterClient(client_config_for(district)) as client:
                result = stage_resource(wh, client, import_id, district.id, resource)
        except Exception as exc:
            wh.fail_import(import_id, f"{resource.name}: {type(exc).__name__}: {exc}")
            raise
        context.log.info(
            f"district {district.id}: {resource.name} staged {result.staged} rows in {result.pages} pages "
            f"({result.seconds:.1f}s)"
        )
        return dg.MaterializeResult(metadata=stage_metadata(result, import_id))

    return stage


def build_publish_asset(
    partitions_def: dg.PartitionsDefinition, resources: Sequence[Resource]
) -> dg.AssetsDefinition:
    @dg.asset(
        name="published_roster",
        partitions_def=partitions_def,
        group_name=GROUP,
        deps=[r.name for r in resources],
        kinds={"sql"},
        description=(
            "Publishes the staged import of every resource in ONE transaction: adds, updates (previous "
            "version kept in history) and soft-deletes (tobedeleted, or vanished from a full pull). A failure "
            "anywhere leaves the published tables exactly as they were."
        ),
    )
    def published_roster(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, registry: DistrictRegistryResource
    ) -> dg.MaterializeResult:
        district = registry.get().get(context.partition_key)
        wh = warehouse.get()
        import_id = import_for_run(wh, district.id, context.run.run_id)
        try:
            published = wh.publish(import_id)
        except Exception as exc:
            wh.fail_import(import_id, f"publish: {type(exc).__name__}: {exc}")
            raise
        totals = {
            key: sum(getattr(c, key) for c in published.values())
            for key in ("fetched", "added", "updated", "deleted", "unchanged")
        }
        return dg.MaterializeResult(
            metadata={
                "district": district.id,
                "import_id": import_id,
                **{f"total_{k}": v for k, v in totals.items()},
                "changes": dg.MetadataValue.md(changes_table_markdown(published)),
                **{f"{name}_current_rows": n for name, n in wh.current_counts(district.id).items()},
            }
        )

    return published_roster


def build_roster_assets(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [
        build_roster_import_asset(partitions_def),
        *(build_resource_asset(r, partitions_def) for r in RESOURCES),
        build_publish_asset(partitions_def, RESOURCES),
    ]
