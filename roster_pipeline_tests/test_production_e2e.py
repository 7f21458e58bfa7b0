"""End to end in production form: ``dagster-webserver`` and ``dagster-daemon`` as real processes on the
shipped ``dagster.yaml`` (Postgres storage, queued runs), a Postgres warehouse, three tiny simulated
districts on loopback, everything driven through the webserver's GraphQL API over HTTP as the UI drives it.

The other production tests call the daemon's steps in process (``test_production_instance.py``) or only
the queue (``test_load_daemon.py``).  Here the daemon itself does everything on its own clock:

- a ``sync_district`` run launched over GraphQL is queued, dequeued and run; every asset of the partition
  is materialized and the three blocking checks are recorded for that district;
- a held import (90% of a district's enrollments vanish) pauses the district through the control sensor
  and sends exactly one Check Your Data email, however many ticks follow;
- a district's schedule, due a minute or two after start-up in the district's own timezone, launches a
  run carrying the district's tags.

One set of processes serves the whole module.  The control sensor ticks every 5 s here
(``ROSTER_CONTROL_SENSOR_INTERVAL_SECONDS``), not 30.  Every wait is bounded generously against a hang,
never a timing assertion; a failure shows the end of the webserver's and the daemon's logs.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import zoneinfo
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import pytest
import yaml

from roster_pipeline.control.store import get_state
from roster_pipeline.defs.jobs import SYNC_JOB_NAME
from roster_pipeline.defs.schedules import schedule_name
from roster_pipeline.defs.sensors import CONTROL_SENSOR_INTERVAL_ENV, CONTROL_SENSOR_NAME
from roster_pipeline.pipeline.run_tags import (
    DISTRICT_NAME_TAG,
    DISTRICT_TAG,
    PARTITION_TAG,
    SCHEDULE_TAG,
    SYNC_MODE_TAG,
)
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.simulator import SimulatorServer, Tenant, mutations
from roster_pipeline.simulator.generate import generate_district
from roster_pipeline.warehouse import Warehouse
from roster_pipeline_tests.paths import PROJECT_ROOT

from .dagster_processes import DagsterProcess, GraphQL, executable, start_process, wait_for
from .pipeline_helpers import write_registry
from .smtp_server import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("production_e2e")]

T = TypeVar("T")

LOCATION = "roster_pipeline"  # workspace.yaml's location_name
REPOSITORY = "__repository__"  # a module's Definitions form this one repository
SCHEDULE_NAME_TAG = "dagster/schedule_name"

SEEDS = {"alpha": 31, "beta": 32, "gamma": 33}  # district id (= simulator app) -> seed of its tiny data
SCHEDULED = "gamma"  # the one district with a schedule; the others are manual, synced only when launched
SCHEDULED_TIMEZONE = "America/Chicago"  # not UTC, so the registry's local time must be converted right
SENSOR_INTERVAL_SECONDS = 5
# Bounds against hangs, not timing checks. The schedule's tick must come after the daemon has first seen
# the schedule (it then records when it started watching), so it is set this far ahead of start-up.
STARTUP_TIMEOUT_SECONDS = 300
SCHEDULE_LEAD_SECONDS = 50
RUN_TIMEOUT_SECONDS = 400
FURTHER_TICKS = 3  # control sensor ticks after the email, each of which could have sent it again

SYNC_ASSETS = {
    "roster_import",
    *(r.name for r in RESOURCES),
    "checked_snapshot",
    "published_roster",
    "class_teachers",
    "student_logins",
}
BLOCKING_CHECKS = ("valid_records", "change_thresholds", "school_thresholds")
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

LAUNCH_RUN = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}"""

RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      runId status jobName
      tags { key value }
      assetMaterializations { assetKey { path } partition }
      eventConnection(limit: 5000) { events { __typename } }
    }
    ... on PythonError { message }
  }
}"""

RUNS = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId status tags { key value } } }
    ... on PythonError { message }
  }
}"""

CHECK_EXECUTIONS = """
query Checks($assetKey: AssetKeyInput!, $checkName: String!, $partition: String) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, partition: $partition, limit: 20) {
    runId status partition
    evaluation { success partition }
  }
}"""

SENSOR = """
query Sensor($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor {
      minIntervalSeconds
      sensorState { status ticks(limit: 200) { timestamp status skipReason error { message } } }
    }
    ... on PythonError { message }
  }
}"""

