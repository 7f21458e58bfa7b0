"""Is this import's run dead?  The decision, free of Dagster, over what the orchestrator reports.

An import is opened, loaded and published by one Dagster run.  If that run stops without closing it —
the run worker was killed (SIGKILL, out of memory, a lost node), the run was canceled (an interrupted
step never reaches the code that fails the import), or it ended in a state that cannot leave an import
open — the import stays ``running`` or ``staged`` forever, with its staging rows.  The control sensor
asks Dagster about the run of every open import (``RunObservation``) and settles the dead ones.

Dead: the run is FAILURE, CANCELED, or SUCCESS while its import is still open; or the run no longer
exists (deleted, or storage wiped) once ``missing_grace`` has passed since the import started (a sync
launched against another Dagster instance — e.g. the CLI without ``DAGSTER_HOME`` — is not this
instance's to judge while it may still be running); or the launcher's worker health check reports the
worker gone.  Alive: QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING (run monitoring turns a stuck
one into FAILURE or CANCELED, which is then dead).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from roster_pipeline.warehouse import ImportRun

OPEN_IMPORT_STATUSES = ("running", "staged")
TERMINAL_RUN_STATUSES = ("FAILURE", "CANCELED", "SUCCESS")
DEFAULT_MISSING_GRACE = timedelta(hours=1)

# Dagster step keys of the sync job, in words an admin reads.
_STEP_WORDS = {
    "roster_import": "opening the import",
    "checked_snapshot": "checks",
    "published_roster": "publish",
    "class_teachers": "rebuild of class_teachers",
    "student_logins": "rebuild of student_logins",
}
ALIVE_RUN_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")


def step_label(step_key: str | None) -> str | None:
    """``published_roster`` → ``publish``, ``users`` → ``load of users``; None stays None."""
    if not step_key:
        return None
    return _STEP_WORDS.get(step_key, f"load of {step_key}")


def _step_from_status(import_status: str) -> str:
    """Without Dagster's events: a ``running`` import was loading, a ``staged`` one in checks or publish."""
    return "load" if import_status == "running" else "checks or publish"


@dataclass(frozen=True)
class RunObservation:
    """What the orchestrator says about a run (built by the Dagster sensor; tests build it by hand)."""

    run_id: str
    status: str | None  # Dagster's run status name; None: no such run
    step: str | None = None  # the step key that was executing when the run ended (started, never finished)
    detail: str | None = None  # what the orchestrator recorded about the end ("terminated by signal 9 ...")
    worker_dead: str | None = None  # the launcher's health check says the worker is gone (why)
    will_retry: bool = False  # Dagster retries the run: no pause or email for this attempt
    root_run_id: str | None = None


def still_running(seen: RunObservation | None) -> bool:
    """The orchestrator says the run is queued or working (its later steps, e.g. the derived tables after
    the publish, may still write what an email reports)."""
    return seen is not None and seen.status in ALIVE_RUN_STATUSES


@dataclass(frozen=True)
class DeadRun:
    """An open import whose run is over: what to record as its cause."""

    import_id: int
    district_id: str
    run_id: str
    root_run_id: str
    step: str
    cause: str
    will_retry: bool = False


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def dead_run(
    run: ImportRun,
    seen: RunObservation | None,
    now: datetime,
    missing_grace: timedelta = DEFAULT_MISSING_GRACE,
) -> DeadRun | None:
    """The import's run is dead (and why), or None while it may still be working on the import."""
    if run.status not in OPEN_IMPORT_STATUSES or not run.run_id or seen is None:
        return None
    step = step_label(seen.step) or _step_from_status(run.status)
    who = f"the run {run.run_id}"
    if seen.status is None:
        if run.started_at is None or now - _aware(run.started_at) < missing_grace:
            return None
        verb = f"no longer exists in Dagster (import {run.import_id} was open, at {step})"
    elif seen.status == "CANCELED":
        verb = f"was canceled during {step}"
    elif seen.status == "FAILURE":
        verb = f"died during {step}"
    elif seen.status == "SUCCESS":
        verb = f"ended without closing import {run.import_id} (during {step})"
    elif seen.worker_dead:
        verb = f"died during {step} (its worker is gone: {seen.worker_dead})"
    else:
        return None
    detail = f": {seen.detail}" if seen.detail else ""
    return DeadRun(
        run.import_id,
        run.district_id,
        run.run_id,
        seen.root_run_id or run.run_id,
        step,
        f"{who} {verb}{detail}",
        seen.will_retry,
    )
