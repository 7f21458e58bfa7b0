"""The admin's undo: roll a district back to the state before its last published import.

Shared by the ``review_undo`` Dagster job and ``roster-pipeline review DISTRICT undo`` so both do the same
thing and leave the same ``review_actions`` row (action ``undo``; also when it fails, with the error).

What a district admin can expect:

* **Checks.** The state the undo brings back was published, and checked, before: its references are
  consistent.  It is also a change of what the district sees today, so it passes through the same
  change and per-school thresholds as an import (relaxed ones inside a rollover change window; no
  first-import exemption, there is a published state to compare with).  Undoing an import that only
  added (a first import, a rollover import, a big approved one) removes many rows: such an undo is refused
  with the thresholds it trips until the reviewer repeats it with ``force``, which is recorded (the audit
  row and ``import_runs.undo_forced``).
* **Pause.** After an undo the district stays paused (by the reviewer), because the SIS still serves what
  the undone import brought in and the next scheduled sync would bring it straight back.  Once the SIS is
  fixed, ``reprocess`` fetches again (and resumes when that import publishes), or ``reject`` resumes as
  is.  ``resume=True`` lets the schedules go on right away.
* **Email.** The district's admins get an "Import Undone" email (counts restored / removed per resource,
  who, why), once, from the control sensor (``control.undo_emails``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from roster_pipeline.control import store
from roster_pipeline.control.review import ReviewError, ReviewOutcome
from roster_pipeline.control.store import pause_district, resume_district
from roster_pipeline.pipeline.rollover import RolloverConfigError, rollover_policy, run_date
from roster_pipeline.pipeline.snapshot_checks import CHANGE_MEASURES
from roster_pipeline.registry.districts import District
from roster_pipeline.thresholds import evaluate_change_thresholds, evaluate_school_thresholds
from roster_pipeline.warehouse import UndoResult, Warehouse, WarehouseError

UNDO_JOB = "review_undo"
UNDO_OP = "undo_last_import"


@dataclass(frozen=True)
class UndoOutcome(ReviewOutcome):
    result: UndoResult | None = None


def launchpad_config(district_id: str, reviewer: str = "YOUR NAME") -> str:
    """The YAML to paste into the review_undo launchpad (docs/operations.md, the email)."""
    return (
        f'ops:\n  {UNDO_OP}:\n    config:\n      district_id: "{district_id}"\n      reviewer: "{reviewer}"\n'
        '      note: ""\n      force: false\n      resume: false\n'
    )


def threshold_check(district: District, today: date | None = None):
    """The district's change and per-school thresholds over the undo's summaries: the failures, if any."""
    relaxed = None
    try:
        relaxed = rollover_policy(district, today or run_date(district, {})).relaxed
    except RolloverConfigError:
        pass  # a broken rollover setting means no relaxation: the strict thresholds apply

    def check(result: UndoResult) -> list[str]:
        change = evaluate_change_thresholds(
            result.summary, district.thresholds, first_import=False, relaxed=relaxed, district_id=district.id
        ).only(CHANGE_MEASURES)
        school = evaluate_school_thresholds(
            result.schools, district.thresholds.per_school, first_import=False, district_id=district.id
        )
        return [str(m) for report in (change, school) for m in report.violations["message"]]

    return check


def describe(result: UndoResult) -> str:
    """Per resource: the current view before → after, restored / removed / un-archived rows (CLI, logs)."""
    header = f"{'resource':<18}{'before':>8}{'after':>8}{'restored':>10}{'removed':>9}{'unarchived':>12}"
    lines = [header, "-" * len(header)]
    for r in result.resources.values():
        lines.append(
            f"{r.resource:<18}{r.published_before:>8,}{r.published_after:>8,}{r.restored:>10,}"
            f"{r.removed:>9,}{r.unarchived:>12,}"
        )
    if result.check_failures:
        lines.append("checks: " + "; ".join(result.check_failures))
    return "\n".join(lines)


def _sentence(result: UndoResult, paused: bool) -> str:
    t = result.totals()
    back_to = (
        f"school year {result.current_school_year}"
        if result.current_school_year is not None
        else "nothing published"
    )
    what = (
        f"import {result.import_id} undone: {t['restored']:,} rows restored, {t['removed']:,} removed"
        + (f", {t['unarchived']:,} un-archived" if t["unarchived"] else "")
        + f"; current: {back_to}"
    )
    checks = (
        f"; checks failed and were overridden ({'; '.join(result.check_failures)})"
        if result.forced
        else "; checks passed"
    )
    state = (
        "; district paused until the SIS is fixed (reprocess, or reject to resume as is)"
        if paused
        else "; district resumed"
    )
    return (what + checks + state)[:4000]


def undo(
    warehouse: Warehouse,
    district: District,
    reviewer: str,
    note: str = "",
    *,
    import_id: int | None = None,
    force: bool = False,
    resume: bool = False,
    preview: bool = False,
) -> UndoOutcome:
    """Undo the district's latest published import (see the module docstring); ReviewError if it cannot."""
    if not reviewer or not reviewer.strip():
        raise ReviewError("a reviewer name is required (who takes this decision is recorded)")
    reviewer = reviewer.strip()
    try:
        result = warehouse.undo_last_import(
            district.id,
            undone_by=reviewer,
            note=note or None,
            import_id=import_id,
            check=threshold_check(district),
            force=force,
            preview=preview,
        )
    except WarehouseError as exc:
        if not preview:
            store.record_action(
                warehouse.engine,
                district.id,
                "undo",
                reviewer,
                import_id=import_id,
                note=note or None,
                outcome=f"failed: {type(exc).__name__}: {exc}"[:4000],
            )
        raise ReviewError(str(exc)) from exc
    if preview:
        t = result.totals()
        outcome = (
            f"preview: undoing import {result.import_id} would restore {t['restored']:,} rows and remove "
            f"{t['removed']:,}"
            + (
                f"; checks would fail: {'; '.join(result.check_failures)}"
                if result.check_failures
                else "; checks pass"
            )
            + "; nothing changed"
        )
        return UndoOutcome("undo", district.id, result.import_id, 0, outcome, False, result)
    if resume:
        resume_district(warehouse.engine, district.id)
    else:
        pause_district(
            warehouse.engine,
            district.id,
            by=reviewer,
            import_id=result.import_id,
            run_id=None,
            reason=f"import {result.import_id} undone by {reviewer}"
            + (f" ({note})" if note else "")
            + "; the SIS may still serve what it brought in",
        )
    outcome = _sentence(result, paused=not resume)
    audit_id = store.record_action(
        warehouse.engine,
        district.id,
        "undo",
        reviewer,
        import_id=result.import_id,
        note=note or None,
        outcome=outcome,
    )
    return UndoOutcome("undo", district.id, result.import_id, audit_id, outcome, resume, result)
