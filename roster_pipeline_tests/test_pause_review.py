"""Pause, emails and review, end to end: the simulator over HTTP, the real Dagster jobs and sensor
(an in-memory instance), the warehouse on Postgres, and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from roster_pipeline.cli.review import review
from roster_pipeline.control import store
from roster_pipeline.control.store import SENSOR_ACTOR, get_state
from roster_pipeline.defs.schedules import schedule_name
from roster_pipeline.defs.sensors import ControlCursor
from roster_pipeline.pipeline.run_tags import REVIEW_ACTION_ID_TAG, REVIEW_ACTION_TAG
from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district, mutations
from roster_pipeline.warehouse import Warehouse

from .control_helpers import bound_definitions, kinds, published_dump, run_review_job, run_sync, tick
from .pipeline_helpers import monkeypatch_environ, write_registry

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres


@pytest.fixture(scope="module")
def templates():
    # tiny keeps these end-to-end loops fast; 90% of its enrollments is still far above every floor
    return generate_district("tiny", seed=31), generate_district("tiny", seed=22)


@pytest.fixture()
def server(templates) -> Iterator[SimulatorServer]:
    small, tiny = templates
    tenants = [
        Tenant("alpha", "alpha-client", "alpha-secret-xyz", copy.deepcopy(small)),
        Tenant("beta", "beta-client", "beta-secret-xyz", copy.deepcopy(tiny)),
    ]
    with SimulatorServer(tenants) as running:
        yield running


@pytest.fixture()
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as test_instance:
        yield test_instance


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch, smtp_server, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.setenv("ROSTER_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("ROSTER_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("ROSTER_SMTP_SECURITY", "none")
    monkeypatch.setenv("ROSTER_EMAIL_FROM", "roster@district-sync.example.org")
    monkeypatch.setenv("ROSTER_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.setenv("ROSTER_DAGSTER_URL", "https://dagster.example.org")
    monkeypatch.setenv("ROSTER_NOTIFY_RETRY_SECONDS", "0")
    return monkeypatch


@pytest.fixture()
def setup(server: SimulatorServer, tmp_path: Path, env: pytest.MonkeyPatch, warehouse_url: str):
    path = tmp_path / "districts.yaml"
    registry = write_registry(path, server, monkeypatch_environ(env), ["alpha", "beta"])
    return bound_definitions(registry, path, warehouse_url), path


def hold_alpha(server: SimulatorServer, defs: dg.Definitions, instance: dg.DagsterInstance, url: str) -> int:
    """A clean first sync, then the SIS loses 90% of its enrollments: the next import is held."""
    assert run_sync(defs, "alpha", instance).success
    mutations.wipe_enrollments(server.tenant("alpha").district, percent=90, seed=2)
    result = run_sync(defs, "alpha", instance)
    assert not result.success
    held = Warehouse(url).held_import("alpha")
    assert held is not None
    return held.import_id


def test_held_import_pauses_the_district_and_sends_one_check_your_data_email(
    server, setup, instance, warehouse_url, smtp_server
) -> None:
    defs, _ = setup
    held = hold_alpha(server, defs, instance, warehouse_url)
    engine = Warehouse(warehouse_url).engine

    first = tick(defs, instance)
    state = get_state(engine, "alpha")
    assert state.paused and state.import_id == held and state.paused_by == SENSOR_ACTOR
    assert "enrollments" in (state.reason or "") and state.run_id
    assert [a.action for a in store.actions_for(engine, "alpha")] == ["pause"]
    cyd = [m for m in smtp_server.messages if m["X-Roster-Kind"] == "check_your_data"]
    assert len(cyd) == 1
    message = cyd[0]
    assert message["To"] == "admin@alpha.example.org"
    assert "Check Your Data" in message["Subject"] and f"import {held}" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    assert "change_thresholds" in text and "https://dagster.example.org/runs/" in text
    assert "alpha-secret-xyz" not in message.as_string()
    assert {p.get_filename() for p in message.iter_attachments()} >= {"field_changes.csv"}
    # the first (clean) import got its Import Results email too, exactly once
    assert sorted(k for _, _, k in kinds(smtp_server.messages)) == ["check_your_data", "import_results"]
    # the tick's line in the UI says what it did (Dagster shows any tick without runs as skipped)
    assert first.skip_message == (
        f"paused alpha (held import {held}); emailed Import Results to alpha "
        f"(import {held - 1}), Check Your Data to alpha (import {held}); no run to launch"
    )
    status = [e for e in first.asset_events if e.asset_key == dg.AssetKey("district_status")]
    assert status and "PAUSED" in status[0].metadata["status"].value

    second = tick(defs, instance, first.cursor)  # same sensor, next tick
    restarted = tick(defs, instance, None)  # sensor/daemon restart: cursor lost
    tick(defs, instance, ControlCursor(import_floor=0).dump())  # a cursor rewound to the start
    assert len(smtp_server.messages) == 2
    assert second.skip_message and restarted.skip_message
    row = store.get_notification(engine, f"alpha:{held}:check_your_data")
    assert row is not None and row.status == "sent" and row.attempts == 1
    assert [a.action for a in store.actions_for(engine, "alpha")] == ["pause"]


def test_paused_district_schedule_skips_manual_run_refused_other_district_goes_on(
    server, setup, instance, warehouse_url, smtp_server
) -> None:
    defs, _ = setup
    held = hold_alpha(server, defs, instance, warehouse_url)
    cursor = tick(defs, instance).cursor
    before = published_dump(warehouse_url)

    with dg.build_schedule_context(
        instance=instance,
        resources=defs.resources,
        repository_def=defs.get_repository_def(),
        scheduled_execution_time=datetime(2026, 11, 27, 2, 0, tzinfo=UTC),
    ) as context:
        alpha = defs.resolve_schedule_def(schedule_name("alpha")).evaluate_tick(context)
        beta = defs.resolve_schedule_def(schedule_name("beta")).evaluate_tick(context)
    assert not alpha.run_requests
    assert "district alpha is paused since" in (alpha.skip_message or "")
    assert f"import {held}" in alpha.skip_message and "roster-pipeline review alpha" in alpha.skip_message
    assert [r.partition_key for r in beta.run_requests or []] == ["beta"]

    refused = run_sync(defs, "alpha", instance)
    assert not refused.success
    failure = next(e for e in refused.all_events if e.event_type_value == "STEP_FAILURE")
    assert "district alpha is paused" in str(
        failure.step_failure_data.error.cause or failure.step_failure_data.error
    )
    assert Warehouse(warehouse_url).import_for_run("alpha", refused.run_id) is None
    assert published_dump(warehouse_url) == before

    assert run_sync(defs, "beta", instance).success  # the other district keeps syncing
    tick(defs, instance, cursor)
    keys = kinds(smtp_server.messages)
    assert ("alpha", str(held), "check_your_data") in keys
    assert not [k for k in keys if k[2] == "run_failure"], "a refused run is not a new failure"
    assert sum(1 for d, _, k in keys if d == "beta" and k == "import_results") == 1
    assert get_state(Warehouse(warehouse_url).engine, "alpha").import_id == held
    assert not get_state(Warehouse(warehouse_url).engine, "beta").paused


def test_approve_publishes_the_held_snapshot_with_the_override_recorded(
    server, setup, instance, warehouse_url, smtp_server
) -> None:
    defs, _ = setup
    held = hold_alpha(server, defs, instance, warehouse_url)
    cursor = tick(defs, instance).cursor
    wh = Warehouse(warehouse_url)
    enrollments_before = wh.current_counts("alpha")["enrollments"]

    run_review_job(
        defs,
        "review_approve",
        "approve_held_import",
        {"district_id": "alpha", "reviewer": "Dana Admin", "note": "schedules were rebuilt on purpose"},
        instance,
    )
    run = wh.get_import(held)
    assert run.status == "published" and run.overridden_by == "Dana Admin"
    assert run.override_reason == "schedules were rebuilt on purpose"
    assert wh.current_counts("alpha")["enrollments"] < enrollments_before / 2
    assert not get_state(wh.engine, "alpha").paused
    approve = store.actions_for(wh.engine, "alpha")[-1]
    assert (approve.action, approve.actor, approve.import_id) == ("approve", "Dana Admin", held)
    assert "published" in (approve.outcome or "")
    assert_partition_shows_approval(instance, "alpha", held, "Dana Admin", wh)

    tick(defs, instance, cursor)
    results = [
        m for m in smtp_server.messages if m["X-Roster-Idempotency-Key"] == f"alpha:{held}:import_results"
    ]
    assert len(results) == 1
    assert "Dana Admin" in results[0].get_body(("plain",)).get_content()
    assert not get_state(wh.engine, "alpha").paused  # a published import never re-pauses


def latest_published_roster(instance: dg.DagsterInstance, district_id: str) -> dg.EventLogRecord:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("published_roster"), asset_partitions=[district_id]),
        limit=1,
    ).records
    assert records, f"no materialization of published_roster for partition {district_id}"
    return records[0]


def assert_partition_shows_approval(
    instance: dg.DagsterInstance, district_id: str, import_id: int, reviewer: str, wh: Warehouse
) -> None:
    """The district's partition of published_roster shows the approved import, its figures and who approved."""
    record = latest_published_roster(instance, district_id)
    materialization = record.asset_materialization
    assert materialization is not None and materialization.partition == district_id
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["import_id"] == import_id and metadata["reviewer"] == reviewer
    assert metadata["action"] == "approve"
    assert metadata["enrollments_current_rows"] == wh.current_counts(district_id)["enrollments"]
    assert metadata["total_deleted"] > 0  # the approved wipe soft-deleted enrollments
    assert {"total_fetched", "total_added", "total_updated", "total_unchanged"} <= set(metadata)


