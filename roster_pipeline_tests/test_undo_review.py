"""Undo as a review action: the review_undo Dagster job, `roster-pipeline review DISTRICT undo`, the audit
row, the pause, the thresholds with --force, and the Import Undone email (exactly once, real SMTP).

The imports are published at warehouse level (no simulator needed: what is undone is what the warehouse
holds); the job, the sensor and the CLI are the real ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from roster_pipeline.cli import main
from roster_pipeline.control import store
from roster_pipeline.control.store import create_control_schema, get_state
from roster_pipeline.defs.sensors import ControlCursor
from roster_pipeline.registry.districts import load_registry
from roster_pipeline.warehouse import Warehouse
from roster_pipeline.warehouse.schema import TABLES

from .control_helpers import bound_definitions, kinds, run_review_job, tick

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres

YEAR = 2027


def user(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "sourcedId": f"usr-{n}",
        "status": "active",
        "dateLastModified": "2026-11-01T12:00:00.000Z",
        "username": f"s{n}",
        "givenName": "Ada",
        "familyName": f"L{n}",
        "role": "student",
        "orgs": [{"href": "/orgs/sch-1", "sourcedId": "sch-1", "type": "org"}],
        **fields,
    }


def publish(wh: Warehouse, district: str, users: list[dict[str, Any]]) -> int:
    import_id = wh.begin_import(district, f"run-{district}", YEAR)
    wh.stage(import_id, "users", users)
    wh.publish(import_id)
    return import_id


def published(wh: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with wh.engine.connect() as conn:
        for t in TABLES.values():
            table = sa.Table(t.published.name, sa.MetaData(), autoload_with=conn)
            query = sa.select(*[sa.cast(c, sa.Text) for c in table.columns]).order_by(
                *[table.c[k] for k in t.key]
            )
            out[t.published.name] = [tuple(r) for r in conn.execute(query)]
    return out


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch, smtp_server, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.setenv("ROSTER_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("ROSTER_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("ROSTER_SMTP_SECURITY", "none")
    monkeypatch.setenv("ROSTER_EMAIL_FROM", "roster@district-sync.example.org")
    monkeypatch.setenv("ROSTER_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.setenv("ROSTER_NOTIFY_RETRY_SECONDS", "0")
    monkeypatch.setenv("TEST_ALPHA_KEY", "alpha-client")
    monkeypatch.setenv("TEST_ALPHA_SECRET", "alpha-secret-xyz")
    return monkeypatch


@pytest.fixture()
def registry_path(tmp_path: Path, env: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "districts.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "districts": [
                    {
                        "id": "alpha",
                        "name": "District alpha",
                        "sis": "infinite_campus",
                        "api_host": "sis.alpha.example.org",
                        "app_name": "alpha",
                        "client_id_env": "TEST_ALPHA_KEY",
                        "client_secret_env": "TEST_ALPHA_SECRET",
                        "admin_emails": ["admin@alpha.example.org"],
                        "thresholds": {"min_changes": 2, "max_deleted_pct": 10},
                    }
                ]
            }
        )
    )
    return path


@pytest.fixture()
def wh(warehouse_url: str) -> Iterator[Warehouse]:
    warehouse = Warehouse(warehouse_url)
    warehouse.create_schema()
    create_control_schema(warehouse.engine)
    yield warehouse
    warehouse.dispose()


@pytest.fixture()
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as test_instance:
        yield test_instance


def test_review_undo_job_restores_records_pauses_and_emails_once(
    wh: Warehouse, registry_path: Path, warehouse_url: str, instance: dg.DagsterInstance, smtp_server
) -> None:
    first = publish(wh, "alpha", [user(n) for n in range(1, 21)])
    before = published(wh)
    second = publish(wh, "alpha", [user(1, givenName="Grace")] + [user(n) for n in range(2, 20)] + [user(21)])
    defs = bound_definitions(load_registry(registry_path), registry_path, warehouse_url)

    result = run_review_job(
        defs,
        "review_undo",
        "undo_last_import",
        {"district_id": "alpha", "reviewer": "Jo Admin", "note": "wrong school file"},
        instance,
    )
    assert result.success
    assert published(wh) == before
    run = wh.get_import(second)
    assert (run.status, run.undone_by, run.undo_note, run.undo_forced) == (
        "undone",
        "Jo Admin",
        "wrong school file",
        False,
    )
    assert wh.last_published_import("alpha").import_id == first
    # recorded like a review action, and the district stays paused so the next sync cannot bring it back
    [action] = store.actions_for(wh.engine, "alpha")
    assert (action.action, action.actor, action.import_id, action.note) == (
        "undo",
        "Jo Admin",
        second,
        "wrong school file",
    )
    assert "2 rows restored, 1 removed" in (action.outcome or "") and "checks passed" in (
        action.outcome or ""
    )
    state = get_state(wh.engine, "alpha")
    assert state.paused and state.paused_by == "Jo Admin" and state.import_id == second
    # the district's partition of published_roster says what happened, and district_status follows
    [materialization] = [
        e.materialization
        for e in result.all_events
        if e.is_step_materialization and e.materialization.asset_key == dg.AssetKey("published_roster")
    ]
    assert materialization.partition == "alpha"
    assert materialization.metadata["undone_import_id"].value == second
    assert materialization.metadata["removed"].value == 1 and materialization.metadata["restored"].value == 2
    assert result.output_for_node("undo_last_import")["import_id"] == second

    first_tick = tick(defs, instance)
    tick(defs, instance, first_tick.cursor)
    tick(defs, instance, None)  # a restarted sensor
    tick(defs, instance, ControlCursor(import_floor=0).dump())
    undone = [m for m in smtp_server.messages if m["X-Roster-Kind"] == "import_undone"]
    assert len(undone) == 1
    assert sorted(kinds(smtp_server.messages)) == [
        ("alpha", str(first), "import_results"),
        ("alpha", str(second), "import_undone"),
    ]
    message = undone[0]
    assert message["To"] == "admin@alpha.example.org"
    assert f"import {second} undone" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    assert "undone by Jo Admin" in text and "wrong school file" in text and "paused" in text
    users_row = next(line for line in text.splitlines() if line.lstrip().startswith("users"))
    assert users_row.split()[1:] == [
        "20",
        "2",
        "1",
        "0",
        "20",
    ]  # before, restored, removed, un-archived, after
    assert "alpha-secret-xyz" not in message.as_string()
    row = store.get_notification(wh.engine, f"alpha:{second}:import_undone")
    assert row is not None and row.status == "sent" and row.attempts == 1


def test_cli_undo_refuses_over_thresholds_then_previews_then_forces(
    wh: Warehouse, registry_path: Path, warehouse_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "review",
        "alpha",
        "undo",
        "--reviewer",
        "Jo Admin",
        "--database-url",
        warehouse_url,
        "--districts-file",
        str(registry_path),
    ]
    assert main(args) == 1
    assert "district 'alpha' has no published import to undo" in capsys.readouterr().err

    only = publish(wh, "alpha", [user(n) for n in range(1, 6)])
    before = published(wh)
    # Undoing the first import would delete every user: over max_deleted_pct, refused until forced.
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "undoing import" in err and "deleted_pct" in err and "users" in err and "force" in err
    assert published(wh) == before and wh.get_import(only).status == "published"

    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "preview" in out and "remove 5" in out and "checks would fail" in out
    assert published(wh) == before

    assert main([*args, "--force", "--note", "test district, start again"]) == 0
    out = capsys.readouterr().out
    assert "import 1 undone" in out and "overridden" in out
    assert wh.current_counts("alpha")["users"] == 0 and wh.get_import(only).undo_forced is True
    actions = store.actions_for(wh.engine, "alpha")
    assert [a.action for a in actions] == ["undo", "undo", "undo"]  # failed attempts are audited too
    assert (actions[0].outcome or "").startswith("failed: UndoRefusedError")
    assert (actions[1].outcome or "").startswith("failed: UndoCheckError")
    assert "overridden" in (actions[2].outcome or "") and actions[2].note == "test district, start again"

    assert main([*args, "--force"]) == 1  # nothing left to undo
    assert "no published import to undo" in capsys.readouterr().err
    assert (
        main(
            [
                "review",
                "alpha",
                "approve",
                "--force",
                "--reviewer",
                "Jo",
                "--database-url",
                warehouse_url,
                "--districts-file",
                str(registry_path),
            ]
        )
        == 2
    )


def test_control_schema_widens_the_checks_of_an_existing_database(wh: Warehouse) -> None:
    """A database created before undo: its CHECKs refuse action 'undo' and kind 'import_undone'."""
    postgres = wh.dialect == "postgresql"
    ident = "BIGSERIAL PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
    stamp = "TIMESTAMP WITH TIME ZONE" if postgres else "DATETIME"
    with wh.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE review_actions"))
        conn.execute(sa.text("DROP TABLE notifications"))
        conn.execute(
            sa.text(
                f"CREATE TABLE review_actions (id {ident}, district_id VARCHAR(64) NOT NULL, import_id BIGINT, "
                f"action VARCHAR(20) NOT NULL, actor VARCHAR(200) NOT NULL, note TEXT, at {stamp} NOT NULL, outcome TEXT, "
                "CONSTRAINT ck_review_actions_action CHECK (action IN ('approve', 'reject', 'reprocess', 'pause', 'resume')))"
            )
        )
        conn.execute(
            sa.text(
                f"CREATE TABLE notifications (id {ident}, district_id VARCHAR(64) NOT NULL, import_id BIGINT, "
                "kind VARCHAR(30) NOT NULL, idempotency_key VARCHAR(300) NOT NULL UNIQUE, status VARCHAR(20) NOT NULL, "
                f"attempts INTEGER NOT NULL, last_error TEXT, created_at {stamp} NOT NULL, last_attempt_at {stamp}, "
                f"sent_at {stamp}, message_path_or_id TEXT, detail JSON, "
                "CONSTRAINT ck_notifications_kind CHECK (kind IN ('check_your_data', 'import_results', 'run_failure')), "
                "CONSTRAINT ck_notifications_status CHECK (status IN ('sending', 'sent', 'failed')))"
            )
        )
    first = store.record_action(wh.engine, "alpha", "pause", "sensor", outcome="held")
    with pytest.raises(sa.exc.IntegrityError):
        store.record_action(wh.engine, "alpha", "undo", "Jo Admin")
    # the old kind CHECK makes the claim fail like a duplicate: the email would silently never go out
    assert not store.claim_notification(
        wh.engine, "alpha:1:import_undone", district_id="alpha", import_id=1, kind="import_undone"
    )
    assert store.get_notification(wh.engine, "alpha:1:import_undone") is None

    create_control_schema(wh.engine)
    create_control_schema(wh.engine)  # idempotent
    second = store.record_action(wh.engine, "alpha", "undo", "Jo Admin", import_id=1, outcome="ok")
    assert second > first
    assert [(a.id, a.action) for a in store.actions_for(wh.engine, "alpha")] == [
        (first, "pause"),
        (second, "undo"),
    ]
    assert store.claim_notification(
        wh.engine, "alpha:1:import_undone", district_id="alpha", import_id=1, kind="import_undone"
    )
    assert not store.claim_notification(
        wh.engine, "alpha:1:import_undone", district_id="alpha", import_id=1, kind="import_undone"
    )


def test_cli_undo_is_recorded_on_the_partition_in_the_dagster_home_instance(
    wh: Warehouse,
    registry_path: Path,
    warehouse_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The CLI changes the published roster outside any run: the instance the UI reads (DAGSTER_HOME's)
    gets a materialization of published_roster for the district, with the undone import and the reviewer."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    publish(wh, "alpha", [user(n) for n in range(1, 21)])
    second = publish(wh, "alpha", [user(1, givenName="Grace")] + [user(n) for n in range(2, 20)] + [user(21)])

    assert (
        main(
            [
                "review",
                "alpha",
                "undo",
                "--reviewer",
                "Jo Admin",
                "--database-url",
                warehouse_url,
                "--districts-file",
                str(registry_path),
            ]
        )
        == 0
    ), capsys.readouterr().err
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("published_roster"), asset_partitions=["alpha"]),
            limit=1,
        ).records
    assert records, "no materialization of published_roster for alpha"
    materialization = records[0].asset_materialization
    assert materialization is not None and materialization.partition == "alpha"
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert (metadata["undone_import_id"], metadata["reviewer"], metadata["action"]) == (
        second,
        "Jo Admin",
        "undo",
    )
    assert (metadata["restored"], metadata["removed"]) == (2, 1)
