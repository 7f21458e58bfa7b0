"""Build the two emails' content from the warehouse: what a held or a published import did.

The held snapshot is re-evaluated with the same threshold functions the blocking checks used (pure
functions over ``change_summary`` / ``school_summary``), so the email shows the same verdicts as the UI
without having to read Dagster's check events back.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from roster_pipeline.control.review import launchpad_config
from roster_pipeline.derived.build import finding_text
from roster_pipeline.notify import (
    Approval,
    CheckYourDataReport,
    DerivedTableWarning,
    FailedCheck,
    ImportResultsReport,
    ResourceCountsRow,
    RunFailure,
    dagster_run_url,
    failure_actions,
    summarize_rejects,
)
from roster_pipeline.notify.content import review_actions
from roster_pipeline.notify.from_thresholds import resource_rows, school_rows
from roster_pipeline.pipeline.snapshot_checks import (
    CHANGE_MEASURES,
    CHANGE_THRESHOLDS,
    REJECTED_MEASURES,
    SCHOOL_THRESHOLDS,
    VALID_RECORDS,
)
from roster_pipeline.registry.districts import District
from roster_pipeline.thresholds import evaluate_change_thresholds, evaluate_school_thresholds
from roster_pipeline.warehouse import ImportRun, Warehouse
from roster_pipeline.warehouse.derived import warnings_for_import

log = logging.getLogger("roster_pipeline.control")

MAX_ATTACHED_ROWS = 5_000  # rows loaded for the CSV attachments; the totals are reported separately


def actions_for(district_id: str, import_id: int | None) -> list:
    """The three review actions with launchpad YAML matching the real review jobs' op names."""
    return [
        replace(a, launchpad_config=launchpad_config(a.action, district_id, import_id))
        for a in review_actions(district_id, import_id or "")
    ]


def _failed_from_reason(reason: str | None) -> list[FailedCheck]:
    return [FailedCheck("checks", reason or "the import was held by its checks")]


def check_your_data_report(warehouse: Warehouse, district: District, run: ImportRun) -> CheckYourDataReport:
    """The Check Your Data content of a held import (its snapshot is still in staging)."""
    report = CheckYourDataReport(
        district_id=district.id,
        district_name=district.name,
        import_id=run.import_id,
        run_id=run.run_id,
        school_year=run.school_year,
        sync_mode=run.sync_mode,
        started_at=run.started_at,
        failed_checks=_failed_from_reason(run.hold_reason),
        run_url=dagster_run_url(run.run_id),
        timezone=district.timezone,
        actions=actions_for(district.id, run.import_id),
    )
    try:
        first_import = warehouse.is_first_import(district.id)
        change = evaluate_change_thresholds(
            warehouse.change_summary(run.import_id),
            district.thresholds,
            first_import=first_import,
            district_id=district.id,
        )
        school = evaluate_school_thresholds(
            warehouse.school_summary(run.import_id),
            district.thresholds.per_school,
            first_import=first_import,
            district_id=district.id,
        )
        report.resources = resource_rows(change)
        report.schools = school_rows(school)
        failed = [
            FailedCheck(name, rep.summary_line())
            for name, rep in (
                (VALID_RECORDS, change.only(REJECTED_MEASURES)),
                (CHANGE_THRESHOLDS, change.only(CHANGE_MEASURES)),
                (SCHOOL_THRESHOLDS, school),
            )
            if not rep.passed
        ]
        if failed:
            report.failed_checks = failed
    except Exception as exc:  # noqa: BLE001 - the email still goes out with the recorded hold reason
        log.warning(
            "district %s import %s: could not rebuild the threshold tables (%s: %s); the email "
            "shows the recorded hold reason only",
            district.id,
            run.import_id,
            type(exc).__name__,
            exc,
        )
    errors = warehouse.rejects(run.import_id, severity="error")
    report.rejected_total = len(errors)
    report.rejected_rows = errors[:MAX_ATTACHED_ROWS]
    report.top_errors = summarize_rejects(errors)
    warnings = warehouse.rejects(run.import_id, severity="warning")
    report.warnings_count = len(warnings)
    report.warning_rows = warnings[:MAX_ATTACHED_ROWS]  # rejected_rows.csv lists them, as the email says
    changes = warehouse.field_changes(run.import_id)
    report.field_changes_total = len(changes)
    report.field_changes = changes.head(MAX_ATTACHED_ROWS)
    return report