def test_approve_from_the_cli_shows_on_the_district_partition(server, setup, instance, warehouse_url) -> None:
    """Before: the CLI published the held import but Dagster still showed the previous import as the latest."""
    defs, path = setup
    held = hold_alpha(server, defs, instance, warehouse_url)
    tick(defs, instance)
    before = latest_published_roster(instance, "alpha").asset_materialization
    assert before is not None and before.metadata["import_id"].value != held

    review(
        "approve",
        "alpha",
        reviewer="Jo Admin",
        note="ok",
        database_url=warehouse_url,
        districts_file=str(path),
        instance=instance,
    )
    assert_partition_shows_approval(instance, "alpha", held, "Jo Admin", Warehouse(warehouse_url))


def test_reject_discards_and_keeps_the_published_data(server, setup, instance, warehouse_url) -> None:
    defs, path = setup
    held = hold_alpha(server, defs, instance, warehouse_url)
    tick(defs, instance)
    before = published_dump(warehouse_url)

    outcome = review(
        "reject",
        "alpha",
        reviewer="Sam",
        note="SIS bug",
        stay_paused=True,
        database_url=warehouse_url,
        districts_file=str(path),
        instance=instance,
    )
    wh = Warehouse(warehouse_url)
    assert wh.get_import(held).status == "discarded" and "stays paused" in outcome
    assert published_dump(warehouse_url) == before
    assert get_state(wh.engine, "alpha").paused

    with pytest.raises(Exception, match="no held import"):
        review("approve", "alpha", reviewer="Sam", database_url=warehouse_url, districts_file=str(path))
    review("reject", "alpha", reviewer="Sam", database_url=warehouse_url, districts_file=str(path))
    assert not get_state(wh.engine, "alpha").paused
    actions = [(a.action, a.actor, (a.outcome or "")[:7]) for a in store.actions_for(wh.engine, "alpha")]
    assert actions == [
        ("pause", SENSOR_ACTOR, "import "),
        ("reject", "Sam", "import "),
        ("approve", "Sam", "failed:"),
        ("reject", "Sam", "no held"),
    ]


