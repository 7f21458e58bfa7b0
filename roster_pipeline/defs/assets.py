"""The district sync as Dagster assets, one partition per district.

    roster_import ─┬─ orgs ───────────────┐
                   ├─ academic_sessions   │
                   ├─ courses             ├─ checked_snapshot ── published_roster
                   ├─ classes             │   (blocking checks)
                   ├─ users               │
                   ├─ enrollments         │
                   └─ demographics ───────┘

``roster_import`` opens an import in the warehouse; each resource asset streams its OneRoster collection
into staging, validating every batch with the resource's Pandera model (failures are quarantined);
``checked_snapshot`` runs the referential and threshold checks as blocking asset checks; only when they
all pass does ``published_roster`` publish the whole import, in one transaction.  A failed check, a
crash or an exception anywhere leaves the published tables exactly as they were.  Every asset writes to the warehouse itself and
returns only metadata, so no roster data goes through Dagster's pickling IO manager.
"""

import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd
from dagster_pandera import pandera_schema_to_dagster_type

from roster_pipeline.pipeline.admission import admission
from roster_pipeline.pipeline.rollover import policy_for_run
from roster_pipeline.pipeline.run_policy import start_rollover_import
from roster_pipeline.pipeline.snapshot_checks import (
    CHANGE_THRESHOLDS,
    CHECK_DESCRIPTIONS,
    SCHOOL_THRESHOLDS,
    VALID_RECORDS,
    check_snapshot,
)
from roster_pipeline.pipeline.sync import (
    ResourceSkipResult,
    ResourceStageResult,
    SyncError,
    import_for_run,
    open_sync_import,
    skip_resource,
    stage_resource,
)
from roster_pipeline.pipeline.sync_mode import ModeDecision, requested_mode, since_for_import
from roster_pipeline.records.catalogue import RESOURCES, Resource
from roster_pipeline.records.rejects import Reject
from roster_pipeline.sources import open_source
from roster_pipeline.validation.schemas import SCHEMAS
from roster_pipeline.warehouse import OPEN_STATUSES, ChangeCounts, Warehouse

from .district_status import district_status_event
from .resources import DistrictRegistryResource, WarehouseResource

if TYPE_CHECKING:
    # Dagster's type of one metadata entry (a MetadataValue, or a plain value it wraps); not exported.
    from dagster._core.definitions.metadata import RawMetadataValue

GROUP = "roster_sync"
# Who answers for these assets in the UI (Dagster owners are emails or "team:<name>").
OWNERS = ["team:roster_data"]
PII_RESOURCES = frozenset({"users", "demographics"})  # names, emails, birth dates, demographics


def asset_tags(layer: str, pii: bool = False) -> dict[str, str]:
    """Tags the asset catalogue filters on: the domain, the step of the import, and whether it holds PII."""
    return {"domain": "rostering", "layer": layer, **({"pii": "true"} if pii else {})}


DRY_RUN_JOB_NAME = "dry_run_district"

RESOURCE_DESCRIPTIONS: dict[str, str] = {
    "orgs": "The district and its schools (OneRoster /orgs).",
    "academic_sessions": "School year, terms and grading periods (OneRoster /academicSessions).",
    "courses": "The course catalogue of the school year (OneRoster /courses).",
    "classes": "Class sections with their course, school and terms (OneRoster /classes).",
    "users": "Students, teachers, administrators and guardians (OneRoster /users).",
    "enrollments": "Who is in which class, in which role; the primary-teacher flag (OneRoster /enrollments).",
    "demographics": "Per-student demographics (OneRoster /demographics).",
}


@contextmanager
def failing_import(warehouse: Warehouse, import_id: int, step: str) -> Iterator[None]:
    """Mark the import failed (with the step and the error) when a step raises, then re-raise.

    The run fails in Dagster either way; this makes the warehouse's import_runs say so too, so a
    half-staged import is never mistaken for one that is still running.
    """
    try:
        yield
    except Exception as exc:
        warehouse.fail_import(import_id, f"{step}: {type(exc).__name__}: {exc}")
        raise


