"""What Dagster knows about a sync run, for the control sensor's dead-run decision (``control.dead_runs``).

How Dagster 1.13 finds out that a run worker died, with the instance's ``DefaultRunLauncher``:

- the run worker is a child process of the code server that launched it; the code server checks its
  children and, when one has exited without finishing its run, records an engine event ("Run execution
  process for <run> was terminated by signal 9 (SIGKILL)") and marks the run FAILURE;
- run monitoring (``run_monitoring: enabled`` in dagster.yaml, carried out by the daemon) fails runs that
  take too long to start, to cancel, or to finish (``dagster/max_runtime``, which the sync jobs carry);
  ``DefaultRunLauncher`` has no worker health check (``supports_check_run_worker_health`` is False), so a
  run executed inside a terminal (``dagster job execute``) that is killed with its code server stays
  STARTED until that runtime limit;
- a launcher that can check its workers (Kubernetes, ECS, Docker) is asked here too, so a dead worker is
  seen on the next tick even before the daemon's monitoring loop.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.launcher import WorkerStatus  # no public API says whether a run worker is alive

from roster_pipeline.control.dead_runs import RunObservation
from roster_pipeline.pipeline.run_tags import ROOT_RUN_TAG, WILL_RETRY_TAG

_STEP_EVENTS = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
}
_CRASH_WORDS = ("terminated by signal", "unexpectedly exited", "terminated unexpectedly", "exit code")


def open_step(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """The step the run was executing when it ended: one that started and never finished (a killed
    worker), else the last one that failed (a canceled run records its interrupted step as failed)."""
    started: dict[str, int] = {}
    succeeded: set[str] = set()
    failed: set[str] = set()
    for record in instance.get_records_for_run(run_id, of_type=_STEP_EVENTS).records:
        event = record.event_log_entry.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            started[event.step_key] = record.storage_id
        else:
            (succeeded if event.event_type == dg.DagsterEventType.STEP_SUCCESS else failed).add(
                event.step_key
            )
    running = [key for key in started if key not in succeeded and key not in failed]
    candidates = running or [key for key in started if key in failed]
    return max(candidates, key=started.__getitem__) if candidates else None


def _sentence(message: str) -> str:
    text = (
        message.strip().removeprefix("[DagsterApiServer]").strip().splitlines()[0] if message.strip() else ""
    )
    head, dot, _ = text.partition(". ")
    return head + dot.strip() if dot else text


def end_detail(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """What Dagster recorded about how the run ended: a crashed worker's exit, else the run's last word."""
    for record in reversed(
        instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records
    ):
        message = record.event_log_entry.message or ""
        if any(word in message for word in _CRASH_WORDS):
            return _sentence(message)
    ends = instance.get_records_for_run(
        run_id, of_type={dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_CANCELED}
    ).records
    last_word = ends[-1].event_log_entry.message if ends else None
    return _sentence(last_word) if last_word else None


def _worker_gone(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """The launcher's health check, where it has one and run monitoring would not resume the run."""
    launcher = instance.run_launcher
    if (
        run.status != dg.DagsterRunStatus.STARTED
        or not instance.run_monitoring_enabled
        or instance.run_monitoring_max_resume_run_attempts
        or not launcher.supports_check_run_worker_health
    ):
        return None
    health = launcher.check_run_worker_health(run)
    if health.status in (WorkerStatus.FAILED, WorkerStatus.NOT_FOUND):
        return health.msg or health.status.value
    return None


def observe_run(instance: dg.DagsterInstance, run_id: str) -> RunObservation:
    run = instance.get_run_by_id(run_id)
    if run is None:
        return RunObservation(run_id, None)
    finished = run.is_finished
    return RunObservation(
        run_id=run_id,
        status=run.status.value,
        step=open_step(instance, run_id) if finished else None,
        detail=end_detail(instance, run_id) if finished else None,
        worker_dead=None if finished else _worker_gone(instance, run),
        will_retry=run.tags.get(WILL_RETRY_TAG) == "true",
        root_run_id=run.tags.get(ROOT_RUN_TAG, run_id),
    )