def test_reprocess_job_after_the_sis_is_fixed_publishes_fresh_data(
    server, setup, instance, warehouse_url, smtp_server
) -> None:
    defs, _ = setup
    district = server.tenant("alpha").district
    assert run_sync(defs, "alpha", instance).success
    saved = copy.deepcopy(district.collections["enrollments"])
    mutations.wipe_enrollments(district, percent=90, seed=2)
    assert not run_sync(defs, "alpha", instance).success
    wh = Warehouse(warehouse_url)
    held = wh.held_import("alpha").import_id
    cursor = tick(defs, instance).cursor

    run_review_job(
        defs, "review_reprocess", "reprocess_district", {"district_id": "alpha", "reviewer": "Lee"}, instance
    )
    assert wh.get_import(held).status == "discarded"
    assert get_state(wh.engine, "alpha").paused, "paused until the fresh import lands"
    with district.lock:  # the district fixes its SIS
        district.collections["enrollments"] = saved
        district.bump()

    requested = tick(defs, instance, cursor)
    assert len(requested.run_requests) == 1
    request = requested.run_requests[0]
    assert request.partition_key == "alpha" and request.tags[REVIEW_ACTION_TAG] == "reprocess"
    fresh = run_sync(defs, "alpha", instance, request.tags)
    assert fresh.success
    new_import = wh.import_for_run("alpha", fresh.run_id)
    assert wh.get_import(new_import).status == "published"

    after = tick(defs, instance, requested.cursor)
    assert not after.run_requests, "the launched run clears the request"
    assert not get_state(wh.engine, "alpha").paused
    assert ("alpha", str(new_import), "import_results") in kinds(smtp_server.messages)
    assert [a.action for a in store.actions_for(wh.engine, "alpha")] == ["pause", "reprocess", "resume"]
    assert request.tags[REVIEW_ACTION_ID_TAG] == str(store.actions_for(wh.engine, "alpha")[1].id)
    assert request.tags["roster/district_name"] == "District alpha"  # the run says which district in the UI


