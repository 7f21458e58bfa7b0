"""The csv_bundle import method end to end through ``sync_district`` (both warehouses): the same simulated
district synced over REST and from the simulator's CSV export publishes the same rows, bulk and then
delta; a delta bundle is a delta import whatever the run asked for; bad rows are quarantined with file
and line; a structurally bad bundle is refused with nothing published.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from roster_pipeline.pipeline.sync import DistrictSyncResult, sync_district
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.registry.districts import District
from roster_pipeline.simulator import SimulatorServer, mutations, running_simulator
from roster_pipeline.simulator.csv_export import write_bundle
from roster_pipeline.sources.csv_bundle import CsvBundleError
from roster_pipeline.sources.csv_bundle.manifest import manifest_text
from roster_pipeline.warehouse import TABLES, Warehouse
from roster_pipeline_tests.csv_bundle_helpers import FILES, write_zip

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres

APP, CLIENT_ID, CLIENT_SECRET = "rest", "rest-client", "rest-secret-Zq4"
ENVIRON = {"REST_ID": CLIENT_ID, "REST_SECRET": CLIENT_SECRET}
# Bookkeeping that differs between two districts by nature; everything else must be equal.
NOT_COMPARED = {
    "district_id",
    "raw",
    "first_seen_at",
    "updated_at",
    "last_import_id",
    "deleted_at",
    "archived_at",
}


@pytest.fixture()
def sim() -> Iterator[SimulatorServer]:
    with running_simulator(
        size="tiny", seed=1, app_name=APP, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ) as s:
        yield s


def rest_district(sim: SimulatorServer) -> District:
    return District(
        id=APP,
        name="Over REST",
        client_id_env="REST_ID",
        client_secret_env="REST_SECRET",
        api_host=sim.url,
        app_name=APP,
        page_size=50,
    )


def csv_district(bundle: Path, district_id: str = "csv") -> District:
    return District(
        id=district_id,
        name="From CSV",
        import_method="csv_bundle",
        csv_bundle={"path": str(bundle)},
        page_size=50,
    )


def published_rows(wh: Warehouse, district_id: str, resource_name: str) -> dict[str, tuple[Any, ...]]:
    """sourcedId → every published column but the bookkeeping ones, plus whether the row is alive."""
    table = TABLES[resource_name].published
    columns = [c for c in table.c if c.name not in NOT_COMPARED]
    query = sa.select(*columns, table.c.deleted_at.is_(None)).where(table.c.district_id == district_id)
    with wh.engine.connect() as conn:
        return {row.sourced_id: tuple(row) for row in conn.execute(query)}


def assert_same_published(wh: Warehouse, other: str) -> None:
    for resource in RESOURCES:
        rest, csv = published_rows(wh, APP, resource.name), published_rows(wh, other, resource.name)
        assert rest, resource.name
        different = sorted(sid for sid in rest.keys() | csv.keys() if rest.get(sid) != csv.get(sid))
        assert not different, (resource.name, [(rest.get(s), csv.get(s)) for s in different[:2]])


def latest_stamp(sim: SimulatorServer) -> str:
    district = sim.tenant(APP).district
    return max(r["dateLastModified"] for records in district.collections.values() for r in records.values())


def counts(result: DistrictSyncResult) -> dict[str, tuple[int, int, int]]:
    """(added, updated, deleted) of each resource the import changed."""
    found = {name: (c.added, c.updated, c.deleted) for name, c in result.published.items()}
    return {name: n for name, n in found.items() if any(n)}


def test_csv_bundle_publishes_what_rest_publishes_bulk_then_delta(
    wh: Warehouse, sim: SimulatorServer, tmp_path: Path
) -> None:
    rest = sync_district(wh, rest_district(sim), "rest-1", RESOURCES, sync_mode="full", environ=ENVIRON)
    bulk = write_bundle(sim.tenant(APP).district, tmp_path / "bulk.zip")
    csv = sync_district(wh, csv_district(bulk), "csv-1", RESOURCES, sync_mode="delta")
    assert rest.published and csv.published
    assert (
        csv.mode is not None and csv.mode.mode == "full"
    )  # a bulk bundle is a full import, whatever was asked
    assert "bulk files" in (csv.mode.fallback_reason or "")
    assert counts(csv) == counts(rest)
    assert_same_published(wh, "csv")

    before = latest_stamp(sim)
    district = sim.tenant(APP).district
    mutations.add_students(district, count=2, seed=5)
    mutations.remove_students(district, count=1, seed=6)  # marked tobedeleted, with enrollments
    mutations.change_users(district, percent=10, seed=7)
    rest2 = sync_district(wh, rest_district(sim), "rest-2", RESOURCES, sync_mode="delta", environ=ENVIRON)
    delta = write_bundle(district, tmp_path / "delta.zip", mode="delta", since=before)
    csv2 = sync_district(wh, csv_district(delta), "csv-2", RESOURCES, sync_mode="full")
    # The run asked for full, the bundle is a delta: a delta import, so nothing absent is deleted.
    assert csv2.mode is not None and csv2.mode.mode == "delta" and csv2.mode.since is not None
    assert "delta files" in (csv2.mode.fallback_reason or "")
    assert wh.get_import(csv2.import_id).sync_mode == "delta"
    assert csv2.published and counts(csv2) == counts(rest2)
    assert csv2.staged["users"].staged < len(district.collections["users"])  # only the changes were delivered
    assert counts(csv2)["users"][2] == 1  # the withdrawn student, and nothing else, deleted
    assert_same_published(wh, "csv")


def test_delta_bundle_as_first_import_adds_and_deletes_nothing_by_absence(
    wh: Warehouse, sim: SimulatorServer, tmp_path: Path
) -> None:
    delta = write_bundle(
        sim.tenant(APP).district, tmp_path / "delta.zip", mode="delta", since="2000-01-01T00:00:00Z"
    )
    result = sync_district(wh, csv_district(delta), "csv-1", RESOURCES, sync_mode="delta")
    assert result.mode is not None and result.mode.mode == "delta" and result.mode.base_import_id is None
    assert result.published and result.published["users"].added > 0


def test_bad_rows_are_quarantined_with_file_and_line_and_the_rest_published(
    wh: Warehouse, tmp_path: Path
) -> None:
    users = (
        FILES["users.csv"]
        + "\r\n".join(
            [
                "u-bad,,,maybe,s1,teacher,x.y,,X,Y,,9,,,,,,",  # line 5: enabledUser not "true"/"false"
                "u-short,,,true,s1,teacher",  # line 6: too few cells
            ]
        )
        + "\r\n"
    )
    bundle = write_zip(tmp_path / "b.zip", {"users.csv": users})
    result = sync_district(wh, csv_district(bundle), "csv-1", RESOURCES)
    assert result.published, result.checks.reason() if result.checks else "?"
    users_result = result.staged["users"]
    assert users_result.rejected == 2 and users_result.staged == 3
    rejects = {
        r.sourced_id: r for r in wh.rejects(result.import_id, severity="error") if r.resource == "users"
    }
    assert rejects["u-bad"].message.startswith("users.csv line 5, column 'enabledUser': district 'csv'")
    assert rejects["u-short"].check == "column_count" and "users.csv line 6" in rejects["u-short"].message
    alive = {sid for sid, row in published_rows(wh, "csv", "users").items() if row[-1]}
    assert alive == {"u-t", "u-s", "u-g"}


def test_structurally_bad_bundle_is_refused_and_nothing_published(wh: Warehouse, tmp_path: Path) -> None:
    good = write_zip(tmp_path / "good.zip")
    assert sync_district(wh, csv_district(good), "csv-1", RESOURCES).published
    body = FILES["enrollments.csv"].replace("userSourcedId", "learner", 1)
    bad = write_zip(tmp_path / "bad.zip", {"enrollments.csv": body})
    before = published_rows(wh, "csv", "enrollments")
    with pytest.raises(CsvBundleError) as caught:
        sync_district(wh, csv_district(bad), "csv-2", RESOURCES)
    assert "district 'csv', CSV bundle bad.zip, enrollments.csv, line 1, column 'userSourcedId'" in str(
        caught.value
    )
    assert published_rows(wh, "csv", "enrollments") == before


def test_absent_resource_fails_the_import_unless_switched_off(wh: Warehouse, tmp_path: Path) -> None:
    modes = {c: "bulk" for c in ("orgs", "academicSessions", "courses", "classes", "users", "enrollments")}
    bundle = write_zip(tmp_path / "b.zip", {"demographics.csv": None}, manifest=manifest_text(modes))  # type: ignore[arg-type]
    with pytest.raises(CsvBundleError, match="file.demographics absent"):
        sync_district(wh, csv_district(bundle), "csv-1", RESOURCES)
    failed = wh.get_import(wh.import_for_run("csv", "csv-1"))  # type: ignore[arg-type]
    assert failed.status == "failed"
    switched_off = District(
        id="csv",
        name="From CSV",
        import_method="csv_bundle",
        csv_bundle={"path": str(bundle)},
        pii={"demographics": False},
    )
    assert sync_district(wh, switched_off, "csv-2", RESOURCES).published
