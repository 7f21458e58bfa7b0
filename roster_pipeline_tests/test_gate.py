"""The gate between staging and publishing, end to end through the Dagster assets and the simulator:
blocking checks hold a bad snapshot and leave the published tables exactly as they were."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from roster_pipeline.defs.assets import build_roster_assets
from roster_pipeline.defs.jobs import build_dry_run_job
from roster_pipeline.defs.partitions import district_partitions
from roster_pipeline.defs.resources import DistrictRegistryResource, WarehouseResource
from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district, mutations
from roster_pipeline.warehouse import Warehouse

from .control_helpers import published_dump
from .pipeline_helpers import materialization_metadata, monkeypatch_environ, sync, write_registry

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres


@pytest.fixture(scope="module")
def small_template():
    return generate_district("tiny", seed=31)  # small enough to be quick, large enough to cross every floor


@pytest.fixture()
def server(small_template) -> Iterator[SimulatorServer]:
    with SimulatorServer(
        [Tenant("alpha", "alpha-client", "alpha-secret-xyz", copy.deepcopy(small_template))]
    ) as s:
        yield s


@pytest.fixture()
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as test_instance:
        yield test_instance


@pytest.fixture()
def registry_setup(server: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "districts.yaml"
    return write_registry(path, server, monkeypatch_environ(monkeypatch), ["alpha"]), path


def check_evaluations(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def import_status(url: str, import_id: int) -> str:
    return Warehouse(url).get_import(import_id).status


def test_wiped_enrollments_fail_the_threshold_check_and_nothing_is_published(
    server: SimulatorServer, registry_setup, warehouse_url: str, instance
) -> None:
    registry, path = registry_setup
    assert sync(registry, path, warehouse_url, "alpha", instance).success
    before = published_dump(warehouse_url)

    district = server.tenant("alpha").district
    active_before = {k for k, v in district.collections["enrollments"].items() if v["status"] == "active"}
    wiped = mutations.wipe_enrollments(district, percent=90, seed=2)
    result = sync(registry, path, warehouse_url, "alpha", instance)

    assert not result.success
    checks = check_evaluations(result)
    assert not checks["change_thresholds"].passed
    assert "enrollments" in (checks["change_thresholds"].description or "")
    assert checks["valid_records"].passed and checks["school_thresholds"].passed is False
    assert not result.asset_materializations_for_node("published_roster")
    assert published_dump(warehouse_url) == before

    meta = materialization_metadata(result, "checked_snapshot")
    assert meta["import_status"] == "held"
    assert import_status(warehouse_url, meta["import_id"]) == "held"
    enrollments = materialization_metadata(result, "enrollments")
    # Vanished enrollments that were alive count as deletions (already-tobedeleted ones were deleted before).
    assert enrollments["deleted"] == len(wiped.changes["enrollments"].removed & active_before)


def test_first_import_is_exempt_from_change_thresholds(
    server: SimulatorServer, registry_setup, warehouse_url: str, instance
) -> None:
    registry, path = registry_setup
    mutations.wipe_enrollments(server.tenant("alpha").district, percent=90, seed=2)
    result = sync(registry, path, warehouse_url, "alpha", instance)
    assert result.success
    checks = check_evaluations(result)
    assert all(c.passed for c in checks.values())
    assert materialization_metadata(result, "checked_snapshot")["first_import"] is True


def test_a_vanished_school_trips_the_school_check(
    server: SimulatorServer, registry_setup, warehouse_url: str, instance
) -> None:
    registry, path = registry_setup
    assert sync(registry, path, warehouse_url, "alpha", instance).success
    before = published_dump(warehouse_url)
    mutations.delete_school(server.tenant("alpha").district)
    result = sync(registry, path, warehouse_url, "alpha", instance)
    checks = check_evaluations(result)
    assert not checks["school_thresholds"].passed
    assert not result.asset_materializations_for_node("published_roster")
    assert published_dump(warehouse_url) == before


def test_bad_records_are_quarantined_reported_and_never_published(
    server: SimulatorServer, registry_setup, warehouse_url: str, instance
) -> None:
    registry, path = registry_setup
    assert sync(registry, path, warehouse_url, "alpha", instance).success

    district = server.tenant("alpha").district
    with district.lock:
        enrollment_id, enrollment = next(
            (k, v) for k, v in district.collections["enrollments"].items() if v["status"] == "active"
        )
        published_primary = enrollment["primary"]
        district.collections["enrollments"][enrollment_id] = {**enrollment, "primary": "yes"}
        user_id, user = next(
            (k, v) for k, v in district.collections["users"].items() if v["role"] == "teacher"
        )
        district.collections["users"][user_id] = {k: v for k, v in user.items() if k != "username"}
        district.bump()

    result = sync(registry, path, warehouse_url, "alpha", instance)
    assert result.success, "two bad rows of thousands stay under max_rejected_pct: the rest is published"
    wh = Warehouse(warehouse_url)
    import_id = materialization_metadata(result, "checked_snapshot")["import_id"]
    rejects = {(r.resource, r.sourced_id, r.field, r.check) for r in wh.rejects(import_id, severity="error")}
    assert ("enrollments", enrollment_id, "primary", "boolean_string") in {
        (r, s, f, c) for r, s, f, c in rejects if r == "enrollments"
    } or any(r == "enrollments" and s == enrollment_id and "primary" in f for r, s, f, _ in rejects)
    assert any(r == "users" and s == user_id and "username" in f for r, s, f, _ in rejects)
    # The published versions of the two records are kept as they were: not updated, not deleted.
    engine = sa.create_engine(warehouse_url)
    with engine.connect() as conn:
        primary, deleted = conn.execute(
            sa.text('SELECT "primary", deleted_at FROM enrollments WHERE sourced_id = :s'),
            {"s": enrollment_id},
        ).one()
        username, user_deleted = conn.execute(
            sa.text("SELECT username, deleted_at FROM users WHERE sourced_id = :s"), {"s": user_id}
        ).one()
    engine.dispose()
    assert (primary, deleted) == (published_primary, None)
    assert (username, user_deleted) == (user["username"], None)
    assert materialization_metadata(result, "enrollments")["rejected"] == 1


def test_dry_run_checks_and_diffs_but_never_publishes(
    server: SimulatorServer, registry_setup, warehouse_url: str, instance
) -> None:
    registry, path = registry_setup
    assert sync(registry, path, warehouse_url, "alpha", instance).success
    before = published_dump(warehouse_url)
    changed = mutations.change_users(server.tenant("alpha").district, percent=2, seed=5)

    partitions = district_partitions(registry)
    defs = dg.Definitions(
        assets=build_roster_assets(partitions),
        jobs=[build_dry_run_job()],
        resources={
            "warehouse": WarehouseResource(database_url=warehouse_url),
            "registry": DistrictRegistryResource(districts_file=str(path)),
        },
    )
    result = defs.resolve_job_def("dry_run_district").execute_in_process(
        partition_key="alpha", instance=instance
    )
    assert result.success
    assert not result.asset_materializations_for_node("published_roster")
    assert published_dump(warehouse_url) == before
    meta = materialization_metadata(result, "checked_snapshot")
    assert import_status(warehouse_url, meta["import_id"]) == "dry_run"
    diff = Warehouse(warehouse_url).field_changes(meta["import_id"])
    assert set(diff.loc[diff["resource"] == "users", "sourced_id"]) == changed.changes["users"].updated
