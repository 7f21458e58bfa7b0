"""What the two emails show, as plain typed dataclasses.

The Dagster sensor and assets build these from check metadata and warehouse queries; tests build them
by hand.  Nothing here reads the environment, the database or Dagster, and nothing here carries a
credential: a report is data about an import, never about how the SIS was reached.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from roster_pipeline.pipeline.run_tags import SyncMode
from roster_pipeline.records.rejects import Reject

EmailKind = Literal["check_your_data", "import_results", "import_undone"]
ThresholdStatus = Literal["OK", "EXCEEDED", "EXEMPT"]

DAGSTER_URL_VARIABLE = "ROSTER_DAGSTER_URL"
DEFAULT_DAGSTER_URL = "http://localhost:3000"  # `dagster dev`


def pct(part: int, whole: int) -> float | None:
    """``part`` as a percentage of ``whole``; None when there is nothing to compare with."""
    if whole <= 0:
        return None
    return 100.0 * part / whole


def dagster_run_url(run_id: str | None, base_url: str | None = None) -> str | None:
    """The Dagster UI page of a run: ``{base}/runs/{run_id}``.

    ``base_url`` falls back to ``ROSTER_DAGSTER_URL`` and then to ``dagster dev``'s address, so the
    link works in the demo and points at the real webserver once an operator sets the variable.
    """
    if not run_id:
        return None
    base = base_url or os.environ.get(DAGSTER_URL_VARIABLE, "").strip() or DEFAULT_DAGSTER_URL
    return f"{base.rstrip('/')}/runs/{run_id}"


@dataclass(frozen=True)
class FailedCheck:
    """One blocking check that failed, in the words an admin can act on."""

    name: str  # "enrollments_thresholds", "users_schema"
    reason: str  # "62.0% of enrollments would be deleted (limit 10%)"


@dataclass(frozen=True)
class ResourceThresholdRow:
    """One resource of a held snapshot against its thresholds.

    Percentages default to the thresholds' rule (added/updated/deleted of the rows published before the
    import; rejected of the rows fetched); the check code may pass its own if it computed them.
    ``exceeded`` names the measures that tripped ("deleted", "rejected"), so they can be highlighted.
    """

    resource: str
    published_before: int
    fetched: int
    added: int
    updated: int
    deleted: int
    rejected: int
    max_added_pct: float | None = None
    max_updated_pct: float | None = None
    max_deleted_pct: float | None = None
    max_rejected_pct: float | None = None
    status: ThresholdStatus = "OK"
    exceeded: tuple[str, ...] = ()
    added_pct: float | None = None
    updated_pct: float | None = None
    deleted_pct: float | None = None
    rejected_pct: float | None = None

    def __post_init__(self) -> None:
        defaults = {
            "added_pct": pct(self.added, self.published_before),
            "updated_pct": pct(self.updated, self.published_before),
            "deleted_pct": pct(self.deleted, self.published_before),
            "rejected_pct": pct(self.rejected, self.fetched),
        }
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)


@dataclass(frozen=True)
class SchoolThresholdRow:
    """A school whose users or enrollments would drop by more than its threshold."""

    school_name: str
    school_id: str
    resource: str  # "users" | "enrollments"
    before: int
    after: int
    threshold_pct: float
    drop: int | None = None
    drop_pct: float | None = None

    def __post_init__(self) -> None:
        if self.drop is None:
            object.__setattr__(self, "drop", self.before - self.after)
        if self.drop_pct is None:
            object.__setattr__(self, "drop_pct", pct(self.before - self.after, self.before))


@dataclass(frozen=True)
class TopError:
    """A group of identical check failures: how many, and one example message."""

    resource: str
    check: str
    field: str
    count: int
    example: str
    severity: str = "error"


def summarize_rejects(
    rejects: Iterable[Reject], limit: int = 10, severity: str | None = "error"
) -> list[TopError]:
    """Group rejects by (resource, check, field), most frequent first, keeping the first message seen."""
    counts: Counter[tuple[str, str, str, str]] = Counter()
    examples: dict[tuple[str, str, str, str], str] = {}
    for reject in rejects:
        if severity is not None and reject.severity != severity:
            continue
        key = (reject.resource, reject.check, reject.field, reject.severity)
        counts[key] += 1
        examples.setdefault(key, reject.message)
    return [
        TopError(resource=r, check=c, field=f, count=n, example=examples[(r, c, f, s)], severity=s)
        for (r, c, f, s), n in counts.most_common(limit)
    ]


#: The ways out of a paused import that an email offers.
ReviewActionName = Literal["approve", "reject", "reprocess"]
REVIEW_ACTION_NAMES: tuple[ReviewActionName, ...] = ("approve", "reject", "reprocess")


@dataclass(frozen=True)
class ReviewAction:
    """One way out of a paused import, and how to launch it from the UI or the shell."""

    action: ReviewActionName
    what_it_does: str
    job_name: str
    launchpad_config: str  # YAML an admin pastes into the Dagster launchpad
    cli_command: str


_ACTION_TEXT: dict[ReviewActionName, str] = {
    "approve": "Publish the held snapshot as it is (the thresholds are overridden for this import only, "
    "and the override is recorded), then resume scheduled imports.",
    "reject": "Discard the held snapshot and keep the roster as it is today, then resume scheduled imports "
    "(or stay paused until the SIS is fixed).",
    "reprocess": "Fetch everything again now (after the SIS data has been corrected) and run the checks again.",
}


# After a failed run nothing is held: approve has nothing to publish, so it is never offered.
_FAILURE_ACTION_TEXT: dict[ReviewActionName, str] = {
    "reprocess": "Once the cause above is fixed, fetch everything again now and run every check; the district "
    "resumes when that import is published (a check that fails holds it for review).",
    "reject": "Resume scheduled imports without importing now: nothing is published or discarded, and the next "
    "scheduled sync runs as usual.",
}
FAILURE_ACTIONS: tuple[ReviewActionName, ...] = ("reprocess", "reject")


@dataclass(frozen=True)
class RunFailure:
    """What failed in a sync run that ended without a held import: the step and the first recorded cause."""

    step: str  # "load of classes", "publish", ...
    cause: str


def failure_actions(district_id: str, reviewer: str = "YOUR NAME") -> list[ReviewAction]:
    """The ways out of a pause caused by a failed run: reprocess, or reject (resume without importing)."""
    actions = {a.action: a for a in review_actions(district_id, "", reviewer)}
    return [replace(actions[name], what_it_does=_FAILURE_ACTION_TEXT[name]) for name in FAILURE_ACTIONS]


def review_actions(district_id: str, import_id: int | str, reviewer: str = "YOUR NAME") -> list[ReviewAction]:
    """The three review actions with their launchpad config and CLI form."""
    actions: list[ReviewAction] = []
    for action in REVIEW_ACTION_NAMES:
        job = f"review_{action}"
        config = (
            "ops:\n"
            f"  {job}:\n"
            "    config:\n"
            f'      district_id: "{district_id}"\n'
            f"      import_id: {import_id}\n"
            f'      reviewer: "{reviewer}"\n'
            '      note: ""\n'
        )
        cli = f"roster-pipeline review {district_id} {action}"
        actions.append(ReviewAction(action, _ACTION_TEXT[action], job, config, cli))
    return actions


@dataclass
class CheckYourDataReport:
    """Everything the Check Your Data email says about one paused import.

    ``rejected_rows`` / ``field_changes`` may be a bounded sample loaded from the warehouse: pass the
    real totals in ``rejected_total`` / ``field_changes_total`` and the email says what was left out.
    """

    district_id: str
    district_name: str
    import_id: int
    run_id: str | None
    school_year: str | int | None
    sync_mode: SyncMode
    started_at: datetime | None
    failed_checks: list[FailedCheck]
    resources: list[ResourceThresholdRow] = field(default_factory=list)
    schools: list[SchoolThresholdRow] = field(default_factory=list)
    top_errors: list[TopError] = field(default_factory=list)
    warnings_count: int = 0
    rejected_rows: Sequence[Reject] = ()
    rejected_total: int | None = None
    # the warnings' rows (severity "warning"), listed after the errors in rejected_rows.csv; warnings_count
    # is their real total when this is a bounded sample
    warning_rows: Sequence[Reject] = ()
    field_changes: Any = None  # pd.DataFrame | Sequence[Mapping[str, Any]] | None
    field_changes_total: int | None = None
    run_url: str | None = None
    timezone: str = "UTC"  # the district's, for the times shown
    actions: list[ReviewAction] = field(default_factory=list)
    failure: RunFailure | None = None  # set: the run failed (nothing held), not a held import

    def __post_init__(self) -> None:
        if self.run_url is None:
            self.run_url = dagster_run_url(self.run_id)
        if not self.actions:
            self.actions = (
                failure_actions(self.district_id)
                if self.failure is not None
                else review_actions(self.district_id, self.import_id)
            )
        if not self.top_errors and self.rejected_rows:
            self.top_errors = summarize_rejects(self.rejected_rows)


@dataclass(frozen=True)
class ResourceCountsRow:
    """One resource of a published import.

    Every fetched record is accounted for once: ``fetched == added + updated + unchanged + tobedeleted +
    withheld + duplicates + rejected`` (``accounted``).  ``tobedeleted``: records the SIS sent marked
    ``tobedeleted`` (stored soft-deleted); ``withheld``: deletions an additions_only import held back;
    ``duplicates``: repeated copies of a record in the same pull.  ``deleted`` is an effect, not a kind of
    fetched record: the published rows soft-deleted, i.e. the alive ones marked tobedeleted plus, in a
    full import, those that vanished from the pull.  Percentages of added/updated/deleted/unchanged are of
    ``published_before``, the base the threshold checks used.
    """

    resource: str
    published_before: int
    fetched: int
    added: int
    updated: int
    deleted: int
    unchanged: int
    rejected: int
    tobedeleted: int = 0
    withheld: int = 0
    duplicates: int = 0

    @property
    def accounted(self) -> int:
        """The fetched records the other columns explain (equals ``fetched`` for a consistent import)."""
        return (
            self.added
            + self.updated
            + self.unchanged
            + self.tobedeleted
            + self.withheld
            + self.duplicates
            + self.rejected
        )

    @property
    def added_pct(self) -> float | None:
        return pct(self.added, self.published_before)

    @property
    def updated_pct(self) -> float | None:
        return pct(self.updated, self.published_before)

    @property
    def deleted_pct(self) -> float | None:
        return pct(self.deleted, self.published_before)

    @property
    def unchanged_pct(self) -> float | None:
        return pct(self.unchanged, self.published_before)

    @property
    def rejected_pct(self) -> float | None:
        return pct(self.rejected, self.fetched)


@dataclass(frozen=True)
class Approval:
    """An admin approved a held snapshot, overriding its thresholds (the review's ``approve``)."""

    reviewer: str
    approved_at: datetime | None = None
    note: str = ""


@dataclass(frozen=True)
class DerivedTableWarning:
    """A finding of a derived table's rebuild after the publish (never an error: the data is published)."""

    table: str  # class_teachers | student_logins
    finding: str  # what an admin reads, e.g. "classes with no primary teacher"
    count: int
    first_ids: tuple[str, ...] = ()  # the first few sourcedIds (classes or students); the table has them all


@dataclass
class ImportResultsReport:
    """Everything the Import Results email says about one published import."""

    district_id: str
    district_name: str
    import_id: int
    run_id: str | None
    school_year: str | int | None
    sync_mode: SyncMode
    started_at: datetime | None
    duration: timedelta | None
    resources: list[ResourceCountsRow] = field(default_factory=list)
    warnings_count: int = 0
    top_warnings: list[TopError] = field(default_factory=list)
    approval: Approval | None = None
    run_url: str | None = None
    timezone: str = "UTC"
    derived_warnings: list[DerivedTableWarning] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.run_url is None:
            self.run_url = dagster_run_url(self.run_id)


__all__ = [
    "Approval",
    "CheckYourDataReport",
    "DerivedTableWarning",
    "EmailKind",
    "FailedCheck",
    "ImportResultsReport",
    "ResourceCountsRow",
    "ResourceThresholdRow",
    "ReviewAction",
    "RunFailure",
    "SchoolThresholdRow",
    "ThresholdStatus",
    "TopError",
    "dagster_run_url",
    "failure_actions",
    "pct",
    "review_actions",
    "summarize_rejects",
]
