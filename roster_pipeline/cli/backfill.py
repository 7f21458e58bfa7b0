"""`roster-pipeline backfill --all | --districts a,b`: one sync run per district, e.g. after rollover.

The same thing as a Dagster backfill over the district partitions of ``sync_district`` (UI: Jobs →
sync_district → select partitions → Launch backfill): each district is its own run of the real job, so
each goes through the normal checks — a district whose snapshot fails them is held for review while the
others publish.  Runs execute here, in process and one after another (a district's SIS is never asked
twice at once, and no daemon is needed); with ``DAGSTER_HOME`` set they are recorded in that instance and
appear in the UI's run list, tagged ``roster/backfill=<id>``.  Disabled districts are left out of
``--all``; named explicitly, their run is refused with the reason.  A per-district table is printed.
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg

from roster_pipeline.pipeline.run_tags import AS_OF_TAG, BACKFILL_TAG, ROLLOVER_OVERRIDE_TAG, SYNC_MODE_TAG
from roster_pipeline.registry.districts import ENV_FILE_VARIABLE, Registry, load_registry
from roster_pipeline.warehouse import ENV_DATABASE_URL, Warehouse


@dataclass(frozen=True)
class DistrictRunResult:
    """One district's run in a backfill: what happened to its import, or why it did not run."""

    district_id: str
    run_id: str | None
    outcome: str  # published | held | refused | failed | skipped
    import_id: int | None = None
    school_year: int | None = None
    added: int = 0
    updated: int = 0
    deleted: int = 0
    detail: str = ""


def select_districts(
    registry: Registry, districts: str | None, all_districts: bool
) -> tuple[list[str], list[DistrictRunResult]]:
    """(district ids to run, skipped results). ``--all`` leaves disabled districts out, with a line each."""
    if all_districts == bool(districts):
        raise SystemExit("backfill: give exactly one of --all or --districts a,b")
    if districts:
        wanted = [d.strip() for d in districts.split(",") if d.strip()]
        unknown = [d for d in wanted if d not in registry]
        if unknown:
            raise SystemExit(
                f"backfill: unknown district(s) {', '.join(unknown)}; known: {', '.join(registry.ids())}"
            )
        return list(dict.fromkeys(wanted)), []
    skipped = [
        DistrictRunResult(d.id, None, "skipped", detail="disabled (enabled: false in the registry)")
        for d in registry
        if not d.enabled
    ]
    return [d.id for d in registry.enabled()], skipped


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        if error is not None:
            while error.cause is not None and error.cls_name in ("DagsterExecutionStepExecutionError",):
                error = error.cause
            return f"{error.cls_name}: {error.message.strip()}"
    return "run failed"


def _outcome(warehouse: Warehouse, district_id: str, result: dg.ExecuteInProcessResult) -> DistrictRunResult:
    run_id = result.run_id
    import_id = warehouse.import_for_run(district_id, run_id)
    if import_id is None:  # refused before an import was opened (paused, disabled, rollover pause)
        message = _failure_message(result)
        outcome = "refused" if "DistrictPausedError" in message else "failed"
        return DistrictRunResult(district_id, run_id, outcome, detail=message)
    run = warehouse.get_import(import_id)
    counts = warehouse.resource_counts(import_id)
    totals = {k: sum(int(c.get(k) or 0) for c in counts.values()) for k in ("added", "updated", "deleted")}
    if run.status == "published":
        detail = f"{run.sync_mode}" + (" additions_only" if run.additions_only else "")
        return DistrictRunResult(
            district_id, run_id, "published", import_id, run.school_year, detail=detail, **totals
        )
    if run.status == "held":
        return DistrictRunResult(
            district_id,
            run_id,
            "held",
            import_id,
            run.school_year,
            detail=f"checks failed, waiting for review: {run.hold_reason or ''}"[:300],
        )
    return DistrictRunResult(
        district_id,
        run_id,
        "failed",
        import_id,
        run.school_year,
        detail=(run.error or _failure_message(result))[:300],
    )