WORKSPACE = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name loadStatus
        locationOrLoadError { __typename ... on PythonError { message stack } }
      }
    }
  }
}"""

DAEMONS = """
{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"""


def tags_of(run: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["tags"]}


def next_minute_after(moment: dt.datetime) -> dt.datetime:
    """The first whole minute at or after ``moment`` (the scheduler checks cron times on minute boundaries)."""
    whole = moment.replace(second=0, microsecond=0)
    return whole if whole == moment else whole + dt.timedelta(minutes=1)


def read_email(path: Path) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert isinstance(message, EmailMessage)
    return message


@dataclass
class Production:
    """The running stack, and the GraphQL calls the tests make on it."""

    gql: GraphQL
    webserver: DagsterProcess
    daemon: DagsterProcess
    sim: SimulatorServer
    warehouse_url: str
    outbox: Path
    dagster_home: Path
    scheduled_at: dt.datetime  # the scheduled district's tick (UTC)
    secrets: list[str]

    # -- diagnostics --------------------------------------------------------------------------------------

    def logs(self) -> str:
        return f"\n{self.webserver.tail()}\n{self.daemon.tail()}"

    def wait(
        self,
        what: str,
        probe: Callable[[], T | None],
        timeout: float = RUN_TIMEOUT_SECONDS,
        interval: float = 1.0,
    ) -> T:
        """``wait_for`` that also stops at once when the webserver or the daemon has died."""

        def alive_probe() -> T | None:
            for process in (self.webserver, self.daemon):
                if not process.alive:
                    raise AssertionError(f"{process.name} exited while waiting for {what}{self.logs()}")
            return probe()

        return wait_for(what, alive_probe, timeout, self.logs, interval)

    @contextmanager
    def explained(self) -> Iterator[None]:
        """A failing assertion inside says what the webserver and the daemon were doing: their logs' ends."""
        try:
            yield
        except AssertionError as exc:
            if self.daemon.name in str(exc):  # wait() already added them
                raise
            raise AssertionError(f"{exc}{self.logs()}") from exc

    def check(self, condition: object, message: str) -> None:
        """An assertion whose failure message ends with the processes' logs."""
        if not condition:
            pytest.fail(f"{message}{self.logs()}", pytrace=False)

    # -- GraphQL ------------------------------------------------------------------------------------------

    def launch(self, district_id: str, **tags: str) -> str:
        """Launches sync_district for one partition as the UI's Launchpad does; returns the run id."""
        params = {
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": REPOSITORY,
                "jobName": SYNC_JOB_NAME,
            },
            "runConfigData": {},
            "executionMetadata": {
                "tags": [{"key": k, "value": v} for k, v in {PARTITION_TAG: district_id, **tags}.items()]
            },
        }
        result = self.gql(LAUNCH_RUN, executionParams=params)["launchRun"]
        self.check(result["__typename"] == "LaunchRunSuccess", f"launchRun for {district_id}: {result}")
        return result["run"]["runId"]

    def run(self, run_id: str) -> dict[str, Any]:
        result = self.gql(RUN, runId=run_id)["runOrError"]
        self.check(result["__typename"] == "Run", f"run {run_id}: {result}")
        return result

    def finished_run(self, run_id: str) -> dict[str, Any]:
        """The run once it has finished (dequeued by the daemon, run by a worker)."""

        def probe() -> dict[str, Any] | None:
            run = self.run(run_id)
            return run if run["status"] in FINISHED else None

        return self.wait(f"run {run_id} to finish", probe)

    def runs(self, **tags: str) -> list[dict[str, Any]]:
        result = self.gql(RUNS, filter={"tags": [{"key": k, "value": v} for k, v in tags.items()]})[
            "runsOrError"
        ]
        self.check(result["__typename"] == "Runs", f"runsOrError: {result}")
        return result["results"]

    def check_executions(self, asset: str, check_name: str, partition: str) -> list[dict[str, Any]]:
        return self.gql(
            CHECK_EXECUTIONS, assetKey={"path": [asset]}, checkName=check_name, partition=partition
        )["assetCheckExecutions"]

    def control_sensor(self) -> dict[str, Any]:
        selector = {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "sensorName": CONTROL_SENSOR_NAME,
        }
        result = self.gql(SENSOR, selector=selector)["sensorOrError"]
        self.check(result["__typename"] == "Sensor", f"sensorOrError: {result}")
        return result

    def failure_details(self, run_id: str) -> str:
        """A failed run's error events, read from the Postgres storage (what the UI's run page shows)."""
        with dg.DagsterInstance.from_config(str(self.dagster_home)) as instance:
            return "\n".join(
                e.message
                for e in instance.all_logs(run_id)
                if e.is_dagster_event and e.dagster_event.is_failure
            )[:4000]

    # -- start-up and shut-down ---------------------------------------------------------------------------

    def wait_until_ready(self) -> None:
        """The webserver serves the loaded code location, and the daemon's scheduler, sensor and run queue
        report healthy heartbeats."""
        self.wait("the webserver to answer", self.gql.server_up, STARTUP_TIMEOUT_SECONDS)

        def location_loaded() -> bool:
            entries = self.gql(WORKSPACE)["workspaceOrError"]["locationEntries"]
            entry = next(e for e in entries if e["name"] == LOCATION)
            if entry["loadStatus"] != "LOADED":
                return False
            loaded = entry["locationOrLoadError"]
            self.check(
                loaded["__typename"] == "RepositoryLocation", f"code location failed to load: {loaded}"
            )
            return True

        self.wait("the code location to load in the webserver", location_loaded, STARTUP_TIMEOUT_SECONDS)

        def daemons_healthy() -> bool:
            statuses = self.gql(DAEMONS)["instance"]["daemonHealth"]["allDaemonStatuses"]
            healthy = {s["daemonType"] for s in statuses if s["healthy"]}
            return {"SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR"} <= healthy

        self.wait("the daemon's heartbeats", daemons_healthy, STARTUP_TIMEOUT_SECONDS, interval=2)

    def settle(self) -> None:
        """Until no run is queued or going, so no run worker outlives the test (the databases are dropped)."""
        going = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]

        def idle() -> bool:
            result = self.gql(RUNS, filter={"statuses": going})["runsOrError"]
            return result["__typename"] == "Runs" and not result["results"]

        self.wait("every run to finish before shutting down", idle)


