"""Districts never cross, even when their SISes use the very same sourcedIds.

Two simulator tenants generated from the same seed serve identical ids. Both are synced; then one is
changed, loses students, gets a bad record and finally loses its enrollments (a held import, a pause and
a Check Your Data email). Every row the other district has anywhere in the warehouse — published rows,
history, imports and their counts, quarantine, field diffs, pause state, email ledger — and every email
its admins received stay exactly as they were, and per-district reads return only that district's rows.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from roster_pipeline.control.store import control_metadata, create_control_schema, get_state
from roster_pipeline.control.tick import process_imports
from roster_pipeline.notify.sender import OutboxSender
from roster_pipeline.notify.settings import NotifySettings
from roster_pipeline.pipeline.sync import sync_district
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district, mutations
from roster_pipeline.warehouse import TABLES, Warehouse
from roster_pipeline.warehouse.schema import import_resource_counts, import_runs, metadata

from .pipeline_helpers import MonkeypatchedEnviron, write_registry

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres


@pytest.fixture()
def twins() -> Iterator[SimulatorServer]:
    template = generate_district("tiny", seed=8)
    tenants = [
        Tenant("north", "north-client", "north-secret-value-1", copy.deepcopy(template)),
        Tenant("south", "south-client", "south-secret-value-2", copy.deepcopy(template)),
    ]
    with SimulatorServer(tenants) as running:
        yield running


def district_rows(engine: sa.Engine, district_id: str) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table that belongs to the district, stringified and sorted, plus the per-import
    counts of its imports (that table has no district column)."""
    out: dict[str, list[tuple[str, ...]]] = {}
    with engine.connect() as conn:
        for table in [*metadata.sorted_tables, *control_metadata.sorted_tables]:
            if "district_id" in table.c and not table.name.startswith("stg_"):  # staging: per import
                query = sa.select(table).where(table.c.district_id == district_id)
                out[table.name] = sorted(tuple(str(v) for v in row) for row in conn.execute(query))
        ids = sa.select(import_runs.c.import_id).where(import_runs.c.district_id == district_id)
        counts = sa.select(import_resource_counts).where(import_resource_counts.c.import_id.in_(ids))
        out["import_resource_counts"] = sorted(tuple(str(v) for v in row) for row in conn.execute(counts))
    return out


def emails_for(outbox: Path, district_id: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(outbox.glob("*.eml")) if f"_{district_id}_" in p.name}


def served(server: SimulatorServer, app: str, collection: str) -> dict[str, str]:
    """{sourcedId: dateLastModified} of the active records the district's SIS serves."""
    records = server.tenant(app).district.collections[collection].values()
    return {r["sourcedId"]: r["dateLastModified"] for r in records if r["status"] == "active"}


def published(engine: sa.Engine, resource_name: str, district_id: str) -> dict[str, str]:
    """{sourcedId: dateLastModified} of the district's alive published rows (current school year)."""
    p = TABLES[resource_name].published
    query = sa.select(p.c.sourced_id, p.c.date_last_modified).where(
        p.c.district_id == district_id, p.c.deleted_at.is_(None)
    )
    if "archived_at" in p.c:
        query = query.where(p.c.archived_at.is_(None))
    with engine.connect() as conn:
        return {sourced_id: modified for sourced_id, modified in conn.execute(query)}


def test_districts_with_the_same_sourced_ids_never_cross(
    twins: SimulatorServer, warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "districts.yaml"
    registry = write_registry(
        path,
        twins,
        MonkeypatchedEnviron(monkeypatch),
        ["north", "south"],
        thresholds={"max_rejected_pct": 100},
    )
    warehouse = Warehouse(warehouse_url)
    warehouse.create_schema()
    create_control_schema(warehouse.engine)
    outbox = tmp_path / "outbox"
    settings = NotifySettings(outbox_dir=outbox)
    floor: int | None = None

    def sync(app: str, run: str) -> Any:
        nonlocal floor
        result = sync_district(warehouse, registry.get(app), run, RESOURCES)
        floor = process_imports(warehouse, registry, lambda: OutboxSender(outbox), settings, floor).floor
        return result

    # South gets some history of its own first: a change, a removal, a quarantined record.
    assert sync("north", "n1").published and sync("south", "s1").published
    assert published(warehouse.engine, "users", "north") == published(warehouse.engine, "users", "south")
    south_sis = twins.tenant("south").district
    mutations.change_users(south_sis, percent=10, seed=3)
    mutations.remove_students(south_sis, count=1, seed=3, mode="vanish")
    bad_id = min(south_sis.collections["demographics"])
    south_sis.collections["demographics"][bad_id] = {
        **south_sis.collections["demographics"][bad_id],
        "birthDate": "yesterday",
        "dateLastModified": "2030-01-01T00:00:00.000Z",
    }
    south_sis.bump()
    assert sync("south", "s2").published
    south = district_rows(warehouse.engine, "south")
    assert south["users_history"] and south["rejected_records"] and south["import_field_changes"]
    assert south["notifications"]
    south_emails = emails_for(outbox, "south")
    assert len(south_emails) == 2

    # Now north: changes, vanished students (a full pull infers deletions), a bad record; then a wipe.
    north_sis = twins.tenant("north").district
    mutations.change_users(north_sis, percent=30, seed=4)
    mutations.remove_students(north_sis, count=3, seed=4, mode="vanish")
    enrollment_id = min(north_sis.collections["enrollments"])
    north_sis.collections["enrollments"][enrollment_id] = {
        **north_sis.collections["enrollments"][enrollment_id],
        "dateLastModified": "2030-01-01T00:00:00.000Z",
        "user": {**north_sis.collections["enrollments"][enrollment_id]["user"], "sourcedId": "no-such-user"},
    }
    north_sis.bump()
    changed = sync("north", "n2")
    assert changed.published and changed.published["users"].deleted >= 3
    assert warehouse.rejects(changed.import_id)
    mutations.wipe_enrollments(north_sis, percent=90, seed=4)
    held = sync("north", "n3")
    assert not held.published and warehouse.get_import(held.import_id).status == "held"
    assert get_state(warehouse.engine, "north").paused  # north paused and emailed...

    # ...south exactly as it was, everywhere.
    assert district_rows(warehouse.engine, "south") == south
    assert emails_for(outbox, "south") == south_emails
    assert not get_state(warehouse.engine, "south").paused
    north_emails = emails_for(outbox, "north")
    assert len(north_emails) == 3  # Import Results twice, then Check Your Data for the wipe
    for body in north_emails.values():
        assert b"admin@south.example.org" not in body and b"District south" not in body

    # Per-district reads return only that district's rows, equal to what its own SIS serves.
    for resource_name, collection in (("users", "users"), ("enrollments", "enrollments"), ("orgs", "orgs")):
        assert published(warehouse.engine, resource_name, "south") == served(twins, "south", collection)
    assert published(warehouse.engine, "users", "north") == served(twins, "north", "users")
    assert published(warehouse.engine, "users", "north") != published(warehouse.engine, "users", "south")
    assert enrollment_id in {r.sourced_id for r in warehouse.rejects(changed.import_id)}
    for import_id in (changed.import_id, held.import_id):
        assert set(warehouse.field_changes(import_id)["district_id"]) <= {"north"}
        with warehouse.engine.connect() as conn:
            rejected = sa.text("SELECT DISTINCT district_id FROM rejected_records WHERE import_id = :i")
            assert set(conn.execute(rejected, {"i": import_id}).scalars()) <= {"north"}
