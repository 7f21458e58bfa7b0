"""Which open imports belong to a dead run: the decision, without Dagster (``control.dead_runs``), and the
sensor settling an import whose run no longer exists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from roster_pipeline.control.dead_runs import RunObservation, dead_run, step_label
from roster_pipeline.control.store import get_state
from roster_pipeline.registry.districts import load_registry
from roster_pipeline.simulator import generate_district
from roster_pipeline.warehouse import ImportRun, Warehouse, staging
from roster_pipeline.warehouse.schema import import_runs

from .control_helpers import bound_definitions, kinds, tick

NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def open_import(
    status: str = "staged", started: datetime = NOW - timedelta(minutes=5), run_id: str | None = "run-1"
) -> ImportRun:
    return ImportRun(
        import_id=7,
        district_id="alpha",
        run_id=run_id,
        school_year=2027,
        sync_mode="full",
        status=status,
        started_at=started.replace(tzinfo=None),
        finished_at=None,
        error=None,
    )


@pytest.mark.parametrize("status", ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"])
def test_a_run_still_in_progress_is_not_dead(status: str) -> None:
    assert dead_run(open_import(), RunObservation("run-1", status), NOW) is None


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("FAILURE", "the run run-1 died during publish"),
        ("CANCELED", "the run run-1 was canceled during publish"),
        ("SUCCESS", "the run run-1 ended without closing import 7 (during publish)"),
    ],
)
def test_a_finished_run_with_its_import_still_open_is_dead(status: str, words: str) -> None:
    seen = RunObservation(
        "run-1",
        status,
        step="published_roster",
        detail="Run execution process for run-1 was terminated by signal 9 (SIGKILL).",
        root_run_id="run-0",
    )
    dead = dead_run(open_import(), seen, NOW)
    assert dead is not None
    assert dead.cause == f"{words}: Run execution process for run-1 was terminated by signal 9 (SIGKILL)."
    assert (dead.import_id, dead.district_id, dead.run_id, dead.root_run_id, dead.step) == (
        7,
        "alpha",
        "run-1",
        "run-0",
        "publish",
    )


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


def test_the_sensor_settles_an_import_whose_run_no_longer_exists_once_and_leaves_a_fresh_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warehouse_url: str, smtp_server
) -> None:
    """Through the real sensor on a real (empty) Dagster instance: the run ids exist nowhere."""
    for name, value in {
        "ROSTER_SMTP_HOST": smtp_server.host,
        "ROSTER_SMTP_PORT": str(smtp_server.port),
        "ROSTER_SMTP_SECURITY": "none",
        "ROSTER_EMAIL_FROM": "roster@district-sync.example.org",
        "ROSTER_MISSING_RUN_GRACE_MINUTES": "60",
    }.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "districts.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "districts": [
                    {
                        "id": d,
                        "name": f"District {d}",
                        "sis": "infinite_campus",
                        "api_host": "http://127.0.0.1:9",
                        "app_name": d,
                        "client_id_env": "NO_KEY",
                        "client_secret_env": "NO_SECRET",
                        "admin_emails": [f"admin@{d}.example.org"],
                    }
                    for d in ("alpha", "beta")
                ]
            }
        )
    )
    wh = Warehouse(warehouse_url)
    wh.create_schema()
    orgs = list(generate_district("tiny", seed=31).collections["orgs"].values())
    old = wh.begin_import("alpha", "run-gone", 2027)
    fresh = wh.begin_import("beta", "run-elsewhere", 2027)
    for import_id in (old, fresh):
        wh.stage(import_id, "orgs", orgs)
    with wh.engine.begin() as conn:
        conn.execute(
            import_runs.update()
            .where(import_runs.c.import_id == old)
            .values(started_at=datetime.now(UTC) - timedelta(hours=3))
        )
    defs = bound_definitions(load_registry(path), path, warehouse_url)

    with dg.DagsterInstance.ephemeral() as instance:
        first = tick(defs, instance)
        tick(defs, instance, first.cursor)
        tick(defs, instance, None)
    gone = wh.get_import(old)
    assert gone.status == "failed" and (gone.error or "").startswith("the run run-gone no longer exists")
    assert sum(len(rows) for rows in staged(warehouse_url, old).values()) == 0
    assert get_state(wh.engine, "alpha").paused
    assert kinds(smtp_server.messages) == [("alpha", "run-run-gone", "run_failure")]
    assert wh.get_import(fresh).status == "running", "a sync launched elsewhere is not judged yet"
    assert staged(warehouse_url, fresh)["orgs"] and not get_state(wh.engine, "beta").paused


def staged(url: str, import_id: int) -> dict[str, list[object]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:  # the import's own staging tables, dropped when it is settled
        present = import_id in staging.existing(conn)
        out = {
            name: conn.execute(sa.select(t.staging.c.import_id)).all() if present else []
            for name, t in staging.tables_for(import_id).items()
        }
    engine.dispose()
    return out
