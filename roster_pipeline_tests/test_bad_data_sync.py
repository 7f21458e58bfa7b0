"""Bad data is a record-level problem (GUIDE §6): a NUL, a byte that is not UTF-8, or two different
records under one sourcedId quarantine that record, with the field named, and never the district.

Each test syncs the simulator's tiny district over loopback into a real warehouse (both databases),
publishes it, lets the district change (two new students) and injects one fault with the simulator's
fault API; the second full sync must publish, put the bad record in rejected_records with its field,
publish everything else, delete nothing because of it and show the counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from roster_pipeline.defs.assets import stage_metadata
from roster_pipeline.pipeline.sync import DistrictSyncResult, sync_district
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.registry.districts import District
from roster_pipeline.simulator import SimulatorServer, mutations, running_simulator
from roster_pipeline.warehouse import TABLES, Warehouse

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres

APP, CLIENT_ID, CLIENT_SECRET = "tiny", "tiny-client", "tiny-secret-Qx7"
ENVIRON = {"TINY_ID": CLIENT_ID, "TINY_SECRET": CLIENT_SECRET}


@pytest.fixture()
def sim() -> Iterator[SimulatorServer]:
    with running_simulator(
        size="tiny", seed=1, app_name=APP, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ) as s:
        yield s


def district(sim: SimulatorServer) -> District:
    return District(
        id=APP,
        name="Tiny",
        client_id_env="TINY_ID",
        client_secret_env="TINY_SECRET",
        api_host=sim.url,
        app_name=APP,
        page_size=7,  # several pages per resource: a duplicate's copies arrive pages apart
    )


def run(wh: Warehouse, sim: SimulatorServer, run_id: str) -> DistrictSyncResult:
    return sync_district(wh, district(sim), run_id, RESOURCES, sync_mode="full", environ=ENVIRON)


def administrator(sim: SimulatorServer) -> str:
    """A user nothing refers to (no enrollment, no demographics), so quarantining it cascades nowhere."""
    users = sim.tenant(APP).district.collections["users"]
    return min(sid for sid, u in users.items() if u["role"] == "administrator")


def published(wh: Warehouse, resource_name: str) -> dict[str, tuple[str, bool]]:
    """sourcedId → (record hash, alive) of the district's published rows."""
    table = TABLES[resource_name].published
    query = sa.select(table.c.sourced_id, table.c.record_hash, table.c.deleted_at.is_(None)).where(
        table.c.district_id == APP
    )
    with wh.engine.connect() as conn:
        return {sid: (digest, bool(alive)) for sid, digest, alive in conn.execute(query)}


def first_sync_then_change(wh: Warehouse, sim: SimulatorServer) -> dict[str, dict[str, tuple[str, bool]]]:
    assert run(wh, sim, "run-1").published
    mutations.add_students(sim.tenant(APP).district, count=2, seed=5)
    return {r.name: published(wh, r.name) for r in RESOURCES}


def assert_rest_published_nothing_deleted(
    wh: Warehouse, sim: SimulatorServer, result: DistrictSyncResult, before: dict[str, Any], bad: str
) -> None:
    assert result.published, f"held: {result.checks.reason() if result.checks else '?'}"
    assert all(c.deleted == 0 for c in result.published.values()), result.published
    for res in RESOURCES:
        now = published(wh, res.name)
        served = {
            sid
            for sid, r in sim.tenant(APP).district.collections[res.collection].items()
            if r["status"] == "active"
        }
        assert {sid for sid, (_, alive) in now.items() if alive} == served, res.name  # new students included
    assert published(wh, "users")[bad] == before["users"][bad]  # the published version, untouched


def rejects_of(wh: Warehouse, result: DistrictSyncResult, bad: str) -> list[tuple[str, str, str]]:
    return sorted((r.resource, r.field, r.check) for r in wh.rejects(result.import_id) if r.sourced_id == bad)


