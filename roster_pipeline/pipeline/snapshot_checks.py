"""The blocking checks that stand between a staged snapshot and the published tables.

After every resource of an import is staged (each batch already validated by its Pandera model), this
module runs what needs the whole snapshot: referential checks (failing records are moved to the
quarantine), the change summary against what is published, the district's import thresholds (per
resource and per school), and the per-record, per-field diff an admin previews.  A snapshot that fails
is *held*: it stays in staging for review and nothing is published.

Dagster turns each outcome into a blocking asset check; the benchmark and scripts use it directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from roster_pipeline.registry.districts import District, ThresholdOverrides
from roster_pipeline.thresholds import (
    ThresholdReport,
    evaluate_change_thresholds,
    evaluate_school_thresholds,
)
from roster_pipeline.warehouse import Warehouse
from roster_pipeline.warehouse.references import find_reference_failures, find_reference_warnings

VALID_RECORDS = "valid_records"
CHANGE_THRESHOLDS = "change_thresholds"
SCHOOL_THRESHOLDS = "school_thresholds"

CHECK_DESCRIPTIONS: dict[str, str] = {
    VALID_RECORDS: (
        "Share of records quarantined by the schema (Pandera) and referential checks, per resource, against "
        "the district's max_rejected_pct. Quarantined records are never published; this check decides "
        "whether the rest of the snapshot may be."
    ),
    CHANGE_THRESHOLDS: (
        "Added / updated / deleted records per resource, as a % of what is published, against the district's "
        "import thresholds (below min_changes no % trips; the first import of a district is exempt)."
    ),
    SCHOOL_THRESHOLDS: (
        "Per school: users and enrollments that would disappear, against per_school thresholds, so one school "
        "vanishing is caught even when the district-wide change is small."
    ),
}

REJECTED_MEASURES = frozenset({"rejected_pct"})
CHANGE_MEASURES = frozenset({"added_pct", "updated_pct", "deleted_pct"})


@dataclass(frozen=True)
class CheckOutcome:
    """One blocking check's verdict, ready for a Dagster AssetCheckResult or an email."""

    name: str
    passed: bool
    summary: str
    metadata: dict[str, Any]


@dataclass
class SnapshotChecks:
    """Everything the gate found about one staged import."""

    import_id: int
    district_id: str
    first_import: bool
    summary: pd.DataFrame
    schools: pd.DataFrame
    outcomes: dict[str, CheckOutcome] = field(default_factory=dict)
    reference_rejects: int = 0
    reference_warnings: int = 0
    field_changes: int = 0
    # seconds of the check step: "classify" (the classification passes it ran: none when every resource
    # was classified as it was staged and nothing made that stale) and "check" (everything else)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(outcome.passed for outcome in self.outcomes.values())

    @property
    def failed(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes.values() if not o.passed]

    def reason(self) -> str:
        return "; ".join(f"{o.name}: {o.summary}" for o in self.failed) or "all checks passed"


def _outcome(name: str, report: ThresholdReport) -> CheckOutcome:
    """One check's verdict from its threshold report (worst offenders first in the summary)."""
    violations = report.violations
    if report.passed:
        summary = "within thresholds"
    else:
        summary = "; ".join(str(m) for m in violations["message"].head(3))
        if len(violations) > 3:
            summary += f" (+{len(violations) - 3} more)"
    metadata: dict[str, Any] = {"violations": len(violations), "details_markdown": report.markdown()}
    return CheckOutcome(name, report.passed, summary, metadata)


def check_snapshot(
    warehouse: Warehouse,
    district: District,
    import_id: int,
    *,
    dry_run: bool = False,
    relaxed: ThresholdOverrides | None = None,
) -> SnapshotChecks:
    """Run the whole-snapshot checks of an import and hold it (or mark it dry-run) accordingly."""
    started = time.perf_counter()
    run = warehouse.get_import(import_id)
    warehouse.analyze_staging(import_id)  # statistics for the anti-joins, outside the checks' transaction
    with warehouse.engine.begin() as conn:
        failures = find_reference_failures(conn, import_id, district.id, run.sync_mode)
        warnings = find_reference_warnings(conn, import_id, district.id)
    if failures:
        warehouse.reject_staged(import_id, failures)
    if warnings:
        warehouse.record_rejects(import_id, warnings)

    classify_started = time.perf_counter()
    warehouse.classify(import_id)  # normally done as each resource was staged; the summaries read it
    classify_seconds = time.perf_counter() - classify_started
    summary = warehouse.change_summary(import_id)
    schools = warehouse.school_summary(import_id)
    first_import = warehouse.is_first_import(district.id)
    changes = evaluate_change_thresholds(
        summary, district.thresholds, first_import=first_import, relaxed=relaxed, district_id=district.id
    )
    per_school = evaluate_school_thresholds(
        schools, district.thresholds.per_school, first_import=first_import, district_id=district.id
    )
    result = SnapshotChecks(
        import_id=import_id,
        district_id=district.id,
        first_import=first_import,
        summary=summary,
        schools=schools,
        reference_rejects=len(failures),
        reference_warnings=len(warnings),
        field_changes=warehouse.build_field_diff(import_id),
    )
    result.outcomes[VALID_RECORDS] = _outcome(VALID_RECORDS, changes.only(REJECTED_MEASURES))
    result.outcomes[CHANGE_THRESHOLDS] = _outcome(CHANGE_THRESHOLDS, changes.only(CHANGE_MEASURES))
    result.outcomes[SCHOOL_THRESHOLDS] = _outcome(SCHOOL_THRESHOLDS, per_school)
    result.stage_seconds = {
        "classify": classify_seconds,
        "check": time.perf_counter() - started - classify_seconds,
    }

    if dry_run:
        warehouse.mark_dry_run(import_id)
    elif not result.passed:
        warehouse.hold_import(import_id, result.reason())
    else:
        warehouse.mark_staged(import_id)
    return result