@pytest.fixture(scope="module")
def production(
    module_production_dagster_home, module_postgres_database, tmp_path_factory
) -> Iterator[Production]:
    """The whole stack, once for the module: simulator, registry, warehouse, webserver and daemon."""
    home = module_production_dagster_home
    folder = tmp_path_factory.mktemp("e2e")
    tenants = [
        Tenant(app, f"{app}-id", f"s3cret-{app}-{seed}", generate_district("tiny", seed=seed))
        for app, seed in SEEDS.items()
    ]
    with SimulatorServer(tenants) as sim, pytest.MonkeyPatch.context() as mp:
        for (
            key,
            value,
        ) in home.env.items():  # this process reads the same instance (DAGSTER_PG_* in dagster.yaml)
            mp.setenv(key, value)
        warehouse_url = module_postgres_database()

        # Every district syncs only when launched, except SCHEDULED: daily, at a whole minute a little
        # ahead, written as the local time of its own timezone like any registry entry.
        scheduled_at = next_minute_after(
            dt.datetime.now(dt.UTC) + dt.timedelta(seconds=SCHEDULE_LEAD_SECONDS)
        )
        credentials: dict[str, str] = {}
        registry_path = folder / "districts.yaml"
        write_registry(registry_path, sim, credentials, SEEDS, schedule={"frequency": "manual"})
        document = yaml.safe_load(registry_path.read_text())
        for entry in document["districts"]:
            if entry["id"] == SCHEDULED:
                local = scheduled_at.astimezone(zoneinfo.ZoneInfo(SCHEDULED_TIMEZONE))
                entry["timezone"] = SCHEDULED_TIMEZONE
                entry["schedule"] = {
                    "frequency": "daily",
                    "time": local.strftime("%H:%M"),
                    "sync_plan": "full_always",
                }
        registry_path.write_text(yaml.safe_dump(document))

        # The storage schema is created here, once, rather than by two processes racing at start-up.
        with dg.DagsterInstance.from_config(str(home.path)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"

        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ROSTER_", "DAGSTER_"))},
            **home.env,
            **credentials,
            "ROSTER_DISTRICTS_FILE": str(registry_path),
            "ROSTER_DATABASE_URL": warehouse_url,
            "ROSTER_OUTBOX_DIR": str(folder / "outbox"),
            "ROSTER_DAGSTER_URL": base_url,
            CONTROL_SENSOR_INTERVAL_ENV: str(SENSOR_INTERVAL_SECONDS),
            # The code under test, whichever checkout runs the test.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
        }
        # The shipped workspace.yaml, from the project's root, as the README says to run them.
        webserver = start_process(
            "dagster-webserver",
            [executable("dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            PROJECT_ROOT,
            env,
            folder,
        )
        daemon = start_process(
            "dagster-daemon",
            [executable("dagster-daemon"), "run", "-w", "workspace.yaml"],
            PROJECT_ROOT,
            env,
            folder,
        )
        gql = GraphQL(base_url)
        stack = Production(
            gql,
            webserver,
            daemon,
            sim,
            warehouse_url,
            folder / "outbox",
            home.path,
            scheduled_at,
            secrets=[t.client_secret for t in tenants],
        )
        try:
            stack.wait_until_ready()
            yield stack
        finally:
            try:
                if webserver.alive and daemon.alive:
                    stack.settle()
            finally:
                daemon.stop()  # with its code server and every run worker it launched
                webserver.stop()
                gql.close()


@pytest.fixture(scope="module")
def first_syncs(production: Production) -> dict[str, str]:
    """alpha's and beta's first syncs, launched together (as an operator would) and run by the daemon: run ids."""
    run_ids = {d: production.launch(d, **{SYNC_MODE_TAG: "full"}) for d in ("alpha", "beta")}
    for run_id in run_ids.values():
        production.finished_run(run_id)
    return run_ids


def test_a_run_launched_over_graphql_materializes_the_partition_and_records_its_checks(
    production: Production, first_syncs: dict[str, str]
) -> None:
    with production.explained():
        run_id = first_syncs["alpha"]
        run = production.run(run_id)
        production.check(
            run["status"] == "SUCCESS",
            f"alpha's run {run_id} is {run['status']}: {production.failure_details(run_id)}",
        )
        assert run["jobName"] == SYNC_JOB_NAME and tags_of(run)[PARTITION_TAG] == "alpha"
        # Queued by the webserver, then launched by the daemon (RunStarting): the production run queue at work.
        events = {e["__typename"] for e in run["eventConnection"]["events"]}
        assert {"RunEnqueuedEvent", "RunStartingEvent", "RunStartEvent", "RunSuccessEvent"} <= events, sorted(
            events
        )

        materialized = {(m["assetKey"]["path"][-1], m["partition"]) for m in run["assetMaterializations"]}
        # and the unpartitioned district_status, which the publish refreshes for the whole registry
        assert materialized == {(asset, "alpha") for asset in SYNC_ASSETS} | {("district_status", None)}

        for check_name in BLOCKING_CHECKS:
            executions = [
                e
                for e in production.check_executions("checked_snapshot", check_name, "alpha")
                if e["runId"] == run_id
            ]
            assert len(executions) == 1, (check_name, executions)
            (execution,) = executions
            assert execution["status"] == "SUCCEEDED" and execution["partition"] == "alpha", (
                check_name,
                execution,
            )
            assert (
                execution["evaluation"]["success"] is True and execution["evaluation"]["partition"] == "alpha"
            )
            # recorded on alpha only: beta's own evaluations (its run went alongside) are not alpha's
            assert all(
                e["runId"] != first_syncs["beta"]
                for e in production.check_executions("checked_snapshot", check_name, "alpha")
            )

        # What the warehouse now serves is exactly what alpha's SIS serves.
        warehouse = Warehouse(production.warehouse_url)
        try:
            counts = warehouse.current_counts("alpha")
        finally:
            warehouse.dispose()
        collections = production.sim.tenant("alpha").district.collections
        assert counts == {
            r.name: sum(1 for rec in collections[r.collection].values() if rec["status"] == "active")
            for r in RESOURCES
        }


def test_a_held_import_pauses_its_district_and_sends_exactly_one_check_your_data_email(
    production: Production, first_syncs: dict[str, str]
) -> None:
    with production.explained():
        first = production.run(first_syncs["beta"])
        production.check(
            first["status"] == "SUCCESS",
            f"beta's first run is {first['status']}: {production.failure_details(first_syncs['beta'])}",
        )
        mutations.wipe_enrollments(
            production.sim.tenant("beta").district, percent=90, seed=2
        )  # the SIS breaks

        run_id = production.launch("beta", **{SYNC_MODE_TAG: "full"})
        run = production.finished_run(run_id)
        # The blocking check stops the run before anything is published.
        assert run["status"] == "FAILURE", run["status"]
        materialized = {m["assetKey"]["path"][-1] for m in run["assetMaterializations"]}
        assert "checked_snapshot" in materialized and "published_roster" not in materialized
        (held_check,) = [
            e
            for e in production.check_executions("checked_snapshot", "change_thresholds", "beta")
            if e["runId"] == run_id
        ]
        assert held_check["evaluation"]["success"] is False and held_check["partition"] == "beta"

        warehouse = Warehouse(production.warehouse_url)
        try:
            held = warehouse.held_import("beta")
            assert held is not None, f"beta's import was not held after run {run_id}"
            # The daemon's control sensor (every 5 s here, from the environment) pauses beta ...
            sensor = production.control_sensor()
            assert sensor["minIntervalSeconds"] == SENSOR_INTERVAL_SECONDS
            state = production.wait(
                "the control sensor to pause beta",
                lambda: (s := get_state(warehouse.engine, "beta")).paused and s,
            )
            assert state.import_id == held.import_id and state.run_id == run_id
            assert not get_state(warehouse.engine, "alpha").paused

            # ... and writes its Check Your Data email. Then several more ticks pass: none may send it again.
            def check_your_data() -> list[Path]:
                return sorted(production.outbox.glob("*_beta_check_your_data_*.eml"))

            production.wait("the Check Your Data email", check_your_data)
            sent_at = time.time()

            def ticks_since_email() -> bool:
                ticks = production.control_sensor()["sensorState"]["ticks"]
                return (
                    len([t for t in ticks if t["timestamp"] > sent_at and t["status"] != "STARTED"])
                    >= FURTHER_TICKS
                )

            production.wait(f"{FURTHER_TICKS} more control sensor ticks", ticks_since_email)
            emails = check_your_data()
            production.check(len(emails) == 1, f"expected one Check Your Data email for beta, found {emails}")
            message = read_email(emails[0])
            assert message["To"] == "admin@beta.example.org"
            assert (
                "Check Your Data" in message["Subject"] and f"import {held.import_id}" in message["Subject"]
            )
            text = message.get_body(("plain",)).get_content()
            assert "change_thresholds" in text and f"{production.gql.base_url}/runs/{run_id}" in text
            assert get_state(warehouse.engine, "beta").paused  # still paused: nobody reviewed it
            errors = [t["error"] for t in production.control_sensor()["sensorState"]["ticks"] if t["error"]]
            assert not errors, errors
        finally:
            warehouse.dispose()

    # No client secret in any email, nor in the webserver's or the daemon's output (checked outside
    # explained(): a failure here must not print those logs).
    sources = [*production.outbox.glob("*.eml"), production.webserver.log_path, production.daemon.log_path]
    leaks = [
        path.name
        for path in sources
        if any(secret in path.read_text(errors="replace") for secret in production.secrets)
    ]
    assert not leaks, f"a district's client secret appears in {leaks}"


def test_a_schedule_tick_launches_a_run_tagged_with_its_district(production: Production) -> None:
    with production.explained():
        name = schedule_name(SCHEDULED)
        # The tick counts only if the daemon was watching the schedule before it was due.
        with dg.DagsterInstance.from_config(str(production.dagster_home)) as instance:
            (state,) = [s for s in instance.all_instigator_state() if s.instigator_name == name]
            watched_from = dt.datetime.fromtimestamp(state.instigator_data.start_timestamp, dt.UTC)  # type: ignore[union-attr]
        production.check(
            watched_from < production.scheduled_at,
            f"the daemon first saw {name} at {watched_from:%H:%M:%S}, after its tick at "
            f"{production.scheduled_at:%H:%M:%S} UTC: start-up took longer than SCHEDULE_LEAD_SECONDS",
        )

        left = (production.scheduled_at - dt.datetime.now(dt.UTC)).total_seconds()
        (run,) = production.wait(
            f"{name}'s tick at {production.scheduled_at:%H:%M} UTC to launch a run",
            lambda: production.runs(**{SCHEDULE_NAME_TAG: name}),
            timeout=max(0.0, left) + RUN_TIMEOUT_SECONDS,
            interval=2,
        )
        tags = tags_of(run)
        assert tags[PARTITION_TAG] == SCHEDULED
        assert tags[DISTRICT_TAG] == SCHEDULED and tags[DISTRICT_NAME_TAG] == f"District {SCHEDULED}"
        assert tags[SCHEDULE_TAG] == name and tags[SYNC_MODE_TAG] == "full"  # its plan: full_always

        finished = production.finished_run(run["runId"])
        production.check(
            finished["status"] == "SUCCESS",
            f"the scheduled run is {finished['status']}: {production.failure_details(run['runId'])}",
        )
        assert {m["partition"] for m in finished["assetMaterializations"]} == {
            SCHEDULED,
            None,
        }  # None: district_status