def refuse_if_not_open(warehouse: Warehouse, district_id: str, import_id: int, step: str) -> None:
    """A step after a failed one fetches nothing: the import cannot take its records anyway, and its
    failure would only bury the first cause (which stays the import's recorded error)."""
    run = warehouse.get_import(import_id)
    if run.status not in OPEN_STATUSES:
        first = (run.error or "no cause recorded").splitlines()[0]
        raise SyncError(
            f"district {district_id!r}: {step} not fetched: import {import_id} is already {run.status} "
            f"({first})"
        )


def change_metadata(changes: ChangeCounts) -> dict[str, int]:
    return {
        "added": changes.added,
        "updated": changes.updated,
        "deleted": changes.deleted,
        "unchanged": changes.unchanged,
        "tobedeleted": changes.tobedeleted,
    }


def mode_metadata(mode: ModeDecision) -> dict[str, "RawMetadataValue"]:
    """The run's sync mode as the UI shows it: mode, where the request came from, since, any fallback."""
    return {
        "sync_mode": mode.mode,
        "sync_mode_requested": f"{mode.requested.mode} ({mode.requested.source})",
        "since": mode.since.isoformat() if mode.since else "",
        **({"delta_base_import_id": mode.base_import_id} if mode.base_import_id is not None else {}),
        **({"sync_mode_fallback": mode.fallback_reason} if mode.fallback_reason else {}),
        **({"vanish_probe": mode.vanish_probe} if mode.vanish_probe else {}),
    }


def stage_metadata(result: ResourceStageResult, import_id: int) -> dict[str, "RawMetadataValue"]:
    return {
        "district": result.district_id,
        "import_id": import_id,
        "sync_mode": result.sync_mode,
        "since": result.since.isoformat() if result.since else "",
        "dagster/row_count": result.staged,
        "rows_fetched": result.fetched,
        "pages": result.pages,
        "requests": result.requests,
        "retries": result.retries,
        "duration_seconds": round(result.seconds, 3),
        "records_per_second": round(result.records_per_second, 1),
        "rejected": result.rejected,
        "quarantined": result.quarantined,
        "duplicates": result.duplicates,
        "conflicting_duplicates": result.conflicting_duplicates,
        "warnings": result.warnings,
        **change_metadata(result.changes),
        **(
            {"rejects_by_check": dg.MetadataValue.json(result.rejects_by_check)}
            if result.rejects_by_check
            else {}
        ),
        "stage_seconds": dg.MetadataValue.json(result.stage_seconds),
    }


def skip_metadata(result: ResourceSkipResult, import_id: int) -> dict[str, "RawMetadataValue"]:
    """A switched-off resource: skipped, why, and how many stored rows this run purged (0 once gone)."""
    purged = result.purged
    return {
        "district": result.district_id,
        "import_id": import_id,
        "skipped": True,
        "skip_reason": result.reason,
        "dagster/row_count": 0,
        "rows_fetched": 0,
        "requests": 0,
        "purged_rows": purged.total,
        "purged": dg.MetadataValue.json(
            {
                "published": purged.published_rows,
                "history": purged.history_rows,
                "staging": purged.staging_rows,
                "rejected": purged.rejected_rows,
                "field_changes": purged.field_change_rows,
            }
        ),
    }


