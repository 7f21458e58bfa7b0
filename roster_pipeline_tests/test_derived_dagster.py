"""The derived assets in the real sync job: downstream of published_roster, materialized in the same run
with row and warning counts, left as they were by a held import, and rebuilt from what is published when
materialized after a registry change (student_devices) and a reload."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from roster_pipeline.defs.assets import build_roster_assets
from roster_pipeline.defs.derived_assets import build_derived_assets
from roster_pipeline.defs.jobs import SYNC_JOB_NAME, build_sync_job
from roster_pipeline.defs.partitions import district_partitions
from roster_pipeline.defs.resources import DistrictRegistryResource, WarehouseResource
from roster_pipeline.derived.build import CLASS_TEACHERS, STUDENT_LOGINS
from roster_pipeline.pipeline.run_tags import SYNC_MODE_TAG
from roster_pipeline.registry.districts import load_registry
from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district, mutations
from roster_pipeline.warehouse import Warehouse
from roster_pipeline.warehouse.derived import derived_rows, warnings_for_import

from .pipeline_helpers import MonkeypatchedEnviron, materialization_metadata, write_registry

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres

DERIVED = (CLASS_TEACHERS, STUDENT_LOGINS)


@pytest.fixture()
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(
        [
            Tenant(
                "alpha", "alpha-client", "alpha-secret-xyz", copy.deepcopy(generate_district("tiny", seed=31))
            )
        ]
    ) as s:
        yield s


def definitions(registry_path: Path, warehouse_url: str) -> dg.Definitions:
    """The code location's assets and sync job, as definitions.py builds them, on this test's warehouse."""
    partitions = district_partitions(load_registry(registry_path))
    return dg.Definitions(
        assets=[*build_roster_assets(partitions), *build_derived_assets(partitions)],
        jobs=[build_sync_job()],
        resources={
            "warehouse": WarehouseResource(database_url=warehouse_url),
            "registry": DistrictRegistryResource(districts_file=str(registry_path)),
        },
    )


def run_sync(
    registry_path: Path, warehouse_url: str, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    job = definitions(registry_path, warehouse_url).resolve_job_def(SYNC_JOB_NAME)
    return job.execute_in_process(
        partition_key="alpha", instance=instance, tags={SYNC_MODE_TAG: "full"}, raise_on_error=False
    )


def set_devices(path: Path, devices: str) -> None:
    data = yaml.safe_load(path.read_text())
    data["districts"][0]["student_devices"] = devices
    path.write_text(yaml.safe_dump(data))


def test_the_sync_job_builds_the_derived_tables_after_the_publish_and_a_held_import_leaves_them(
    server: SimulatorServer, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "districts.yaml"
    write_registry(
        path, server, MonkeypatchedEnviron(monkeypatch), ["alpha"], student_devices="chromebooks_only"
    )
    graph = definitions(path, sqlite_url).resolve_asset_graph()
    for name in DERIVED:
        assert {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys} == {"published_roster"}
    warehouse = Warehouse(sqlite_url)

    with dg.DagsterInstance.ephemeral() as instance:
        first = run_sync(path, sqlite_url, instance)
        assert first.success
        import_id = materialization_metadata(first, "published_roster")["import_id"]
        stored = {w.check: w.count for w in warnings_for_import(warehouse.engine, import_id)}
        for name in DERIVED:
            meta = materialization_metadata(first, name)
            rows = derived_rows(warehouse.engine, name, "alpha")
            assert meta["dagster/row_count"] == len(rows) > 0, name
            assert meta["import_id"] == import_id and {r["import_id"] for r in rows} == {import_id}
            checks = [w for w in warnings_for_import(warehouse.engine, import_id) if w.table_name == name]
            assert meta["warnings"] == sum(w.count for w in checks), name
        students = derived_rows(warehouse.engine, STUDENT_LOGINS, "alpha")
        with warehouse.engine.connect() as conn:
            current_students = conn.execute(
                sa.text("SELECT count(*) FROM current_users WHERE district_id = 'alpha' AND role = 'student'")
            ).scalar()
        assert len(students) == current_students > 0
        assert {r["student_devices"] for r in students} == {"chromebooks_only"}
        assert all(r["other_device_login"] is None for r in students)
        assert (
            materialization_metadata(first, STUDENT_LOGINS).get("no_email", 0)
            == stored.get("no_email", 0)
            == sum(r["problem"] == "no_email" for r in students)
        )
        before = {name: derived_rows(warehouse.engine, name, "alpha") for name in DERIVED}

        # The SIS wipes most enrollments and the admin switches to no_chromebooks: the import is held, so
        # neither asset runs and both tables keep the last published state (built under the old setting).
        mutations.wipe_enrollments(server.tenant("alpha").district, percent=90, seed=2)
        set_devices(path, "no_chromebooks")
        held = run_sync(path, sqlite_url, instance)
        assert not held.success
        assert materialization_metadata(held, "checked_snapshot")["import_status"] == "held"
        for name in ("published_roster", *DERIVED):
            assert not held.asset_materializations_for_node(name), name
        assert {name: derived_rows(warehouse.engine, name, "alpha") for name in DERIVED} == before

        # Materialized on its own after the reload: rebuilt from what is published, under the new setting.
        defs = definitions(path, sqlite_url)
        rebuilt = dg.materialize(
            [
                *build_roster_assets(district_partitions(load_registry(path))),
                *build_derived_assets(district_partitions(load_registry(path))),
            ],
            selection=[STUDENT_LOGINS],
            partition_key="alpha",
            instance=instance,
            resources=defs.resources,
            raise_on_error=False,
        )
        assert rebuilt.success
        meta = materialization_metadata(rebuilt, STUDENT_LOGINS)
        assert meta["import_id"] == import_id and meta["student_devices"] == "no_chromebooks"
        assert meta["other_device_login_is"] == "username" and meta["chromebook_login_is"] == "not used"
        after = derived_rows(warehouse.engine, STUDENT_LOGINS, "alpha")
        assert [r["student_sourced_id"] for r in after] == [r["student_sourced_id"] for r in students]
        assert all(r["chromebook_login"] is None and r["student_devices"] == "no_chromebooks" for r in after)
        assert sum(r["other_device_login"] is not None for r in after) > 0
