"""Student PII: a district can switch demographics off (``pii: demographics: false``).

Then /demographics is never requested (the simulator's request log proves it), nothing of it is stored,
what the warehouse already held for the district is purged everywhere (published, history, staging,
quarantine, field diffs) and the purge is recorded; the checks and thresholds do not read the absence
as a mass deletion, and another district's demographics are untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from roster_pipeline.cli.review import review
from roster_pipeline.defs.assets import build_roster_assets
from roster_pipeline.defs.jobs import build_dry_run_job
from roster_pipeline.defs.partitions import district_partitions
from roster_pipeline.defs.resources import DistrictRegistryResource, WarehouseResource
from roster_pipeline.oneroster import OneRosterClient
from roster_pipeline.pipeline.sync import SyncError, stage_resource, sync_district
from roster_pipeline.records.catalogue import RESOURCES, resource
from roster_pipeline.registry.districts import District, RegistryError, load_registry, parse_registry
from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district, mutations
from roster_pipeline.sources.factory import client_config_for
from roster_pipeline.warehouse import TABLES, Warehouse, staging

from .pipeline_helpers import MonkeypatchedEnviron, materialization_metadata, sync, write_registry

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres

DEMOGRAPHICS = TABLES["demographics"]


@pytest.fixture(scope="module")
def tiny_template():
    return generate_district("tiny", seed=5)


@pytest.fixture()
def server(tiny_template) -> Iterator[SimulatorServer]:
    tenants = [
        Tenant("north", "north-client", "north-secret-value-1", copy.deepcopy(tiny_template)),
        Tenant("south", "south-client", "south-secret-value-2", copy.deepcopy(tiny_template)),
    ]
    with SimulatorServer(tenants) as running:
        yield running


def demographics_requests(server: SimulatorServer) -> list[Any]:
    return [r for r in server.requests if "/demographics" in r.path]


def switch_off(path: Path, district_id: str) -> District:
    data = yaml.safe_load(path.read_text())
    for entry in data["districts"]:
        if entry["id"] == district_id:
            entry["pii"] = {"demographics": False}
    path.write_text(yaml.safe_dump(data))
    return load_registry(path).get(district_id)


def rows(warehouse: Warehouse, table: sa.Table, district_id: str, **where: Any) -> int:
    query = sa.select(sa.func.count()).select_from(table).where(table.c.district_id == district_id)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with warehouse.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def staged_demographics(warehouse: Warehouse, district_id: str) -> int:
    """Demographics rows in the staging tables of the district's imports (each import has its own)."""
    total = 0
    with warehouse.engine.connect() as conn:
        present = staging.existing(conn)
        ids = conn.execute(
            sa.text("SELECT import_id FROM import_runs WHERE district_id = :d"), {"d": district_id}
        )
        for import_id in ids.scalars():
            if "demographics" in present.get(int(import_id), set()):
                table = staging.for_import(import_id, "demographics").staging
                total += int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    return total


def district_dump(warehouse: Warehouse, district_id: str) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    with warehouse.engine.connect() as conn:
        for tables in TABLES.values():
            for table in (tables.published, tables.history):
                out[table.name] = sorted(
                    tuple(str(v) for v in row)
                    for row in conn.execute(sa.select(table).where(table.c.district_id == district_id))
                )
    return out


# --- the registry field ------------------------------------------------------------------------------


def district_fields(**fields: Any) -> dict[str, Any]:
    return {
        "id": "north",
        "name": "North",
        "api_host": "sis.example.org",
        "app_name": "north",
        "client_id_env": "NORTH_ID",
        "client_secret_env": "NORTH_SECRET",
        **fields,
    }


def test_demographics_are_on_by_default_and_switch_off_per_district() -> None:
    registry = parse_registry(
        {"districts": [district_fields(), district_fields(id="south", pii={"demographics": False})]}
    )
    assert registry.get("north").pii.demographics is True and registry.get("north").excluded_resources() == {}
    reason = registry.get("south").excluded_resources()["demographics"]
    assert "district 'south'" in reason and "pii: demographics: false" in reason


@pytest.mark.parametrize(
    ("pii", "field"),
    [({"demografics": False}, "pii.demografics"), ({"demographics": "maybe"}, "pii.demographics")],
)
def test_a_misspelt_pii_setting_is_an_error_naming_district_and_field(
    pii: dict[str, Any], field: str
) -> None:
    with pytest.raises(RegistryError, match=f"district 'north': field '{field}'"):
        parse_registry({"districts": [district_fields(pii=pii)]})


# --- the sync path -------------------------------------------------------------------------------------


