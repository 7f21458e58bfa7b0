"""A district synced through OneRoster 1.2 publishes the same rows as the same district synced through 1.1.

The simulator serves one generated district twice, in its 1.1 and its 1.2 mode; ``sync_district`` runs
each into the warehouse (SQLite and Postgres) as its own registry district: one with the default import
method, one with ``oneroster_v1p2_rest``.  Every published table must then hold the same rows for both,
column by column, and the raw records the same content (hrefs aside, which name each API's own base, and
the ``roles`` 1.2 adds to users).  Then the same day's changes reach both SISes and a delta sync must
publish the same changes again.  A 1.2 user with no 1.1 shape is quarantined, field and check named.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from roster_pipeline.oneroster import v1p2
from roster_pipeline.pipeline.sync import sync_district
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.registry.districts import District
from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district, mutations
from roster_pipeline.warehouse import TABLES, Warehouse

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres

CLIENT_ID, SECRET = "sync-v1p2-client", "sync-v1p2-secret-value"
ENVIRON = {"SIS_CLIENT_ID": CLIENT_ID, "SIS_CLIENT_SECRET": SECRET}
# Bookkeeping that differs per district and import by design; everything else must match.
BOOKKEEPING = {
    "district_id",
    "raw",
    "record_hash",
    "first_seen_at",
    "updated_at",
    "last_import_id",
    "deleted_at",
    "archived_at",
}


@pytest.fixture()
def servers() -> Iterator[dict[str, SimulatorServer]]:
    template = generate_district("tiny", seed=4)  # every role; multi-org users: test_oneroster_v1p2_client
    with (
        SimulatorServer([Tenant("app", CLIENT_ID, SECRET, copy.deepcopy(template))]) as v11,
        SimulatorServer(
            [Tenant("app", CLIENT_ID, SECRET, copy.deepcopy(template))], oneroster_version="1.2"
        ) as v12,
    ):
        yield {"1.1": v11, "1.2": v12}


def district_for(server: SimulatorServer, district_id: str, **settings: Any) -> District:
    """A registry entry with explicit URLs (the 1.2 base is the one the SIS shows; nothing derives it)."""
    return District(
        id=district_id,
        name=f"District {district_id}",
        sis="generic",
        import_method="oneroster_v1p2_rest" if server.oneroster_version == "1.2" else "oneroster_rest",
        token_url=server.token_url("app"),
        base_url=server.base_url("app"),
        client_id_env="SIS_CLIENT_ID",
        client_secret_env="SIS_CLIENT_SECRET",
        page_size=500,
        **settings,
    )


def without_hrefs(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_hrefs(v) for k, v in value.items() if k != "href"}
    if isinstance(value, list):
        return [without_hrefs(v) for v in value]
    return value


def published_rows(engine: sa.Engine, district_id: str) -> dict[str, dict[str, dict[str, Any]]]:
    """{resource: {sourcedId: {every published column but bookkeeping, "alive", "raw" content}}}."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    with engine.connect() as conn:
        for resource in RESOURCES:
            table = TABLES[resource.name].published
            columns = [c for c in table.c if c.name not in BOOKKEEPING]
            query = sa.select(*columns, table.c.deleted_at.is_(None), table.c.raw).where(
                table.c.district_id == district_id
            )
            rows: dict[str, dict[str, Any]] = {}
            for row in conn.execute(query):
                *values, alive, raw = row
                content = without_hrefs(raw if isinstance(raw, dict) else json.loads(raw))
                content.pop("roles", None)  # 1.2's own: kept for the record, 1.1 has no such field
                fields = dict(zip([c.name for c in columns], values, strict=True))
                rows[row.sourced_id] = {
                    **fields,
                    "alive": bool(alive),
                    "raw": json.dumps(content, sort_keys=True),
                }
            out[resource.name] = rows
    return out


def test_1p2_sync_publishes_the_same_rows_as_1p1(
    servers: dict[str, SimulatorServer], warehouse_url: str
) -> None:
    warehouse = Warehouse(warehouse_url)
    warehouse.create_schema()
    districts = {
        "1.1": district_for(servers["1.1"], "via-v1p1"),
        "1.2": district_for(servers["1.2"], "via-v1p2"),
    }

    def sync_both(mode: str, run: str) -> None:
        for version, district in districts.items():
            result = sync_district(
                warehouse,
                district,
                f"{run}-{version}",
                RESOURCES,
                sync_mode=mode,  # type: ignore[arg-type]
                environ=ENVIRON,
            )
            assert result.published, (version, result.checks)
            assert not warehouse.rejects(result.import_id, severity="error"), version
            assert result.mode is not None and result.mode.mode == mode

    sync_both("full", "first")
    first = published_rows(warehouse.engine, "via-v1p1")
    assert first == published_rows(warehouse.engine, "via-v1p2")
    sis = servers["1.1"].tenant("app").district
    assert len(first["users"]) == len(sis.collections["users"]) and len(first["enrollments"]) > 100
    assert {row["role"] for row in first["users"].values()} >= {
        "administrator",
        "aide",
        "guardian",
        "student",
        "teacher",
    }

    # The same day's changes at both SISes (same seed, same instant), then a delta through each version.
    now = datetime.now(UTC)
    for server in servers.values():
        changed = server.tenant("app").district
        mutations.change_users(changed, percent=5, seed=9, now=now)
        mutations.remove_students(changed, count=3, seed=9, mode="tobedeleted", now=now)
    sync_both("delta", "second")
    second = published_rows(warehouse.engine, "via-v1p1")
    assert second == published_rows(warehouse.engine, "via-v1p2")
    assert second != first
    assert (
        sum(not row["alive"] for row in second["users"].values()) >= 3
    )  # the withdrawn students are deleted


def test_a_1p2_user_without_a_primary_role_is_quarantined_not_dropped(
    servers: dict[str, SimulatorServer], warehouse_url: str
) -> None:
    warehouse = Warehouse(warehouse_url)
    warehouse.create_schema()
    sis = servers["1.2"].tenant("app").district
    student = next(u for u in sis.collections["users"].values() if u["role"] == "student")
    sis.collections["users"][student["sourcedId"]] = {**student, "orgs": []}  # served with roles: []
    sis.bump()
    district = district_for(servers["1.2"], "via-v1p2", thresholds={"max_rejected_pct": 100})
    result = sync_district(warehouse, district, "run-1", RESOURCES, environ=ENVIRON)

    assert result.published
    assert result.staged["users"].rejects_by_check == {f"roles: {v1p2.PRIMARY_ROLE}": 1}
    rejects = [r for r in warehouse.rejects(result.import_id, severity="error") if r.resource == "users"]
    (reject,) = rejects
    assert (reject.sourced_id, reject.field, reject.check) == (
        student["sourcedId"],
        "roles",
        v1p2.PRIMARY_ROLE,
    )
    assert "district 'via-v1p2'" in reject.message and "roleType 'primary'" in reject.message
    assert reject.raw is not None and reject.raw["roles"] == []
    published = published_rows(warehouse.engine, "via-v1p2")
    assert student["sourcedId"] not in published["users"]
    assert len(published["users"]) == len(sis.collections["users"]) - 1
    # The student's enrollments and demographics are held back with it (reference checks), not published.
    enrolled = {
        e["sourcedId"]
        for e in sis.collections["enrollments"].values()
        if e["user"]["sourcedId"] == student["sourcedId"]
    }
    assert enrolled and not enrolled & set(published["enrollments"])