def test_a_nul_in_one_field_quarantines_that_record_not_the_district(
    wh: Warehouse, sim: SimulatorServer
) -> None:
    before = first_sync_then_change(wh, sim)
    bad = administrator(sim)
    sim.faults.add(kind="nul", sourced_id=bad, field="familyName", times=None, path_contains="/users")

    result = run(wh, sim, "run-2")

    assert rejects_of(wh, result, bad) == [("users", "familyName", "nul_character")]
    [reject] = [r for r in wh.rejects(result.import_id) if r.sourced_id == bad]
    assert "\\x00" in (reject.value or "") and f"'{APP}'" in reject.message
    assert reject.raw is not None and "\x00" not in str(reject.raw) and "\ufffd" in reject.raw["familyName"]
    assert_rest_published_nothing_deleted(wh, sim, result, before, bad)
    users = result.staged["users"]
    assert (users.quarantined, users.rejected, users.rejects_by_check) == (
        1,
        1,
        {"familyName: nul_character": 1},
    )
    assert wh.resource_counts(result.import_id)["users"]["rejected"] == 1


def test_invalid_utf8_in_one_record_quarantines_that_record_without_retries(
    wh: Warehouse, sim: SimulatorServer
) -> None:
    before = first_sync_then_change(wh, sim)
    bad = administrator(sim)
    sim.faults.add(kind="invalid_utf8", sourced_id=bad, field="givenName", times=None, path_contains="/users")

    result = run(wh, sim, "run-2")

    assert rejects_of(wh, result, bad) == [("users", "givenName", "invalid_utf8")]
    [reject] = [r for r in wh.rejects(result.import_id) if r.sourced_id == bad]
    assert (reject.value or "").endswith("\\xe9")
    assert_rest_published_nothing_deleted(wh, sim, result, before, bad)
    users = result.staged["users"]
    assert (users.quarantined, users.retries, users.requests) == (1, 0, users.pages)


def test_a_conflicting_duplicate_quarantines_every_copy_and_deletes_nothing(
    wh: Warehouse, sim: SimulatorServer
) -> None:
    before = first_sync_then_change(wh, sim)
    bad = administrator(sim)  # served on its page, and again, changed, on the last page
    sim.faults.add(kind="duplicate", sourced_id=bad, field="familyName", times=None, path_contains="/users")

    result = run(wh, sim, "run-2")

    copies = [r for r in wh.rejects(result.import_id) if r.sourced_id == bad]
    assert [(r.field, r.check) for r in copies] == [("sourcedId", "conflicting_duplicate")] * 2
    served = sim.tenant(APP).district.collections["users"][bad]
    assert sorted(c.raw["familyName"] for c in copies) == sorted(
        [served["familyName"], f"{served['familyName']} (other record)"]
    )
    assert_rest_published_nothing_deleted(wh, sim, result, before, bad)
    users = result.staged["users"]
    assert (users.quarantined, users.conflicting_duplicates, users.duplicates) == (1, 1, 0)
    metadata = stage_metadata(users, result.import_id)
    assert (metadata["quarantined"], metadata["conflicting_duplicates"]) == (1, 1)


def test_a_row_the_sis_serves_twice_is_harmless_and_counted(wh: Warehouse, sim: SimulatorServer) -> None:
    before = first_sync_then_change(wh, sim)
    repeated = administrator(sim)
    sim.faults.add(kind="duplicate", sourced_id=repeated, times=None, path_contains="/users")

    result = run(wh, sim, "run-2")

    assert wh.rejects(result.import_id, severity="error") == []
    assert_rest_published_nothing_deleted(wh, sim, result, before, repeated)
    users = result.staged["users"]
    assert (users.duplicates, users.conflicting_duplicates, users.quarantined) == (1, 0, 0)
    assert stage_metadata(users, result.import_id)["duplicates"] == 1
    assert wh.resource_counts(result.import_id)["users"]["duplicates"] == 1