def test_switching_demographics_off_purges_them_and_never_fetches_them_again(
    server: SimulatorServer, warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "districts.yaml"
    registry = write_registry(
        path,
        server,
        MonkeypatchedEnviron(monkeypatch),
        ["north", "south"],
        thresholds={"max_rejected_pct": 100},
    )
    warehouse = Warehouse(warehouse_url)
    warehouse.create_schema()
    for app in ("north", "south"):
        assert sync_district(warehouse, registry.get(app), f"run-{app}-1", RESOURCES).published

    # Give north every kind of stored demographics: a changed record (history + field diff), a record that
    # fails its checks (quarantine with the raw record) and a held import with staged demographics.
    collection = server.tenant("north").district.collections["demographics"]
    changed_id, bad_id = sorted(collection)[:2]
    collection[changed_id] = {
        **collection[changed_id],
        "sex": "female" if collection[changed_id]["sex"] == "male" else "male",
        "dateLastModified": "2030-01-01T00:00:00.000Z",
    }
    collection[bad_id] = {
        **collection[bad_id],
        "birthDate": "31/12/2010",
        "dateLastModified": "2030-01-01T00:00:00.000Z",
    }
    server.tenant("north").district.bump()
    second = sync_district(warehouse, registry.get("north"), "run-north-2", RESOURCES)
    assert second.published["demographics"].updated == 1
    held_id = warehouse.begin_import("north", "run-held", second.school_year)
    warehouse.stage(held_id, "demographics", list(collection.values())[:3])
    warehouse.hold_import(held_id, "test: held with staged demographics")
    with warehouse.engine.connect() as conn:
        assert rows(warehouse, DEMOGRAPHICS.history, "north") >= 1
        assert staged_demographics(warehouse, "north") == 3
        rejected = sa.text(
            "SELECT count(*) FROM rejected_records WHERE district_id = 'north' AND resource = 'demographics'"
        )
        assert conn.execute(rejected).scalar_one() >= 1
        diffs = sa.text(
            "SELECT count(*) FROM import_field_changes WHERE district_id = 'north' AND resource = 'demographics'"
        )
        assert conn.execute(diffs).scalar_one() >= 1
    published_before = rows(warehouse, DEMOGRAPHICS.published, "north")
    assert published_before > 0
    history_before = rows(warehouse, DEMOGRAPHICS.history, "north")
    south_before = district_dump(warehouse, "south")

    north = switch_off(path, "north")
    server.clear_requests()
    third = sync_district(warehouse, north, "run-north-3", RESOURCES)

    assert demographics_requests(server) == []  # never fetched
    assert [r for r in server.requests if "/users" in r.path]  # the rest was
    assert third.checks is not None and third.checks.passed, third.checks.reason()
    assert third.published and "demographics" not in third.published and "demographics" not in third.staged
    summary = third.checks.summary.set_index("resource").loc["demographics"]
    assert (summary.published_before, summary.deleted, summary.deleted_pct) == (0, 0, 0.0)
    skipped = third.skipped["demographics"]
    assert "demographics are switched off" in skipped.reason
    assert skipped.purged.published_rows == published_before
    assert skipped.purged.history_rows == history_before
    assert skipped.purged.staging_rows == 3
    assert skipped.purged.rejected_rows >= 1 and skipped.purged.field_change_rows >= 1

    # Gone from every table that held it, for north only.
    assert rows(warehouse, DEMOGRAPHICS.published, "north") == 0
    assert rows(warehouse, DEMOGRAPHICS.history, "north") == 0
    assert staged_demographics(warehouse, "north") == 0
    with warehouse.engine.connect() as conn:
        for table in ("rejected_records", "import_field_changes"):
            left = sa.text(
                f"SELECT count(*) FROM {table} WHERE district_id = 'north' AND resource = 'demographics'"
            )
            assert conn.execute(left).scalar_one() == 0, table
        view = sa.text("SELECT count(*) FROM current_demographics WHERE district_id = 'north'")
        assert conn.execute(view).scalar_one() == 0
    assert "demographics" not in warehouse.resource_counts(held_id)  # an approve cannot publish "nothing"
    assert warehouse.current_counts("north")["users"] > 0
    assert district_dump(warehouse, "south") == south_before
    south_records = server.tenant("south").district.collections["demographics"].values()
    assert warehouse.current_counts("south")["demographics"] == sum(
        r["status"] == "active" for r in south_records
    )

    [purge] = warehouse.purges("north")
    assert purge["resource"] == "demographics" and purge["import_id"] == third.import_id
    assert purge["published_rows"] == published_before and "switched off" in purge["reason"]
    assert warehouse.purges("south") == []

    # Later syncs: still nothing requested, nothing left to purge, nothing recorded again.
    fourth = sync_district(warehouse, north, "run-north-4", RESOURCES)
    assert fourth.published and fourth.skipped["demographics"].purged.total == 0
    assert demographics_requests(server) == []
    assert len(warehouse.purges("north")) == 1


def test_staging_a_switched_off_resource_is_refused_before_any_request(
    server: SimulatorServer, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "districts.yaml"
    write_registry(path, server, MonkeypatchedEnviron(monkeypatch), ["north"], pii={"demographics": False})
    north = load_registry(path).get("north")
    warehouse = Warehouse(sqlite_url)
    warehouse.create_schema()
    import_id = warehouse.begin_import("north", "run-1", 2027)
    server.clear_requests()
    with (
        OneRosterClient(client_config_for(north)) as client,
        pytest.raises(SyncError, match="district 'north'"),
    ):
        stage_resource(warehouse, client, import_id, north, resource("demographics"))
    assert server.requests == []


# --- the Dagster assets ----------------------------------------------------------------------------------


def test_the_demographics_asset_materializes_as_skipped_and_the_run_publishes(
    server: SimulatorServer, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "districts.yaml"
    registry = write_registry(
        path, server, MonkeypatchedEnviron(monkeypatch), ["north"], pii={"demographics": False}
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = sync(registry, path, sqlite_url, "north", instance)
    assert result.success
    meta = materialization_metadata(result, "demographics")
    assert meta["skipped"] is True and meta["dagster/row_count"] == 0 and meta["requests"] == 0
    assert (
        "demographics are switched off" in meta["skip_reason"] and "district 'north'" in meta["skip_reason"]
    )
    checks = result.get_asset_check_evaluations()
    assert checks and all(evaluation.passed for evaluation in checks)
    assert materialization_metadata(result, "published_roster")["demographics_current_rows"] == 0
    assert demographics_requests(server) == []
    counts = Warehouse(sqlite_url).current_counts("north")
    assert counts["demographics"] == 0 and counts["users"] > 0


def test_approving_a_snapshot_held_before_the_switch_never_publishes_its_demographics(
    server: SimulatorServer, warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held (district paused, so no sync runs in between), PII switched off, then approved: the staged
    demographics are purged with the rest, not published."""
    path = tmp_path / "districts.yaml"
    registry = write_registry(path, server, MonkeypatchedEnviron(monkeypatch), ["north"])
    warehouse = Warehouse(warehouse_url)
    warehouse.create_schema()
    assert sync_district(warehouse, registry.get("north"), "run-1", RESOURCES).published
    mutations.wipe_enrollments(server.tenant("north").district, percent=90, seed=2)
    held = sync_district(warehouse, registry.get("north"), "run-2", RESOURCES)
    assert not held.published and staged_demographics(warehouse, "north") > 0

    switch_off(path, "north")
    outcome = review(
        "approve", "north", reviewer="Jo Admin", database_url=warehouse_url, districts_file=str(path)
    )

    assert "published" in outcome and warehouse.get_import(held.import_id).status == "published"
    assert rows(warehouse, DEMOGRAPHICS.published, "north") == 0
    assert staged_demographics(warehouse, "north") == 0
    assert "demographics" not in warehouse.resource_counts(held.import_id)
    [purge] = warehouse.purges("north")
    assert purge["import_id"] == held.import_id and purge["staging_rows"] > 0


def test_a_dry_run_skips_demographics_but_leaves_the_purge_to_the_next_real_sync(
    server: SimulatorServer, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "districts.yaml"
    registry = write_registry(path, server, MonkeypatchedEnviron(monkeypatch), ["north"])
    warehouse = Warehouse(sqlite_url)
    warehouse.create_schema()
    assert sync_district(warehouse, registry.get("north"), "run-1", RESOURCES).published
    published_before = rows(warehouse, DEMOGRAPHICS.published, "north")
    north = switch_off(path, "north")
    server.clear_requests()

    partitions = district_partitions(load_registry(path))
    defs = dg.Definitions(
        assets=build_roster_assets(partitions),
        jobs=[build_dry_run_job()],
        resources={
            "warehouse": WarehouseResource(database_url=sqlite_url),
            "registry": DistrictRegistryResource(districts_file=str(path)),
        },
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("dry_run_district").execute_in_process(
            partition_key="north", instance=instance
        )
    assert result.success
    meta = materialization_metadata(result, "demographics")
    assert meta["skipped"] is True and meta["purged_rows"] == 0
    assert demographics_requests(server) == []
    assert (
        rows(warehouse, DEMOGRAPHICS.published, "north") == published_before
        and warehouse.purges("north") == []
    )

    real = sync_district(warehouse, north, "run-3", RESOURCES)
    assert real.skipped["demographics"].purged.published_rows == published_before
    assert rows(warehouse, DEMOGRAPHICS.published, "north") == 0
