"""The production Dagster instance (the shipped ``dagster.yaml``: Postgres storage, queued runs) doing real work.

Loading the file proves little: dagster-postgres once failed on the first event of every run (``NOTIFY
run_events, $1`` under SQLAlchemy 2.1's default psycopg 3 driver) while the settings loaded fine.  So a
schedule tick, the queued-run daemon step, a real ``sync_district`` run of a tiny district, and a tick of
the control sensor all run here on that instance, each exactly as the daemon runs them, against a fresh
Postgres database; then the run's events, the ticks and the sensor's cursor are read back from it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._daemon.sensor import execute_sensor_iteration
from dagster._scheduler.scheduler import launch_scheduled_runs

from roster_pipeline.defs.schedules import schedule_name
from roster_pipeline.defs.sensors import CONTROL_SENSOR_NAME
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.simulator import running_simulator
from roster_pipeline.warehouse import Warehouse
from roster_pipeline_tests.paths import PROJECT_ROOT

from .pipeline_helpers import write_registry

pytestmark = pytest.mark.postgres

LOG = logging.getLogger("roster_pipeline_tests.production_instance")
RUN_TIMEOUT_SECONDS = 300


def instigator_ticks(instance: dg.DagsterInstance, name: str) -> list:
    """Every stored tick of the schedule or sensor called ``name``."""
    states = [s for s in instance.all_instigator_state() if s.instigator_name == name]
    assert len(states) == 1, f"{name}: expected one stored instigator state, found {len(states)}"
    return list(instance.get_ticks(states[0].instigator_origin_id, states[0].selector_id))


def tick_errors(ticks: list) -> str:
    return "\n".join(t.error.to_string() for t in ticks if t.error is not None)


def wait_for_run(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    """The run once it has finished; fails with its state after a generous bound (never a timing assertion)."""
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while True:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        if run.is_finished:
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} still {run.status} after {RUN_TIMEOUT_SECONDS} s")
        time.sleep(0.5)


def wait_for_run_workers(workspace) -> None:
    """Until the code server has reaped every run worker it started.

    The server checks a finished worker's run in the storage database before forgetting it and will not stop
    until it has; left running, it would retry against the test database after that has been dropped.
    """
    location = workspace.create_request_context().get_code_location("roster_pipeline")
    deadline = time.monotonic() + 60
    while location.get_current_runs():
        if time.monotonic() > deadline:
            pytest.fail(f"run workers still alive: {location.get_current_runs()}")
        time.sleep(0.2)


@pytest.fixture()
def district_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, production_dagster_home) -> Iterator[dict]:
    """A tiny simulated district on loopback, its registry, and a SQLite warehouse, all through the environment
    (the code location loads in its own process, as in production, and reads them there)."""
    with running_simulator(
        size="tiny", seed=5, app_name="alpha", client_id="alpha-id", client_secret="s3cret-alpha"
    ) as sim:
        environ: dict[str, str] = {}
        write_registry(tmp_path / "districts.yaml", sim, environ, ["alpha"], timezone="UTC")
        warehouse_url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
        environ |= {
            "ROSTER_DISTRICTS_FILE": str(tmp_path / "districts.yaml"),
            "ROSTER_DATABASE_URL": warehouse_url,
            "ROSTER_OUTBOX_DIR": str(tmp_path / "outbox"),
        }
        monkeypatch.delenv("ROSTER_SMTP_HOST", raising=False)
        for key, value in environ.items():
            monkeypatch.setenv(key, value)
        yield {"sim": sim, "warehouse_url": warehouse_url, "outbox": tmp_path / "outbox"}


def test_schedule_run_and_sensor_work_on_the_production_instance(
    production_dagster_home, district_env
) -> None:
    sim = district_env["sim"]
    # Entered (and exited below) so Dagster reads this instance's state storage while it loads definitions.
    instance = dg.DagsterInstance.from_config(str(production_dagster_home.path)).__enter__()
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    target = WorkspaceFileTarget(paths=[str(PROJECT_ROOT / "workspace.yaml")])
    try:
        with create_test_daemon_workspace_context(target, instance) as workspace:
            # 1. A schedule tick, as the scheduler daemon evaluates it: the district's daily 02:00 (UTC) tick of
            #    yesterday.  The first pass records the schedule's state, the second crosses 02:00.
            day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
            before = dt.datetime.combine(day, dt.time(1, 58), tzinfo=dt.UTC)
            for end in (before, before + dt.timedelta(minutes=4)):
                list(launch_scheduled_runs(workspace, LOG, end, iteration_times={}))
            ticks = instigator_ticks(instance, schedule_name("alpha"))
            assert [t.status for t in ticks] == [TickStatus.SUCCESS], tick_errors(ticks)
            (run_id,) = ticks[0].run_ids
            run = instance.get_run_by_id(run_id)
            assert run is not None and run.status == dg.DagsterRunStatus.QUEUED
            assert run.job_name == "sync_district" and run.tags["dagster/partition"] == "alpha"

            # 2. The queued-run daemon's step launches it under the production concurrency settings; the run
            #    worker (its own process) writes every event to Postgres.
            list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(workspace))
            run = wait_for_run(instance, run_id)
            failure = [
                e for e in instance.all_logs(run_id) if e.is_dagster_event and e.dagster_event.is_failure
            ]
            assert run.status == dg.DagsterRunStatus.SUCCESS, [e.message for e in failure]

            # 3. A tick of the control sensor, as the sensor daemon evaluates it: it sees the published import,
            #    sends Import Results, and its cursor is stored with the tick.
            list(
                execute_sensor_iteration(
                    workspace, LOG, threadpool_executor=None, submit_threadpool_executor=None
                )
            )
            ticks = instigator_ticks(instance, CONTROL_SENSOR_NAME)
            assert [t.status for t in ticks] in ([TickStatus.SKIPPED], [TickStatus.SUCCESS]), tick_errors(
                ticks
            )
            assert ticks[0].cursor and "import" in ticks[0].cursor.lower()
            wait_for_run_workers(workspace)
    finally:
        instance.__exit__(None, None, None)  # disposes it

    # 4. Everything reads back from the database through a new instance (another process would see the same).
    with dg.DagsterInstance.from_config(str(production_dagster_home.path)) as reread:
        events = reread.all_logs(run_id)
        types = {e.dagster_event.event_type_value for e in events if e.is_dagster_event}
        assert {"PIPELINE_ENQUEUED", "PIPELINE_START", "ASSET_MATERIALIZATION", "PIPELINE_SUCCESS"} <= types
        published = reread.fetch_materializations(dg.AssetKey("published_roster"), limit=1).records
        assert published and published[0].partition_key == "alpha" and published[0].run_id == run_id
        assert len(instigator_ticks(reread, CONTROL_SENSOR_NAME)) == 1
        assert len(instigator_ticks(reread, schedule_name("alpha"))) == 1

    counts = Warehouse(district_env["warehouse_url"]).current_counts("alpha")
    district = sim.tenant("alpha").district
    for resource in RESOURCES:
        active = sum(1 for r in district.collections[resource.collection].values() if r["status"] == "active")
        assert counts[resource.name] == active, resource.name
    emails = list(district_env["outbox"].glob("*.eml"))
    assert len(emails) == 1 and "Import Results" in emails[0].read_text(errors="replace")
