"""Backfill after rollover: one run of the real sync_district job per district, each through the normal
checks; the CLI's district selection and table.  Real simulator over HTTP, SQLite and Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from roster_pipeline.cli import main
from roster_pipeline.cli.backfill import format_table, run_backfill, select_districts
from roster_pipeline.pipeline.run_tags import BACKFILL_TAG
from roster_pipeline.registry.districts import load_registry
from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district, mutations
from roster_pipeline.warehouse import Warehouse

from .pipeline_helpers import monkeypatch_environ, write_registry

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres

APPS = ("alpha", "beta", "gamma")


@pytest.fixture()
def server() -> Iterator[SimulatorServer]:
    tenants = [
        Tenant(app, f"{app}-client", f"{app}-secret-xyz", generate_district("tiny", seed=60 + i, name=app))
        for i, app in enumerate(APPS)
    ]
    with SimulatorServer(tenants) as s:
        yield s


@pytest.fixture()
def registry_path(server: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "districts.yaml"
    write_registry(
        path,
        server,
        monkeypatch_environ(monkeypatch),
        APPS,
        rollover={
            "date": "07-01",
            "first_day": "08-20",
            "mode": "none",
            "relaxed_thresholds": {"max_updated_pct": 100, "max_deleted_pct": 100},
        },
    )
    data = yaml.safe_load(path.read_text())
    data["districts"][2]["enabled"] = False  # gamma is disabled
    path.write_text(yaml.safe_dump(data))
    return path


def test_backfill_after_rollover_runs_one_run_per_district(
    server: SimulatorServer, registry_path: Path, warehouse_url: str
) -> None:
    registry = load_registry(registry_path)
    ids, skipped = select_districts(registry, None, all_districts=True)
    assert ids == ["alpha", "beta"] and [s.district_id for s in skipped] == ["gamma"]
    with dg.DagsterInstance.ephemeral() as instance:
        tags = {BACKFILL_TAG: "first", "roster/as_of": "2027-03-01"}
        first = run_backfill(
            registry,
            ids,
            instance=instance,
            database_url=warehouse_url,
            districts_file=str(registry_path),
            tags=tags,
        )
        assert [(r.district_id, r.outcome, r.school_year) for r in first] == [
            ("alpha", "published", 2027),
            ("beta", "published", 2027),
        ]
        for app in ("alpha", "beta"):
            mutations.advance_school_year(server.tenant(app).district, old="tobedeleted", seed=4)

        tags = {BACKFILL_TAG: "rollover", "roster/as_of": "2027-08-02"}  # inside the rollover window
        after = run_backfill(
            registry,
            ids,
            instance=instance,
            database_url=warehouse_url,
            districts_file=str(registry_path),
            tags=tags,
        )
        assert [(r.district_id, r.outcome, r.school_year) for r in after] == [
            ("alpha", "published", 2028),
            ("beta", "published", 2028),
        ]
        runs = instance.get_runs(dg.RunsFilter(tags={BACKFILL_TAG: "rollover"}))
        assert sorted(r.tags["dagster/partition"] for r in runs) == ["alpha", "beta"]  # one run per district
        assert {r.job_name for r in runs} == {"sync_district"}
        assert {r.run_id for r in runs} == {r.run_id for r in after}

    wh = Warehouse(warehouse_url)
    for app in ("alpha", "beta"):
        assert wh.current_school_year(app) == 2028
        assert set(wh.school_years(app)) == {2027, 2028}  # the old year archived, kept
    assert wh.last_published_import("gamma") is None  # disabled: never run
    wh.dispose()
    table = format_table(after)
    assert table.splitlines()[0].split()[:4] == ["district", "outcome", "import", "year"]
    assert "alpha" in table and "published" in table


def test_each_district_goes_through_its_own_checks(
    server: SimulatorServer, registry_path: Path, warehouse_url: str
) -> None:
    data = yaml.safe_load(registry_path.read_text())
    data["districts"][1]["thresholds"] = {"min_changes": 0}  # a tiny district: every % counts
    registry_path.write_text(yaml.safe_dump(data))
    registry = load_registry(registry_path)
    with dg.DagsterInstance.ephemeral() as instance:
        tags = {"roster/as_of": "2027-03-01"}
        run_backfill(
            registry,
            ["alpha", "beta"],
            instance=instance,
            database_url=warehouse_url,
            districts_file=str(registry_path),
            tags=tags,
        )
        mutations.wipe_enrollments(server.tenant("beta").district, percent=90, seed=2)  # beta breaks
        results = run_backfill(
            registry,
            ["alpha", "beta", "gamma"],
            instance=instance,
            database_url=warehouse_url,
            districts_file=str(registry_path),
            tags=tags,
        )
    outcome = {r.district_id: r for r in results}
    assert outcome["alpha"].outcome == "published"
    assert outcome["beta"].outcome == "held" and "checks failed" in outcome["beta"].detail
    assert outcome["gamma"].outcome == "refused" and "disabled" in outcome["gamma"].detail


def test_cli_backfill_prints_a_table_and_fails_when_a_district_did_not_publish(
    server: SimulatorServer,
    registry_path: Path,
    warehouse_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    args = [
        "backfill",
        "--districts",
        "alpha,beta",
        "--database-url",
        warehouse_url,
        "--districts-file",
        str(registry_path),
        "--as-of",
        "2027-03-01",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2 district(s), one full sync run each" in out
    assert out.count("published") >= 2 and "2 of 2 published" in out
    assert (
        main(
            [
                "backfill",
                "--districts",
                "gamma",
                "--database-url",
                warehouse_url,
                "--districts-file",
                str(registry_path),
            ]
        )
        == 1
    )
    assert "refused" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="exactly one of --all or --districts"):
        main(["backfill", "--districts-file", str(registry_path)])
    with pytest.raises(SystemExit, match="unknown district"):
        main(["backfill", "--districts", "nowhere", "--districts-file", str(registry_path)])
