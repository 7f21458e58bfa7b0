"""The sync steps of one district, free of Dagster, so assets, the demo and the benchmark share them.

A sync is: open an import (decides school year and mode), stage every resource page by page from the
client into the warehouse's staging tables, diff each staged resource against what is published, then
publish the whole import in one transaction.  Dagster assets call these functions one step each.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from roster_pipeline.derived.build import DerivedBuild, build_derived_tables
from roster_pipeline.oneroster import OneRosterError
from roster_pipeline.pipeline.admission import admission
from roster_pipeline.pipeline.run_tags import SyncMode
from roster_pipeline.pipeline.snapshot_checks import SnapshotChecks, check_snapshot
from roster_pipeline.pipeline.sync_mode import ModeDecision, ModeRequest, decide_mode, escalate_on_vanish
from roster_pipeline.records.catalogue import Resource
from roster_pipeline.registry.districts import District
from roster_pipeline.sources import RosterSource, open_source
from roster_pipeline.sources.csv_bundle import CsvBundleError
from roster_pipeline.validation import issue_rejects, validate_batch
from roster_pipeline.warehouse import ChangeCounts, Warehouse
from roster_pipeline.warehouse.purge import PurgeCounts
from roster_pipeline.warehouse.writer import BackgroundWriter

#: What each staging figure measures.  Fetching and parsing run on the client's threads and loading on
#: the writer's, overlapping with validation, so the figures are each stage's own busy time.
STAGE_SECONDS: dict[str, str] = {
    "fetch": "waiting for the client's next page (HTTP and parsing not yet done when asked)",
    "parse": "parsing JSON response bodies, summed over the client's threads",
    "validate": "Pandera models and storability checks, per batch",
    "load": "building staging rows (flatten, hash) plus the COPY and quarantine writes on the writer thread",
    "classify": "the resource's classification pass against the published rows (index, statistics, SQL)",
}


class SyncError(RuntimeError):
    """A sync step cannot go on; the message names the district (and resource) concerned."""


@dataclass(frozen=True)
class ResourceStageResult:
    """What staging one resource did: fetch figures, validation outcome, and what publishing would change."""

    district_id: str
    resource: str
    fetched: int
    staged: int
    pages: int
    requests: int
    retries: int
    seconds: float
    changes: ChangeCounts
    rejected: int = 0  # records quarantined by the schema checks (never staged)
    warnings: int = 0
    quarantined: int = (
        0  # distinct records of the resource in the quarantine after staging (all checks so far)
    )
    duplicates: int = 0  # identical repeats received (paging overlap): harmless, staged once
    conflicting_duplicates: int = 0  # copies of sourcedIds served with different content: all quarantined
    rejects_by_check: dict[str, int] = field(default_factory=dict)
    since: dt.datetime | None = None  # the delta's dateLastModified bound; None for a full pull
    # Where the time went (see STAGE_SECONDS); stages overlap, so they add up to more than ``seconds``.
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def sync_mode(self) -> SyncMode:
        return "full" if self.since is None else "delta"

    @property
    def records_per_second(self) -> float:
        return self.fetched / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class ResourceSkipResult:
    """A resource the district never fetches nor stores (PII settings): why, and what was purged now."""

    district_id: str
    resource: str
    reason: str
    purged: PurgeCounts


@dataclass
class DistrictSyncResult:
    """The outcome of a whole district sync (used by the demo's table and the benchmark)."""

    district_id: str
    import_id: int
    school_year: int
    staged: dict[str, ResourceStageResult] = field(default_factory=dict)
    skipped: dict[str, ResourceSkipResult] = field(default_factory=dict)
    published: dict[str, ChangeCounts] = field(default_factory=dict)  # empty when the checks held it
    checks: SnapshotChecks | None = None
    seconds: float = 0.0
    mode: ModeDecision | None = None
    derived: dict[str, DerivedBuild] = field(default_factory=dict)  # rebuilt after a publish, else empty


def school_year_for(district: District, client: RosterSource, today: dt.date | None = None) -> int:
    """The school year an import belongs to.

    A registry override wins; otherwise the SIS's own schoolYear session that contains today; and when
    the SIS serves none, the school year that today falls in (July starts a new one, as in US districts).
    """
    if district.school_year is not None:
        return district.school_year
    served = client.current_school_year()
    if served is not None:
        return served
    today = today or dt.date.today()
    return today.year + 1 if today.month >= 7 else today.year


@dataclass(frozen=True)
class OpenedImport:
    """An import a run opened: its id, school year and the sync mode it runs in (with the delta's since)."""

    import_id: int
    school_year: int
    mode: ModeDecision


def open_sync_import(
    warehouse: Warehouse, district: District, client: RosterSource, run_id: str, request: ModeRequest
) -> OpenedImport:
    """Start an import for a run in the requested mode; a delta with nothing published before runs full.

    The caller has admitted the run first (``roster_pipeline.pipeline.admission``), before any request to the SIS.
    """
    school_year = school_year_for(district, client)
    # A source whose data has a mode of its own (a CSV bundle's manifest) decides it; REST sources have none.
    mode = decide_mode(warehouse, district, school_year, request, getattr(client, "delivered_mode", None))
    count = getattr(client, "collection_count", None)  # REST sources; a CSV bundle's files decide its mode
    if mode.mode == "delta" and count is not None:
        mode = escalate_on_vanish(mode, district, warehouse.current_counts(district.id), count)
    import_id = warehouse.begin_import(district.id, run_id, school_year, mode.mode)
    return OpenedImport(import_id, school_year, mode)


def import_for_run(warehouse: Warehouse, district_id: str, run_id: str) -> int:
    """The import a Dagster run opened for a district (its resource assets stage into it)."""
    import_id = warehouse.import_for_run(district_id, run_id)
    if import_id is None:
        raise SyncError(
            f"district {district_id!r}: run {run_id} opened no import; materialize 'roster_import' in the same "
            "run (launch the district's sync job rather than a single resource)"
        )
    return import_id


def skip_resource(
    warehouse: Warehouse, import_id: int, district: District, resource: Resource, *, purge: bool = True
) -> ResourceSkipResult:
    """For a resource the district switched off: request nothing, and purge whatever the warehouse still
    holds of it for the district (switching PII off means it must be gone, not merely stop updating).

    ``purge=False`` (a dry run, which must change nothing) leaves the purge to the next real sync."""
    reason = district.excluded_resources().get(resource.name)
    if reason is None:
        raise SyncError(f"district {district.id!r}: {resource.name} is not switched off; stage it instead")
    purged = (
        warehouse.purge_resource(district.id, resource.name, reason, import_id=import_id)
        if purge
        else PurgeCounts()
    )
    return ResourceSkipResult(district.id, resource.name, reason, purged)


def stage_resource(
    warehouse: Warehouse,
    client: RosterSource,
    import_id: int,
    district: District,
    resource: Resource,
    since: dt.datetime | None = None,
) -> ResourceStageResult:
    """Stream one resource from the SIS into staging, batch by batch, then diff it in SQL.

    ``since`` (a delta import) asks the SIS only for records modified after it; the warehouse knows the
    import is a delta and so never infers deletions from what the pull did not return.

    Each batch is validated with the resource's Pandera model as it arrives: valid records are staged,
    failing ones go to the quarantine with the failed check, so nothing is dropped silently and nothing
    invalid can reach the published tables.  Records the client reports with a batch (``Batch.issues``:
    one sourcedId served with different contents) are quarantined too, every copy, including one staged
    from an earlier batch; identical repeats are staged once and counted as duplicates.
    """
    excluded = district.excluded_resources().get(resource.name)
    if excluded is not None:  # checked before any request: switched-off data is never fetched
        raise SyncError(f"{excluded}; refusing to stage {resource.name}")
    started = time.perf_counter()
    staged = rejected = warnings = 0
    fetch_s = validate_s = build_s = 0.0
    rejects_by_check: Counter[str] = Counter()
    build = warehouse.row_builder(import_id, resource.name)
    # Writes go to a thread of their own, in order: Postgres loads page n while this thread validates
    # and builds page n+1 (see warehouse.writer).
    with BackgroundWriter(f"{district.id}-{resource.name}") as writer:
        batches = iter(client.iter_batches(resource.collection, since=since))
        while True:
            mark = time.perf_counter()
            batch = next(batches, None)
            now = time.perf_counter()
            fetch_s += now - mark
            if batch is None:
                break
            checked = validate_batch(district, resource.name, batch)
            locate = getattr(
                batch, "locate", None
            )  # a file source puts file, line and column into its rejects
            if locate is not None:
                checked.rejects = [locate(r) for r in checked.rejects]
                checked.warnings = [locate(r) for r in checked.warnings]
            mark, now = now, time.perf_counter()
            validate_s += now - mark
            rows = build(checked.valid)
            build_s += time.perf_counter() - now
            writer.submit(warehouse.stage_rows, import_id, resource.name, rows)
            staged += len(rows)
            if checked.rejects or checked.warnings:
                writer.submit(warehouse.record_rejects, import_id, [*checked.rejects, *checked.warnings])
            rejected += len(batch) - len(checked.valid)
            warnings += len(checked.warnings)
            rejects_by_check.update(f"{r.field}: {r.check}" for r in checked.rejects)
            unreadable = getattr(batch, "row_rejects", ())
            if unreadable:  # rows a file source could not make records of (wrong cell count ...): quarantined
                writer.submit(warehouse.record_rejects, import_id, list(unreadable))
                rejected += len(unreadable)
                rejects_by_check.update(f"{r.field}: {r.check}" for r in unreadable)
            issues = getattr(batch, "issues", ())
            if issues:  # conflicting duplicates: quarantine every copy, withdrawing one staged earlier
                found = issue_rejects(district.id, resource.name, issues)
                writer.submit(warehouse.reject_staged, import_id, found)
                rejects_by_check.update(f"{r.field}: {r.check}" for r in found)
            del batch, checked, rows  # let the page go before the next one is parsed
    seconds = time.perf_counter() - started
    stats = client.stats_for(resource.collection)
    stage_seconds = {
        "fetch": fetch_s,
        "parse": float(getattr(stats, "parse_seconds", 0.0)),
        "validate": validate_s,
        "load": build_s + writer.busy_seconds,
    }
    warehouse.record_fetch_stats(
        import_id,
        resource.name,
        pages=stats.pages,
        seconds=seconds,
        dropped_duplicates=stats.duplicates_dropped,
    )
    mark = time.perf_counter()
    changes = warehouse.diff(import_id, resource.name)  # the resource's one classification pass
    stage_seconds["classify"] = time.perf_counter() - mark
    return ResourceStageResult(
        district_id=district.id,
        resource=resource.name,
        fetched=stats.records,
        staged=staged,
        pages=stats.pages,
        requests=stats.requests,
        retries=stats.retries,
        seconds=seconds,
        changes=changes,
        rejected=rejected,
        warnings=warnings,
        rejects_by_check=dict(rejects_by_check.most_common()),
        since=since,
        quarantined=warehouse.rejected_record_counts(import_id).get(resource.name, 0),
        duplicates=changes.duplicates,
        conflicting_duplicates=stats.conflicting_duplicates,
        stage_seconds={name: round(value, 3) for name, value in stage_seconds.items()},
    )


def sync_district(
    warehouse: Warehouse,
    district: District,
    run_id: str,
    resources: tuple[Resource, ...],
    *,
    sync_mode: SyncMode = "full",
    environ: Mapping[str, str] | None = None,
    client_overrides: Mapping[str, Any] | None = None,
    run_tags: Mapping[str, str] | None = None,
) -> DistrictSyncResult:
    """Run every step for one district outside Dagster (benchmark and scripts); fails the import on error.

    After a publish the derived tables are rebuilt from the published rows, as in the sync job.

    ``sync_mode="delta"`` counts from the last published import (full when there is none).
    ``client_overrides`` adjusts client settings the registry does not carry (retry budget, backoff), so
    a script or a test can give up in seconds where a scheduled run patiently waits minutes.
    ``run_tags`` are the tags a Dagster run would carry (a drop-folder district's bundle: ``roster/csv_bundle``).
    """
    started = time.perf_counter()
    # Before any request, as roster_import: the registry, enabled, a rollover pause. Not the control loop's
    # pause: a script or the benchmark runs beside Dagster, on a warehouse that may have no control tables.
    admission(district.id, district, None, run_tags).require()
    with open_source(district, environ, client_overrides, run_tags) as client:
        opened = open_sync_import(warehouse, district, client, run_id, ModeRequest(sync_mode, "config"))
        import_id, since = opened.import_id, opened.mode.since
        result = DistrictSyncResult(district.id, import_id, opened.school_year, mode=opened.mode)
        step = "stage"
        try:
            excluded = district.excluded_resources()
            for resource in resources:
                step = f"stage {resource.name}"
                if resource.name in excluded:
                    result.skipped[resource.name] = skip_resource(warehouse, import_id, district, resource)
                    continue
                result.staged[resource.name] = stage_resource(
                    warehouse, client, import_id, district, resource, since
                )
            step = "checks"
            result.checks = check_snapshot(warehouse, district, import_id)
            if result.checks.passed:
                step = "publish"
                result.published = warehouse.publish(import_id)
        except BaseException as exc:
            warehouse.fail_import(import_id, f"{step}: {type(exc).__name__}: {exc}")
            if isinstance(exc, Exception) and not isinstance(
                exc, (OneRosterError, SyncError, CsvBundleError)
            ):
                # A warehouse failure (a lost connection, a Postgres restart) knows neither the district
                # nor the step; the person on call needs both.
                raise SyncError(
                    f"district {district.id!r}, step {step!r}: {type(exc).__name__}: {_first_line(exc)}"
                ) from exc
            raise
    if result.published:  # as the job does after published_roster; a failure here leaves the publish as it is
        result.derived = build_derived_tables(warehouse, district)
    result.seconds = time.perf_counter() - started
    return result


def _first_line(exc: BaseException) -> str:
    """SQLAlchemy appends the statement and its parameters to its messages; the first line is the cause."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