def test_reprocess_cli_with_the_sis_still_broken_holds_again_and_emails_again(
    server, setup, instance, warehouse_url, smtp_server
) -> None:
    defs, path = setup
    held = hold_alpha(server, defs, instance, warehouse_url)
    cursor = tick(defs, instance).cursor
    outcome = review(
        "reprocess",
        "alpha",
        reviewer="Lee",
        database_url=warehouse_url,
        districts_file=str(path),
        instance=instance,
    )
    wh = Warehouse(warehouse_url)
    again = wh.held_import("alpha")
    assert again is not None and again.import_id != held and "held" in outcome
    assert get_state(wh.engine, "alpha").paused and get_state(wh.engine, "alpha").import_id == again.import_id
    tick(defs, instance, cursor)
    cyd = [k for k in kinds(smtp_server.messages) if k[2] == "check_your_data"]
    assert cyd == [
        ("alpha", str(held), "check_your_data"),
        ("alpha", str(again.import_id), "check_your_data"),
    ]


def test_smtp_down_is_retried_later_and_never_fails_the_import(
    server, setup, instance, warehouse_url, smtp_server, env
) -> None:
    defs, _ = setup
    from .smtp_server import free_port

    env.setenv("ROSTER_SMTP_PORT", str(free_port()))  # nobody listens: connection refused
    held = hold_alpha(server, defs, instance, warehouse_url)
    down = tick(defs, instance)
    wh = Warehouse(warehouse_url)
    row = store.get_notification(wh.engine, f"alpha:{held}:check_your_data")
    assert row is not None and row.status == "failed" and row.attempts == 1 and row.last_error
    assert f"paused alpha (held import {held})" in (down.skip_message or "")
    assert (
        "2 email(s) NOT sent, retried on a later tick: Import Results to alpha: could not send"
        in down.skip_message
    )
    assert "; Check Your Data to alpha: could not send" in down.skip_message
    assert wh.get_import(held).status == "held" and get_state(wh.engine, "alpha").paused
    assert smtp_server.messages == []

    env.setenv("ROSTER_SMTP_PORT", str(smtp_server.port))  # SMTP is back
    tick(defs, instance, down.cursor)
    tick(defs, instance, down.cursor)
    row = store.get_notification(wh.engine, f"alpha:{held}:check_your_data")
    assert row is not None and row.status == "sent" and row.attempts == 2
    assert sorted(k for _, _, k in kinds(smtp_server.messages)) == ["check_your_data", "import_results"]


def test_a_failed_sync_run_pauses_and_emails_once(
    server, setup, instance, warehouse_url, smtp_server, env
) -> None:
    defs, _ = setup
    env.setenv("TEST_ALPHA_SECRET", "wrong-secret-value")
    failed = run_sync(defs, "alpha", instance)
    assert not failed.success
    cursor = tick(defs, instance).cursor
    tick(defs, instance, cursor)
    tick(defs, instance, None)
    state = get_state(Warehouse(warehouse_url).engine, "alpha")
    assert state.paused and state.run_id == failed.run_id and "failed" in (state.reason or "")
    assert kinds(smtp_server.messages) == [("alpha", f"run-{failed.run_id}", "run_failure")]
    assert "wrong-secret-value" not in smtp_server.messages[0].as_string()


def test_a_crash_between_claim_and_send_never_sends_twice(
    server, setup, instance, warehouse_url, smtp_server
) -> None:
    defs, _ = setup
    held = hold_alpha(server, defs, instance, warehouse_url)
    engine = Warehouse(warehouse_url).engine
    assert store.claim_notification(
        engine, f"alpha:{held}:check_your_data", district_id="alpha", import_id=held, kind="check_your_data"
    )  # the process dies here, before sending
    tick(defs, instance)
    tick(defs, instance, None)
    assert ("alpha", str(held), "check_your_data") not in kinds(smtp_server.messages)
    assert store.get_notification(engine, f"alpha:{held}:check_your_data").status == "sending"