def run_backfill(
    registry: Registry,
    district_ids: Sequence[str],
    *,
    instance: dg.DagsterInstance,
    database_url: str | None = None,
    districts_file: str | None = None,
    sync_mode: str | None = "full",
    tags: Mapping[str, str] | None = None,
) -> list[DistrictRunResult]:
    """Run ``sync_district`` once per district, in order, in process; never raises for one district.

    ``sync_mode`` (default full: after a rollover the whole new year is wanted, and only a full pull
    infers deletions) becomes the run tag; None leaves each district to its plan for today.
    """
    from roster_pipeline.definitions import build_definitions
    from roster_pipeline.defs.jobs import SYNC_JOB_NAME
    from roster_pipeline.defs.resources import DistrictRegistryResource, WarehouseResource
    from roster_pipeline.defs.schedules import district_tags

    job = build_definitions(registry).resolve_job_def(SYNC_JOB_NAME)
    resources = {
        "warehouse": WarehouseResource(database_url=database_url),  # None: the env var, no password in config
        "registry": DistrictRegistryResource(districts_file=districts_file),
    }
    warehouse = Warehouse(database_url)
    run_tags = {**(tags or {}), **({SYNC_MODE_TAG: sync_mode} if sync_mode else {})}
    results = []
    try:
        for district_id in district_ids:
            district = registry.districts.get(district_id)
            named = {**run_tags, **(district_tags(district) if district is not None else {})}
            result = job.execute_in_process(
                partition_key=district_id,
                instance=instance,
                tags=named,
                resources=resources,
                raise_on_error=False,
            )
            results.append(_outcome(warehouse, district_id, result))
    finally:
        warehouse.dispose()
    return results


def format_table(results: Sequence[DistrictRunResult]) -> str:
    header = ("district", "outcome", "import", "year", "added", "updated", "deleted", "detail")
    rows = [
        (
            r.district_id,
            r.outcome,
            str(r.import_id or ""),
            str(r.school_year or ""),
            str(r.added),
            str(r.updated),
            str(r.deleted),
            r.detail.replace("\n", " ")[:160],
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--all", action="store_true", dest="all_districts", help="every enabled district")
    parser.add_argument(
        "--districts", default=None, help="comma-separated district ids, e.g. springfield,shelbyville"
    )
    parser.add_argument(
        "--sync-mode",
        choices=("full", "delta"),
        default="full",
        help="full (default; after rollover a full pull is what you want) or delta",
    )
    parser.add_argument(
        "--rollover-override",
        default=None,
        metavar="NAME",
        help=f"let the runs through a rollover pause (tag {ROLLOVER_OVERRIDE_TAG}=NAME, recorded)",
    )
    parser.add_argument(
        "--as-of",
        default=None,
        metavar="YYYY-MM-DD",
        help=f"the date the rollover policy uses (tag {AS_OF_TAG}; default: today per district)",
    )
    parser.add_argument("--database-url", default=None, help=f"warehouse URL (default: ${ENV_DATABASE_URL})")
    parser.add_argument(
        "--districts-file", default=None, help=f"registry YAML (default: ${ENV_FILE_VARIABLE})"
    )


def _instance() -> dg.DagsterInstance:
    """The deployment's instance when DAGSTER_HOME is set (runs show in the UI), else an ephemeral one."""
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def run(args: argparse.Namespace) -> int:
    registry = load_registry(args.districts_file)
    district_ids, skipped = select_districts(registry, args.districts, args.all_districts)
    backfill_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    tags = {BACKFILL_TAG: backfill_id}
    if args.rollover_override:
        tags[ROLLOVER_OVERRIDE_TAG] = args.rollover_override
    if args.as_of:
        tags[AS_OF_TAG] = args.as_of
    print(
        f"backfill {backfill_id}: {len(district_ids)} district(s), one {args.sync_mode} sync run each",
        flush=True,
    )
    with _instance() as instance:
        results = run_backfill(
            registry,
            district_ids,
            instance=instance,
            database_url=args.database_url,
            districts_file=args.districts_file,
            sync_mode=args.sync_mode,
            tags=tags,
        )
    print(format_table([*results, *skipped]))
    published = sum(r.outcome == "published" for r in results)
    print(
        f"{published} of {len(results)} published; held imports wait for review (roster-pipeline review ...)"
    )
    return 0 if published == len(results) else 1