def changes_table_markdown(published: dict[str, ChangeCounts]) -> str:
    lines = [
        "| resource | fetched | added | updated | deleted | unchanged |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, c in published.items():
        lines.append(f"| {name} | {c.fetched} | {c.added} | {c.updated} | {c.deleted} | {c.unchanged} |")
    return "\n".join(lines)


class RosterImportConfig(dg.Config):
    """Launchpad setting; the run tag roster/sync_mode wins over it, and the district's plan applies without either."""

    sync_mode: str | None = None  # "full" | "delta"; None: the tag, else the district's plan for today


def build_roster_import_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="roster_import",
        partitions_def=partitions_def,
        group_name=GROUP,
        owners=OWNERS,
        tags=asset_tags("import"),
        kinds={"oneroster"},
        description=(
            "Opens an import for the district: checks it is enabled, asks the SIS for its current school "
            "year, decides the sync mode (run tag roster/sync_mode, else run config, else the district's "
            "plan: nightly delta, weekly full) and records the import in the warehouse's import_runs table. "
            "Every resource of the same run stages into this import, in its mode."
        ),
    )
    def roster_import(
        context: dg.AssetExecutionContext,
        config: RosterImportConfig,
        warehouse: WarehouseResource,
        registry: DistrictRegistryResource,
    ) -> dg.MaterializeResult:
        district = registry.get().get(context.partition_key)
        wh = warehouse.get()
        # Disabled, in a rollover pause, or paused for review (only a review action may sync): refused.
        rollover = admission(district.id, district, wh.engine, context.run.tags).require()
        request = requested_mode(district, context.run.tags, config.sync_mode)
        with open_source(district, run_tags=context.run.tags) as client:
            opened = open_sync_import(wh, district, client, context.run.run_id, request)
        rollover_metadata = start_rollover_import(wh, district, opened.import_id, rollover, context.run.tags)
        context.log.info(
            f"district {district.id}: import {opened.import_id} opened for school year {opened.school_year}: "
            f"{opened.mode.describe()}"
        )
        if opened.mode.fallback_reason:
            context.log.warning(f"district {district.id}: {opened.mode.fallback_reason}")
        return dg.MaterializeResult(
            metadata={
                "district": district.id,
                "district_name": district.name,
                "import_id": opened.import_id,
                "school_year": opened.school_year,
                **mode_metadata(opened.mode),
                **rollover_metadata,
            }
        )

    return roster_import


