"""A failed sync keeps its first cause, and its Check Your Data email says what failed and offers what works.

The first cause of a failure used to be overwritten by the steps that ran after it ("import N is failed;
it cannot receive records"), and a failed run's email said "the new snapshot is held" and offered Approve,
which then refused.  Real parts: the simulator over HTTP (a persistent 403 on one endpoint), the Dagster
sync job and control sensor, SQLite and Postgres, a real SMTP server.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import dagster as dg
import pytest

from roster_pipeline.cli.review import review
from roster_pipeline.control.store import get_state
from roster_pipeline.notify import CheckYourDataReport, FailedCheck, RunFailure, render_check_your_data
from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district
from roster_pipeline.warehouse import Warehouse

from .control_helpers import bound_definitions, kinds, run_sync, tick
from .pipeline_helpers import EnvSetter, write_registry

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres

SECRET = "alpha-secret-xyz"


def test_fail_import_keeps_the_first_cause(warehouse_url: str) -> None:
    wh = Warehouse(warehouse_url)
    wh.create_schema()
    import_id = wh.begin_import("alpha", "run-1", 2027)
    wh.fail_import(import_id, "classes: OneRosterHTTPError: GET /classes answered 403")
    wh.fail_import(
        import_id, f"courses: WarehouseError: import {import_id} is failed; it cannot receive records"
    )
    error = wh.get_import(import_id).error or ""
    assert error.startswith("classes: OneRosterHTTPError: GET /classes answered 403"), error
    wh.fail_import(import_id, "classes: OneRosterHTTPError: GET /classes answered 403")
    assert wh.get_import(import_id).error == error, "the same cause again changes nothing"


@pytest.fixture()
def server() -> Iterator[SimulatorServer]:
    district = generate_district("tiny", seed=31)
    with SimulatorServer([Tenant("alpha", "alpha-client", SECRET, copy.deepcopy(district))]) as running:
        yield running


@pytest.fixture()
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as test_instance:
        yield test_instance


@pytest.fixture()
def setup(
    server: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp_server, warehouse_url: str
):
    monkeypatch.setenv("ROSTER_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("ROSTER_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("ROSTER_SMTP_SECURITY", "none")
    monkeypatch.setenv("ROSTER_EMAIL_FROM", "roster@district-sync.example.org")
    monkeypatch.setenv("ROSTER_DAGSTER_URL", "https://dagster.example.org")
    path = tmp_path / "districts.yaml"
    environ: MutableMapping[str, str] = EnvSetter(monkeypatch)
    registry = write_registry(path, server, environ, ["alpha"])
    return bound_definitions(registry, path, warehouse_url), path


def test_a_failed_endpoint_is_the_recorded_cause_and_the_email_offers_what_works(
    server: SimulatorServer, setup, instance, warehouse_url: str, smtp_server
) -> None:
    defs, path = setup
    server.faults.add(403, path_contains="/classes", times=None)  # classes is the first resource step to run
    failed = run_sync(defs, "alpha", instance)
    assert not failed.success
    wh = Warehouse(warehouse_url)
    run = wh.get_import(wh.import_for_run("alpha", failed.run_id))
    assert run.status == "failed"
    error = run.error or ""
    assert error.startswith("classes:") and "403" in error and "/classes" in error, error
    assert "cannot receive records" not in error, "a later step's consequence never replaces the cause"
    fetched = {r.path.rsplit("/", 1)[-1] for r in server.requests if r.status == 200}
    assert not fetched & {"courses", "users", "enrollments"}, "steps after the failure fetch nothing"

    tick(defs, instance)
    tick(defs, instance, None)
    assert get_state(wh.engine, "alpha").paused
    assert [k for k in kinds(smtp_server.messages)] == [("alpha", f"run-{failed.run_id}", "run_failure")]
    message = smtp_server.messages[0]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for body in (text, html):
        assert "District alpha" in body and "classes" in body and "/classes" in body and "403" in body
        assert "is held" not in body and "held snapshot" not in body, "nothing is held after a failed run"
        assert "Approve" not in body and "review_approve" not in body, "approve refuses for a failed run"
        assert "review_reprocess" in body and "reprocess" in body
        assert "review_reject" in body
    assert "failed" in message["Subject"] and "paused" in message["Subject"]
    assert SECRET not in message.as_string()

    # What the email offers works: reject resumes the district (nothing to discard) ...
    review("reject", "alpha", reviewer="Sam", database_url=warehouse_url, districts_file=str(path))
    assert not get_state(wh.engine, "alpha").paused


def test_a_held_import_email_still_offers_approve_and_a_failed_run_email_never_does() -> None:
    held = CheckYourDataReport(
        "alpha",
        "District alpha",
        7,
        "run-7",
        2027,
        "full",
        None,
        [FailedCheck("change_thresholds", "enrollments: 90% deleted (limit 10%)")],
    )
    text = render_check_your_data(held, ["a@x.org"], "r@x.org").get_body(("plain",)).get_content()
    assert "the new snapshot is held until an administrator reviews it" in text
    assert [a.action for a in held.actions] == ["approve", "reject", "reprocess"] and "Approve:" in text

    failed = CheckYourDataReport(
        "alpha",
        "District alpha",
        8,
        "run-8",
        None,
        "full",
        None,
        [FailedCheck("publish", "the run run-8 died during publish")],
        failure=RunFailure("publish", "the run run-8 died during publish\nthen: later"),
    )
    message = render_check_your_data(failed, ["a@x.org"], "r@x.org")
    text = message.get_body(("plain",)).get_content()
    assert [a.action for a in failed.actions] == ["reprocess", "reject"]
    assert "failed during publish" in text and "Cause: the run run-8 died during publish" in text
    assert "Then: later" in text and "Approve" not in text and "is held" not in text
    assert "sync failed, district paused" in message["Subject"]