def failure_actions_for(district_id: str) -> list:
    """Reprocess and reject (resume without importing) with the review jobs' launchpad YAML; no approve."""
    return [
        replace(a, launchpad_config=launchpad_config(a.action, district_id, None))
        for a in failure_actions(district_id)
    ]


def run_failure_report(
    district: District,
    run_id: str,
    error: str,
    import_id: int | None,
    started_at: datetime | None,
    step: str | None = None,
) -> CheckYourDataReport:
    """A sync run that failed or died without a held import (SIS down, bad credentials, a crash, killed):
    nothing to review but what failed, where, and its first cause."""
    where = step or "the sync"
    return CheckYourDataReport(
        district_id=district.id,
        district_name=district.name,
        import_id=import_id or 0,
        run_id=run_id,
        school_year=None,
        sync_mode="full",
        started_at=started_at,
        failed_checks=[FailedCheck(where, error)],
        run_url=dagster_run_url(run_id),
        timezone=district.timezone,
        actions=failure_actions_for(district.id),
        failure=RunFailure(where, error),
    )


def import_results_report(warehouse: Warehouse, district: District, run: ImportRun) -> ImportResultsReport:
    """The Import Results content of a published import (counts as recorded by the publish)."""
    rows = []
    before = warehouse.published_before(run.import_id)
    for name, counts in warehouse.resource_counts(run.import_id).items():
        n = {
            k: int(counts.get(k) or 0)
            for k in (
                "fetched",
                "added",
                "updated",
                "deleted",
                "unchanged",
                "tobedeleted",
                "withheld",
                "duplicates",
                "quarantined",
                "rejected",
            )
        }
        rows.append(
            ResourceCountsRow(
                # the base and the fetched figure checked_snapshot's thresholds used (summaries.change_summary):
                # a delta never sees its unchanged rows, so the base cannot be summed from the counts
                resource=name,
                published_before=before.get(name, 0),
                fetched=max(n["fetched"] - n["quarantined"], 0) + n["rejected"],
                added=n["added"],
                updated=n["updated"],
                deleted=n["deleted"],
                unchanged=n["unchanged"],
                rejected=n["rejected"],
                tobedeleted=n["tobedeleted"],
                withheld=n["withheld"],
                duplicates=n["duplicates"],
            )
        )
    warnings = warehouse.rejects(run.import_id, severity="warning")
    approval = None
    if run.overridden_by:
        approval = Approval(
            reviewer=run.overridden_by, approved_at=run.overridden_at, note=run.override_reason or ""
        )
    duration = (run.finished_at - run.started_at) if run.finished_at and run.started_at else None
    return ImportResultsReport(
        district_id=district.id,
        district_name=district.name,
        import_id=run.import_id,
        run_id=run.run_id,
        school_year=run.school_year,
        sync_mode=run.sync_mode,
        started_at=run.started_at,
        duration=duration,
        resources=rows,
        warnings_count=len(warnings),
        top_warnings=summarize_rejects(warnings, severity="warning"),
        approval=approval,
        run_url=dagster_run_url(run.run_id),
        timezone=district.timezone,
        derived_warnings=derived_warnings(warehouse, run.import_id),
    )


def derived_warnings(warehouse: Warehouse, import_id: int) -> list[DerivedTableWarning]:
    """What rebuilding the derived tables from this import's published data found (stored by the rebuild)."""
    return [
        DerivedTableWarning(w.table_name, finding_text(w.table_name, w.check), w.count, tuple(w.sample_ids))
        for w in warnings_for_import(warehouse.engine, import_id)
    ]