def column_schema(resource_name: str) -> dg.TableSchema:
    """The columns a resource's records must have, as the UI's column view shows them: taken from the
    same Pandera model that validates every staged batch, so what the catalogue says is what is enforced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # a beta API used on purpose; its output is tested
        dagster_type = pandera_schema_to_dagster_type(SCHEMAS[resource_name])
    schema = dagster_type.metadata["schema"]
    assert isinstance(schema, dg.TableSchemaMetadataValue)
    return schema.schema


def build_resource_asset(resource: Resource, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=resource.name,
        partitions_def=partitions_def,
        metadata={"dagster/column_schema": column_schema(resource.name)},
        group_name=GROUP,
        owners=OWNERS,
        tags=asset_tags("staging", pii=resource.name in PII_RESOURCES),
        deps=["roster_import"],
        kinds={"oneroster", "sql"},
        description=(
            f"{RESOURCE_DESCRIPTIONS[resource.name]} Streamed page by page into the import's own warehouse "
            f"staging table stg_{resource.name}_<import_id>, each batch validated by its Pandera model (failing records are quarantined "
            "in rejected_records); metadata says what publishing this snapshot would add, update and delete. "
            "A district that switched the resource off (pii in the registry) is skipped: nothing is requested, "
            "what is stored of it is purged, and the metadata says so (skipped, skip_reason, purged_rows)."
        ),
    )
    def stage(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, registry: DistrictRegistryResource
    ) -> dg.MaterializeResult:
        district = registry.get().get(context.partition_key)
        wh = warehouse.get()
        import_id = import_for_run(wh, district.id, context.run.run_id)
        refuse_if_not_open(wh, district.id, import_id, resource.name)
        if resource.name in district.excluded_resources():
            # Still a materialization (downstream checks and publish must run), marked skipped with why.
            dry_run = context.run.job_name == DRY_RUN_JOB_NAME  # a dry run changes nothing, purges included
            with failing_import(wh, import_id, resource.name):
                skipped = skip_resource(wh, import_id, district, resource, purge=not dry_run)
            context.log.info(f"{skipped.reason}; purged {skipped.purged.total} stored rows")
            return dg.MaterializeResult(metadata=skip_metadata(skipped, import_id))
        with failing_import(wh, import_id, resource.name):
            since = since_for_import(wh, district, import_id)  # the mode roster_import stored, not recomputed
            with open_source(district, run_tags=context.run.tags) as client:
                result = stage_resource(wh, client, import_id, district, resource, since)
        context.log.info(
            f"district {district.id}: {resource.name} ({result.sync_mode}"
            f"{f' since {since.isoformat()}' if since else ''}) staged {result.staged} rows in {result.pages} "
            f"pages ({result.seconds:.1f}s)"
        )
        return dg.MaterializeResult(metadata=stage_metadata(result, import_id))

    return stage


def build_publish_asset(
    partitions_def: dg.PartitionsDefinition, freshness_policy: dg.FreshnessPolicy | None = None
) -> dg.AssetsDefinition:
    @dg.asset(
        name="published_roster",
        partitions_def=partitions_def,
        group_name=GROUP,
        owners=OWNERS,
        tags=asset_tags("published", pii=True),
        freshness_policy=freshness_policy,
        deps=["checked_snapshot"],
        kinds={"sql"},
        description=(
            "Runs only when every blocking check of checked_snapshot passed. "
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
        started = time.perf_counter()
        with failing_import(wh, import_id, "publish"):
            published = wh.publish(import_id)
        publish_seconds = time.perf_counter() - started
        # district_status's "last import" and "last published" change with every publish, not only when
        # the control sensor pauses or resumes someone; record it here too. The import is published by
        # now: a failure to record the status must not fail the run.
        try:
            context.log_event(district_status_event(wh, registry.get()))
        except Exception as exc:  # noqa: BLE001 - the control sensor records it on its next change
            context.log.warning(
                f"district {district.id}: district_status not recorded: {type(exc).__name__}: {exc}"
            )
        totals = {
            key: sum(getattr(c, key) for c in published.values())
            for key in ("fetched", "added", "updated", "deleted", "unchanged")
        }
        return dg.MaterializeResult(
            metadata={
                "district": district.id,
                "district_name": district.name,
                "import_id": import_id,
                **{f"total_{k}": v for k, v in totals.items()},
                "changes": dg.MetadataValue.md(changes_table_markdown(published)),
                **{f"{name}_current_rows": n for name, n in wh.current_counts(district.id).items()},
                "stage_seconds": dg.MetadataValue.json({"publish": round(publish_seconds, 3)}),
            }
        )

    return published_roster


def summary_markdown(summary: pd.DataFrame) -> str:
    lines = [
        "| resource | published | fetched | added | updated | deleted | rejected |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in summary.itertuples():
        lines.append(
            f"| {row.resource} | {row.published_before} | {row.fetched} | {row.added} ({row.added_pct:.1f}%) | "
            f"{row.updated} ({row.updated_pct:.1f}%) | {row.deleted} ({row.deleted_pct:.1f}%) | "
            f"{row.rejected} ({row.rejected_pct:.1f}%) |"
        )
    return "\n".join(lines)


SAMPLE_REJECTS = 15  # quarantined rows shown in the UI; the full list is in rejected_records


def rejects_markdown(rejects: Sequence[Reject], limit: int = SAMPLE_REJECTS) -> str:
    """A sample of quarantined rows for the UI: ids, fields and values only (records hold no secrets)."""
    lines = ["| resource | sourcedId | field | check | value |", "| --- | --- | --- | --- | --- |"]
    for r in list(rejects)[:limit]:
        value = (r.value or "").replace("|", "\\|")[:60]
        lines.append(f"| {r.resource} | {r.sourced_id or ''} | {r.field} | {r.check} | {value} |")
    return "\n".join(lines)


def district_check_specs(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    """The three blocking checks of checked_snapshot, one result per district partition."""
    return [
        # Scoped to the district partition: each evaluation is recorded on its district, so the Checks
        # tab and a district's partition page show that district's own latest result, not whichever
        # district ran last.
        dg.AssetCheckSpec(
            name,
            asset="checked_snapshot",
            blocking=True,
            description=CHECK_DESCRIPTIONS[name],
            partitions_def=partitions_def,
        )
        for name in (VALID_RECORDS, CHANGE_THRESHOLDS, SCHOOL_THRESHOLDS)
    ]


def build_checked_snapshot_asset(
    partitions_def: dg.PartitionsDefinition, resources: Sequence[Resource]
) -> dg.AssetsDefinition:
    with warnings.catch_warnings():
        # Partitioned check specs are a "preview" API in Dagster 1.13; the pipeline depends on them on
        # purpose (one result per district), so the warning would only be noise on every code-location load.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        check_specs = district_check_specs(partitions_def)

    @dg.asset(
        name="checked_snapshot",
        partitions_def=partitions_def,
        group_name=GROUP,
        owners=OWNERS,
        tags=asset_tags("checks"),
        deps=[r.name for r in resources],
        kinds={"pandera", "sql"},
        check_specs=check_specs,
        description=(
            "The district's staged snapshot, checked as a whole before anything is published: referential "
            "checks (records pointing at missing users, classes, schools, courses or terms are quarantined), "
            "the change summary against what is published, the import thresholds per resource and per school, "
            "and the per-record, per-field diff (table import_field_changes). A failing check holds the import "
            "for review and stops published_roster. In the dry_run_district job nothing is ever published."
        ),
    )
    def checked_snapshot(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, registry: DistrictRegistryResource
    ) -> dg.MaterializeResult:
        district = registry.get().get(context.partition_key)
        wh = warehouse.get()
        import_id = import_for_run(wh, district.id, context.run.run_id)
        dry_run = context.run.job_name == DRY_RUN_JOB_NAME
        rollover = policy_for_run(district, context.run.tags)  # relaxed thresholds inside the change window
        started = time.perf_counter()
        with failing_import(wh, import_id, "checks"):
            checks = check_snapshot(wh, district, import_id, dry_run=dry_run, relaxed=rollover.relaxed)
        check_seconds = time.perf_counter() - started
        status = "dry run (never published)" if dry_run else ("ready to publish" if checks.passed else "held")
        if not checks.passed:
            context.log.warning(f"district {district.id}: import {import_id} held: {checks.reason()}")
        errors = wh.rejects(import_id, severity="error", limit=SAMPLE_REJECTS)  # a sample, never them all
        return dg.MaterializeResult(
            metadata={
                "district": district.id,
                "district_name": district.name,
                "import_id": import_id,
                "import_status": status,
                "first_import": checks.first_import,
                "thresholds": rollover.relaxed_label or "normal",
                "rejected_records": sum(wh.rejected_record_counts(import_id).values()),
                "reference_rejects": checks.reference_rejects,
                "warnings": checks.reference_warnings
                + sum(sum(by_check.values()) for by_check in wh.reject_counts(import_id, "warning").values()),
                "field_changes": checks.field_changes,
                "changes": dg.MetadataValue.md(summary_markdown(checks.summary)),
                **({"rejected_sample": dg.MetadataValue.md(rejects_markdown(errors))} if errors else {}),
                "stage_seconds": dg.MetadataValue.json(
                    getattr(checks, "stage_seconds", None) or {"check": round(check_seconds, 3)}
                ),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=outcome.name,
                    passed=outcome.passed,
                    severity=dg.AssetCheckSeverity.ERROR,
                    description=outcome.summary,
                    metadata={
                        "violations": outcome.metadata["violations"],
                        "details": dg.MetadataValue.md(outcome.metadata["details_markdown"]),
                        "first_import": checks.first_import,
                    },
                )
                for outcome in checks.outcomes.values()
            ],
        )

    return checked_snapshot


def build_roster_assets(
    partitions_def: dg.PartitionsDefinition, freshness_policy: dg.FreshnessPolicy | None = None
) -> list[dg.AssetsDefinition]:
    """``freshness_policy`` (from the registry's schedules, defs.freshness) goes on published_roster."""
    return [
        build_roster_import_asset(partitions_def),
        *(build_resource_asset(r, partitions_def) for r in RESOURCES),
        build_checked_snapshot_asset(partitions_def, RESOURCES),
        build_publish_asset(partitions_def, freshness_policy),
    ]
