"""A sync run whose worker is killed (SIGKILL) mid-load or mid-publish, or canceled mid-load.

Real parts, as in production: the run is launched on a persistent Dagster instance through its run
launcher (``dagster job launch``: a code server process starts the run worker process), the worker kills
itself with SIGKILL at the chosen point (``killable_location``) or the run is canceled as the UI does,
and Dagster's code server notices the dead worker.  Then the control sensor ticks: the import is failed
with the cause, its staging emptied, the published tables byte-identical to before, the district paused
and Check Your Data sent exactly once; a review reprocess then lands the right data.

A kill mid-publish runs on both databases: whether a transaction cut off by a dead process leaves
nothing behind is the database's own behaviour (SQLite recovers it from its journal). The mid-load kill
and the cancel run once, on Postgres (the ``end_to_end`` marker): what they test is Dagster's and the
control sensor's handling of a run that died.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.instance.ref import InstanceRef

from roster_pipeline.control.store import get_state
from roster_pipeline.pipeline.run_tags import SYNC_MODE_TAG
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.registry.districts import Registry
from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district, mutations
from roster_pipeline.warehouse import Warehouse, staging
from roster_pipeline.warehouse.schema import TABLES
from roster_pipeline_tests.paths import PROJECT_ROOT

from .control_helpers import bound_definitions, kinds, run_review_job, run_sync, tick
from .killable_location import KILL_AT_VARIABLE
from .pipeline_helpers import EnvSetter, write_registry

SECRET = "alpha-secret-xyz"
RUN_DEADLINE_SECONDS = 240  # how long to wait for Dagster to record the run's end (not a timed assertion)


@dataclass
class Deployment:
    """A persistent Dagster instance (DAGSTER_HOME), a workspace on the killable code location, the
    registry and warehouse; launches sync runs as ``dagster job launch`` does."""

    home: Path
    workspace: Path
    registry: Registry
    registry_path: Path
    warehouse_url: str
    instance: dg.DagsterInstance
    defs: dg.Definitions

    def launch(self, district_id: str, kill_at: str | None = None) -> str:
        known = {r.run_id for r in self.instance.get_runs()}
        env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "ROSTER_DATABASE_URL": self.warehouse_url,
            "ROSTER_DISTRICTS_FILE": str(self.registry_path),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
        }
        env.pop(KILL_AT_VARIABLE, None)
        if kill_at:
            env[KILL_AT_VARIABLE] = kill_at
        tags = json.dumps({"dagster/partition": district_id, SYNC_MODE_TAG: "full"})
        log = self.home / "launch.log"
        with log.open("ab") as out:  # a file, not a pipe: the code server and run worker inherit it
            launched = subprocess.run(
                [
                    "dagster",
                    "job",
                    "launch",
                    "-w",
                    str(self.workspace),
                    "-j",
                    "sync_district",
                    "--tags",
                    tags,
                ],
                check=False,
                env=env,
                cwd=self.home,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=RUN_DEADLINE_SECONDS,
            )
        assert launched.returncode == 0, log.read_text()[-3000:]
        new = [r.run_id for r in self.instance.get_runs() if r.run_id not in known]
        assert len(new) == 1, new
        return new[0]

    def wait_until(self, run_id: str, done: Any) -> dg.DagsterRun:
        deadline = time.monotonic() + RUN_DEADLINE_SECONDS
        while True:
            run = self.instance.get_run_by_id(run_id)
            assert run is not None
            if done(run):
                return run
            assert time.monotonic() < deadline, f"run {run_id} is still {run.status}"
            time.sleep(0.3)


@pytest.fixture()
def server() -> Iterator[SimulatorServer]:
    district = generate_district("tiny", seed=31)
    with SimulatorServer([Tenant("alpha", "alpha-client", SECRET, copy.deepcopy(district))]) as running:
        yield running


@pytest.fixture()
def deployment(
    server: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp_server, warehouse_url: str
) -> Iterator[Deployment]:
    for name, value in {
        "ROSTER_SMTP_HOST": smtp_server.host,
        "ROSTER_SMTP_PORT": str(smtp_server.port),
        "ROSTER_SMTP_SECURITY": "none",
        "ROSTER_EMAIL_FROM": "roster@district-sync.example.org",
        "ROSTER_DAGSTER_URL": "https://dagster.example.org",
    }.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    # Runs launch at once (no daemon needed to dequeue them); the run launcher is Dagster's default.
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n"
    )
    workspace = home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: roster_pipeline_tests.killable_location\n"
        "      location_name: roster_pipeline\n"
    )
    registry_path = tmp_path / "districts.yaml"
    registry = write_registry(registry_path, server, EnvSetter(monkeypatch), ["alpha"], timeout_seconds=120)
    Warehouse(warehouse_url).create_schema()
    # Entered, not only built: entering makes this instance's state storage the current one, which
    # Dagster reads while it loads definitions; a bare instance would read whatever another test left.
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        yield Deployment(
            home,
            workspace,
            registry,
            registry_path,
            warehouse_url,
            instance,
            bound_definitions(registry, registry_path, warehouse_url),
        )


def published_state(url: str) -> dict[str, list[tuple[str, ...]]]:
    """Every published and history row, as text: equal means byte-identical content."""
    engine = sa.create_engine(url)
    out = {}
    with engine.connect() as conn:
        for tables in TABLES.values():
            for table in (tables.published, tables.history):
                rows = conn.execute(sa.select(table)).all()
                out[table.name] = sorted(tuple(str(v) for v in row) for row in rows)
    engine.dispose()
    return out


def staged_rows(url: str, import_id: int) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:  # the import's own staging tables, dropped when it is settled
        own = staging.tables_for(import_id).values() if import_id in staging.existing(conn) else ()
        total = sum(
            int(conn.execute(sa.select(sa.func.count()).select_from(t.staging)).scalar_one()) for t in own
        )
    engine.dispose()
    return total


def alive_ids(url: str, resource: str) -> set[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        ids = set(
            conn.execute(sa.text(f"SELECT sourced_id FROM {resource} WHERE deleted_at IS NULL")).scalars()
        )
    engine.dispose()
    return ids


def assert_settled_once(d: Deployment, smtp_server, run_id: str, import_id: int, words: str) -> Any:
    """Tick the sensor (then again, then as after a restart): failed, staging empty, paused, one email."""
    first = tick(d.defs, d.instance)
    wh = Warehouse(d.warehouse_url)
    run = wh.get_import(import_id)
    assert run.status == "failed", run
    assert (run.error or "").startswith(f"the run {run_id} {words}"), run.error
    assert staged_rows(d.warehouse_url, import_id) == 0
    state = get_state(wh.engine, "alpha")
    assert state.paused and state.import_id == import_id and state.run_id == run_id
    assert words in (state.reason or "")
    failures = [k for k in kinds(smtp_server.messages) if k[2] == "run_failure"]
    assert failures == [("alpha", f"run-{run_id}", "run_failure")]
    later = tick(d.defs, d.instance, first.cursor)
    tick(d.defs, d.instance, None)
    assert [k for k in kinds(smtp_server.messages) if k[2] == "run_failure"] == failures, "exactly once"
    message = next(
        m
        for m in smtp_server.messages
        if m["X-Roster-Kind"] == "check_your_data" and "run_failure" in m["X-Roster-Idempotency-Key"]
    )
    text = message.get_body(("plain",)).get_content()
    assert words in text and "District alpha" in text and "review_reprocess" in text
    assert "review_approve" not in text and SECRET not in message.as_string()
    return later


def reprocess_lands_the_sis(d: Deployment, server: SimulatorServer, cursor: str | None) -> None:
    """The admin's reprocess (the review job, the sensor's run request, the sync) publishes the SIS as it is."""
    run_review_job(
        d.defs,
        "review_reprocess",
        "reprocess_district",
        {"district_id": "alpha", "reviewer": "Lee"},
        d.instance,
    )
    requested = tick(d.defs, d.instance, cursor)
    assert len(requested.run_requests) == 1
    assert run_sync(d.defs, "alpha", d.instance, requested.run_requests[0].tags).success
    tick(d.defs, d.instance, requested.cursor)
    assert not get_state(Warehouse(d.warehouse_url).engine, "alpha").paused
    district = server.tenant("alpha").district
    for resource in RESOURCES:
        served = {k for k, v in district.collections[resource.collection].items() if v["status"] == "active"}
        assert alive_ids(d.warehouse_url, resource.name) == served, resource.name


@pytest.mark.end_to_end  # staging is thrown away whole: Dagster's handling is the subject
def test_sigkill_mid_load_fails_the_import_clears_staging_pauses_and_emails_once(
    server: SimulatorServer, deployment: Deployment, smtp_server
) -> None:
    d = deployment
    assert run_sync(d.defs, "alpha", d.instance).success  # something published, to prove it is kept
    mutations.change_users(server.tenant("alpha").district, percent=20, seed=5)
    before = published_state(d.warehouse_url)

    run_id = d.launch("alpha", kill_at="load:users")
    run = d.wait_until(run_id, lambda r: r.is_finished)
    assert run.status == dg.DagsterRunStatus.FAILURE  # the code server saw its worker die
    wh = Warehouse(d.warehouse_url)
    import_id = wh.import_for_run("alpha", run_id)
    assert wh.get_import(import_id).status == "running" and staged_rows(d.warehouse_url, import_id) > 0

    later = assert_settled_once(d, smtp_server, run_id, import_id, "died during load of users")
    assert "SIGKILL" in (wh.get_import(import_id).error or "")
    assert published_state(d.warehouse_url) == before
    reprocess_lands_the_sis(d, server, later.cursor)


def test_sigkill_mid_publish_publishes_nothing_and_a_reprocess_lands_the_right_data(
    server: SimulatorServer, deployment: Deployment, smtp_server
) -> None:
    d = deployment
    assert run_sync(d.defs, "alpha", d.instance).success
    changed = mutations.change_users(server.tenant("alpha").district, percent=20, seed=5)
    assert changed.changes["users"].updated
    before = published_state(d.warehouse_url)

    # Killed inside the publish transaction, after orgs ... users were written to the published tables.
    run_id = d.launch("alpha", kill_at="publish:users")
    run = d.wait_until(run_id, lambda r: r.is_finished)
    assert run.status == dg.DagsterRunStatus.FAILURE
    wh = Warehouse(d.warehouse_url)
    import_id = wh.import_for_run("alpha", run_id)
    assert wh.get_import(import_id).status == "staged"
    assert published_state(d.warehouse_url) == before, "a publish killed mid-transaction published nothing"

    later = assert_settled_once(d, smtp_server, run_id, import_id, "died during publish")
    assert published_state(d.warehouse_url) == before
    reprocess_lands_the_sis(d, server, later.cursor)
    district = server.tenant("alpha").district
    engine = sa.create_engine(d.warehouse_url)
    with engine.connect() as conn:
        names = dict(
            conn.execute(sa.text("SELECT sourced_id, given_name FROM users WHERE deleted_at IS NULL")).all()
        )
    engine.dispose()
    for sourced_id in changed.changes["users"].updated:
        assert names[sourced_id] == district.collections["users"][sourced_id]["givenName"]


@pytest.mark.end_to_end  # staging is thrown away whole: Dagster's handling is the subject
def test_a_run_canceled_mid_load_is_settled_like_a_dead_one(
    server: SimulatorServer, deployment: Deployment, smtp_server
) -> None:
    d = deployment
    before = published_state(d.warehouse_url)
    slow = server.faults.add(kind="slow", delay_seconds=15, path_contains="/users", times=1)
    run_id = d.launch("alpha")
    d.wait_until(run_id, lambda r: slow.fired or r.is_finished)  # the worker is waiting for /users
    run = d.instance.get_run_by_id(run_id)
    assert run is not None and not run.is_finished
    d.instance.report_run_canceling(run)  # what the UI's Terminate does
    assert d.instance.run_launcher.terminate(run_id)
    run = d.wait_until(run_id, lambda r: r.is_finished)
    assert run.status == dg.DagsterRunStatus.CANCELED
    wh = Warehouse(d.warehouse_url)
    import_id = wh.import_for_run("alpha", run_id)
    assert wh.get_import(import_id).status == "running", "an interrupted step never fails its import itself"

    later = assert_settled_once(d, smtp_server, run_id, import_id, "was canceled during load of users")
    assert published_state(d.warehouse_url) == before
    reprocess_lands_the_sis(d, server, later.cursor)
