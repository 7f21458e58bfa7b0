"""Which open imports belong to a dead run: the decision, without Dagster (``control.dead_runs``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from roster_pipeline.control.dead_runs import RunObservation, dead_run, step_label
from roster_pipeline.warehouse import ImportRun

NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def open_import(status: str = "staged", started: datetime = NOW - timedelta(minutes=5),
                run_id: str | None = "run-1") -> ImportRun:
    return ImportRun(import_id=7, district_id="alpha", run_id=run_id, school_year=2027, sync_mode="full",
                     status=status, started_at=started.replace(tzinfo=None), finished_at=None, error=None)


@pytest.mark.parametrize("status", ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"])
def test_a_run_still_in_progress_is_not_dead(status: str) -> None:
    assert dead_run(open_import(), RunObservation("run-1", status), NOW) is None


@pytest.mark.parametrize(("status", "words"), [
    ("FAILURE", "the run run-1 died during publish"),
    ("CANCELED", "the run run-1 was canceled during publish"),
    ("SUCCESS", "the run run-1 ended without closing import 7 (during publish)"),
])
def test_a_finished_run_with_its_import_still_open_is_dead(status: str, words: str) -> None:
    seen = RunObservation("run-1", status, step="published_roster",
                          detail="Run execution process for run-1 was terminated by signal 9 (SIGKILL).",
                          root_run_id="run-0")
    dead = dead_run(open_import(), seen, NOW)
    assert dead is not None
    assert dead.cause == f"{words}: Run execution process for run-1 was terminated by signal 9 (SIGKILL)."
    assert (dead.import_id, dead.district_id, dead.run_id, dead.root_run_id, dead.step) == (
        7, "alpha", "run-1", "run-0", "publish")


def test_without_the_step_the_import_status_says_where_it_was() -> None:
    dead = dead_run(open_import("running"), RunObservation("run-1", "FAILURE"), NOW)
    assert dead is not None and dead.cause == "the run run-1 died during load"
    assert step_label("users") == "load of users" and step_label("checked_snapshot") == "checks"


def test_a_missing_run_is_dead_only_after_the_grace_period() -> None:
    gone = RunObservation("run-1", None)
    assert dead_run(open_import(started=NOW - timedelta(minutes=5)), gone, NOW, timedelta(hours=1)) is None
    dead = dead_run(open_import(started=NOW - timedelta(hours=2)), gone, NOW, timedelta(hours=1))
    assert dead is not None and "no longer exists" in dead.cause


def test_a_dead_worker_reported_by_the_launcher_is_dead_while_the_run_still_says_started() -> None:
    dead = dead_run(open_import(), RunObservation("run-1", "STARTED", worker_dead="pod evicted"), NOW)
    assert dead is not None and "pod evicted" in dead.cause


@pytest.mark.parametrize("status", ["held", "published", "failed", "discarded", "dry_run"])
def test_closed_imports_and_imports_without_a_run_are_never_judged(status: str) -> None:
    assert dead_run(open_import(status), RunObservation("run-1", "FAILURE"), NOW) is None
    assert dead_run(open_import(run_id=None), RunObservation("run-1", "FAILURE"), NOW) is None
