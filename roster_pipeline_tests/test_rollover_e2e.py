"""A school-year rollover end to end: the simulator over HTTP, the real Dagster assets, SQLite and Postgres.

The run's date comes from the run tag ``roster/as_of`` (the policy is a function of the date), so each
test picks a day inside or after the rollover windows of the registry.  The simulator starts in school
year 2027 (2026-27); ``advance_school_year`` moves it to 2028 as an SIS serving only the active year does.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from roster_pipeline.defs.assets import build_roster_assets
from roster_pipeline.defs.partitions import district_partitions
from roster_pipeline.defs.resources import DistrictRegistryResource, WarehouseResource
from roster_pipeline.pipeline.run_tags import AS_OF_TAG, ROLLOVER_OVERRIDE_TAG
from roster_pipeline.registry.districts import Registry
from roster_pipeline.simulator import SimulatedDistrict, SimulatorServer, Tenant, generate_district, mutations
from roster_pipeline.warehouse import Warehouse

from .pipeline_helpers import failure, materialization_metadata, monkeypatch_environ, write_registry

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres

OLD, NEW = 2027, 2028
STRICT = {"max_updated_pct": 10.0, "max_deleted_pct": 10.0, "min_changes": 5}
RELAXED = {"max_updated_pct": 100.0, "max_deleted_pct": 100.0}
WINDOW = {
    "date": "07-01",
    "first_day": "08-20",
    "expected_change_window": {"start": "07-01", "end": "09-15"},
    "relaxed_thresholds": RELAXED,
}


@pytest.fixture(scope="module")
def template(request: pytest.FixtureRequest) -> SimulatedDistrict:
    """The alpha district: tiny (generated once per module, deep-copied per test), or as large as a test asks
    with ``@pytest.mark.parametrize("template", ["small"], indirect=True)`` where size is what it tests."""
    return generate_district(getattr(request, "param", "tiny"), seed=47)


@pytest.fixture()
def server(template) -> Iterator[SimulatorServer]:
    with SimulatorServer([Tenant("alpha", "alpha-client", "alpha-secret-xyz", copy.deepcopy(template))]) as s:
        yield s


@pytest.fixture()
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as test_instance:
        yield test_instance


def registry_for(
    server: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> tuple[Registry, Path]:
    path = tmp_path / "districts.yaml"
    registry = write_registry(
        path,
        server,
        monkeypatch_environ(monkeypatch),
        ["alpha"],
        thresholds=STRICT,
        rollover={**WINDOW, "mode": mode},
    )
    return registry, path


def run(
    registry: Registry, path: Path, url: str, instance: dg.DagsterInstance, as_of: str, **tags: str
) -> dg.ExecuteInProcessResult:
    """One full sync of alpha through the real assets, as of a given day."""
    return dg.materialize(
        build_roster_assets(district_partitions(registry)),
        partition_key="alpha",
        instance=instance,
        tags={"roster/sync_mode": "full", AS_OF_TAG: as_of, **tags},
        resources={
            "warehouse": WarehouseResource(database_url=url),
            "registry": DistrictRegistryResource(districts_file=str(path)),
        },
        raise_on_error=False,
    )


def active(server: SimulatorServer, collection: str) -> set[str]:
    return {
        k
        for k, v in server.tenant("alpha").district.collections[collection].items()
        if v["status"] == "active"
    }


def alive_ids(url: str, table: str, where: str = "") -> set[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        ids = set(
            conn.execute(
                sa.text(f"SELECT sourced_id FROM {table} WHERE deleted_at IS NULL {where}")
            ).scalars()
        )
    engine.dispose()
    return ids


def test_full_rollover_archives_the_old_year_and_relaxes_thresholds_only_in_the_window(
    server: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warehouse_url: str, instance
) -> None:
    registry, path = registry_for(server, tmp_path, monkeypatch, "none")
    first = run(registry, path, warehouse_url, instance, "2027-03-01")
    assert first.success
    assert materialization_metadata(first, "roster_import")["school_year"] == OLD
    old_classes, old_enrollments = active(server, "classes"), active(server, "enrollments")
    assert alive_ids(warehouse_url, "current_classes") == old_classes

    mutations.advance_school_year(server.tenant("alpha").district, old="tobedeleted", seed=3)

    # After the window (strict thresholds): every student changed grade, the import is held.
    late = run(registry, path, warehouse_url, instance, "2027-09-16")
    assert not late.success
    assert materialization_metadata(late, "checked_snapshot")["thresholds"] == "normal"
    assert {e.check_name: e.passed for e in late.get_asset_check_evaluations()}["change_thresholds"] is False
    wh = Warehouse(warehouse_url)
    assert wh.current_school_year("alpha") == OLD  # held: nothing published, nothing archived

    # Inside the expected-change window: relaxed thresholds, published, old year archived.
    result = run(registry, path, warehouse_url, instance, "2027-08-25")
    assert result.success, failure(result)
    imported = materialization_metadata(result, "roster_import")
    assert imported["school_year"] == NEW
    assert imported["rollover"] == f"new school year {NEW}: publishing archives {OLD} and older"
    checked = materialization_metadata(result, "checked_snapshot")
    assert checked["thresholds"] == "relaxed thresholds (rollover window until 2027-09-15)"
    assert wh.current_school_year("alpha") == NEW

    # Current views and counts: the new year exactly as the SIS serves it.
    assert alive_ids(warehouse_url, "current_classes") == active(server, "classes")
    assert alive_ids(warehouse_url, "current_enrollments") == active(server, "enrollments")
    assert wh.current_counts("alpha")["enrollments"] == len(active(server, "enrollments"))
    # The old year: kept, alive as it was last published, archived, out of the current views.
    assert (
        alive_ids(warehouse_url, "classes", f"AND school_year = {OLD} AND archived_at IS NOT NULL")
        == old_classes
    )
    assert alive_ids(warehouse_url, "enrollments", f"AND school_year = {OLD}") == old_enrollments
    assert not old_classes & alive_ids(warehouse_url, "current_classes")
    assert wh.current_counts("alpha", OLD)["enrollments"] == len(old_enrollments)
    # The SIS served the old year's records as tobedeleted: they never touched the old year's rows.
    assert alive_ids(warehouse_url, "enrollments", f"AND school_year = {NEW}") == active(
        server, "enrollments"
    )
    wh.dispose()


def test_a_run_that_asks_for_a_past_school_year_is_refused(
    server: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warehouse_url: str, instance
) -> None:
    registry, path = registry_for(server, tmp_path, monkeypatch, "none")
    assert run(registry, path, warehouse_url, instance, "2027-03-01").success
    mutations.advance_school_year(server.tenant("alpha").district, old="gone", seed=3)
    assert run(registry, path, warehouse_url, instance, "2027-08-25").success
    result = run(registry, path, warehouse_url, instance, "2027-08-26", **{"roster/school_year": str(OLD)})
    assert not result.success
    message = failure(result)
    assert "PastSchoolYearError" in message and "school year 2027 is in the past" in message


@pytest.mark.parametrize("template", ["small"], indirect=True)  # its mutations need more than a tiny district
def test_additions_only_never_deletes_inside_the_window(
    server: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warehouse_url: str, instance
) -> None:
    registry, path = registry_for(server, tmp_path, monkeypatch, "additions_only")
    assert run(registry, path, warehouse_url, instance, "2027-03-01").success
    district = server.tenant("alpha").district
    tobedeleted = mutations.remove_students(district, 2, seed=5, mode="tobedeleted")
    vanished = mutations.remove_students(district, 2, seed=6, mode="vanish")
    gone = tobedeleted.changes["users"].tobedeleted | vanished.changes["users"].removed
    gone_enrollments = (
        tobedeleted.changes["enrollments"].tobedeleted | vanished.changes["enrollments"].removed
    )
    assert gone and gone_enrollments

    during = run(registry, path, warehouse_url, instance, "2027-07-10")
    assert during.success, failure(during)
    assert materialization_metadata(during, "roster_import")["additions_only"] is True
    assert materialization_metadata(during, "published_roster")["total_deleted"] == 0
    assert gone <= alive_ids(warehouse_url, "current_users")  # removed students stay alive in the window
    assert gone_enrollments <= alive_ids(warehouse_url, "current_enrollments")
    wh = Warehouse(warehouse_url)
    import_id = materialization_metadata(during, "roster_import")["import_id"]
    assert wh.get_import(import_id).additions_only
    assert wh.resource_counts(import_id)["users"]["withheld"] == len(tobedeleted.changes["users"].tobedeleted)
    wh.dispose()

    after = run(registry, path, warehouse_url, instance, "2027-08-20")  # the first day: normal imports again
    assert after.success, failure(after)
    assert materialization_metadata(after, "roster_import")["additions_only"] is False
    assert not gone & alive_ids(warehouse_url, "current_users")
    assert not gone_enrollments & alive_ids(warehouse_url, "current_enrollments")


def test_pause_refuses_runs_in_the_window_and_allows_them_from_the_first_day(
    server: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warehouse_url: str, instance
) -> None:
    registry, path = registry_for(server, tmp_path, monkeypatch, "pause")
    assert run(registry, path, warehouse_url, instance, "2027-03-01").success
    wh = Warehouse(warehouse_url)
    imports_before = wh.last_published_import("alpha")

    refused = run(registry, path, warehouse_url, instance, "2027-07-10")
    assert not refused.success
    message = failure(refused)
    for needle in ("DistrictPausedError", "'alpha'", "2027-07-01", "2027-08-20", ROLLOVER_OVERRIDE_TAG):
        assert needle in message
    assert wh.import_for_run("alpha", refused.run_id) is None  # refused before any SIS request or import

    overridden = run(registry, path, warehouse_url, instance, "2027-07-11", **{ROLLOVER_OVERRIDE_TAG: "Dana"})
    assert overridden.success, failure(overridden)
    assert materialization_metadata(overridden, "roster_import")["rollover_override"] == "Dana"

    allowed = run(registry, path, warehouse_url, instance, "2027-08-20")
    assert allowed.success, failure(allowed)
    assert wh.last_published_import("alpha").import_id > imports_before.import_id  # type: ignore[union-attr]
    wh.dispose()
