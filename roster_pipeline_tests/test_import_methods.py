"""Every import method brings the same roster: one simulated district, served over OneRoster 1.1 REST
(Infinite Campus layout and explicit URLs, OAuth2), 1.1 REST signed with OAuth 1.0a, OneRoster 1.2 REST,
and exported as a 1.1 CSV bundle, is synced through each method and must publish the same rows.

Each method has its own module for its details (test_oneroster_oauth1, test_sync_v1p2,
test_csv_bundle_sync); this one proves they all feed the same staging → checks → publish path and land
on the same published tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from roster_pipeline.pipeline.sync import sync_district
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.registry.districts import District
from roster_pipeline.simulator import SimulatedDistrict, SimulatorServer, running_simulator
from roster_pipeline.simulator.csv_export import write_bundle
from roster_pipeline.simulator.generate import generate_district
from roster_pipeline.warehouse import TABLES, Warehouse
from roster_pipeline.warehouse.schema import class_teachers, student_logins

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres

APP, CLIENT_ID, CLIENT_SECRET = "campus", "methods-client", "methods-secret-Jw7"
ENVIRON = {"METHODS_ID": CLIENT_ID, "METHODS_SECRET": CLIENT_SECRET}
CREDENTIALS = {"client_id_env": "METHODS_ID", "client_secret_env": "METHODS_SECRET"}
# Bookkeeping that differs between two districts by nature (and the raw JSON, whose hrefs and 1.2 extras
# differ by binding); every other published column must be equal.
NOT_COMPARED = {
    "district_id",
    "raw",
    "first_seen_at",
    "updated_at",
    "last_import_id",
    "deleted_at",
    "archived_at",
}
# The record hash is over the raw record, and a 1.2 user's raw record keeps what 1.2 adds (roles[],
# userProfiles...): its typed columns equal 1.1's, its hash cannot.  Every other method's hash must match.
HASH = "record_hash"


@pytest.fixture(scope="module")
def roster() -> SimulatedDistrict:
    return generate_district("tiny", 3)


@pytest.fixture()
def servers(roster: SimulatedDistrict) -> Iterator[dict[str, SimulatorServer]]:
    """The same district behind three simulators: 1.1 with OAuth2, 1.1 with OAuth 1.0a, 1.2 with OAuth2."""
    modes: dict[str, dict[str, Any]] = {
        "oauth2": {},
        "oauth1": {"auth_mode": "oauth1"},
        "v1p2": {"oneroster_version": "1.2"},
    }
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(
                running_simulator(
                    app_name=APP, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, district=roster, **kwargs
                )
            )
            for name, kwargs in modes.items()
        }


def districts(servers: dict[str, SimulatorServer], bundle: Path) -> list[District]:
    """One registry entry per import method, as an admin would write it for that SIS setup."""
    oauth2, oauth1, v1p2 = servers["oauth2"], servers["oauth1"], servers["v1p2"]
    common: dict[str, Any] = {"page_size": 40}
    return [
        District(
            id="ic_oauth2",
            name="Infinite Campus, OAuth2",
            sis="infinite_campus",
            api_host=oauth2.url,
            app_name=APP,
            **CREDENTIALS,
            **common,
        ),
        District(
            id="generic_oauth2",
            name="Explicit URLs, OAuth2",
            sis="generic",
            token_url=oauth2.token_url(APP),
            base_url=oauth2.base_url(APP),
            token_auth="form",
            **CREDENTIALS,
            **common,
        ),
        District(
            id="oauth1",
            name="OAuth 1.0a",
            sis="generic",
            import_method="oneroster_rest_oauth1",
            base_url=oauth1.base_url(APP),
            **CREDENTIALS,
            **common,
        ),
        District(
            id="v1p2",
            name="OneRoster 1.2",
            sis="generic",
            import_method="oneroster_v1p2_rest",
            token_url=v1p2.token_url(APP),
            base_url=v1p2.base_url(APP),
            **CREDENTIALS,
            **common,
        ),
        District(
            id="csv",
            name="CSV bundle",
            import_method="csv_bundle",
            csv_bundle={"path": str(bundle)},
            **common,
        ),
    ]


def published_rows(
    wh: Warehouse, district_id: str, resource_name: str, with_hash: bool = True
) -> dict[str, tuple[Any, ...]]:
    """sourcedId → every published column but the bookkeeping ones, plus whether the row is alive."""
    table = TABLES[resource_name].published
    columns = [c for c in table.c if c.name not in NOT_COMPARED and (with_hash or c.name != HASH)]
    query = sa.select(*columns, table.c.deleted_at.is_(None)).where(table.c.district_id == district_id)
    with wh.engine.connect() as conn:
        return {row.sourced_id: tuple(row) for row in conn.execute(query)}


def derived_rows(wh: Warehouse, table: sa.Table, district_id: str) -> list[tuple[Any, ...]]:
    """A derived table's rows of one district, without the district and import ids."""
    columns = [c for c in table.c if c.name not in {"district_id", "import_id"}]
    with wh.engine.connect() as conn:
        return sorted(
            tuple(row) for row in conn.execute(sa.select(*columns).where(table.c.district_id == district_id))
        )


def columns_that_differ(
    wh: Warehouse, expected: dict[str, tuple[Any, ...]], got: dict[str, tuple[Any, ...]], different: list[str]
) -> list[Any]:
    """For a failure message: the first differing record's sourcedId and (index, expected, got) per column."""
    first = different[0]
    a, b = expected.get(first), got.get(first)
    if a is None or b is None:
        return [first, a, b]
    return [first, [(i, x, y) for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]]


def test_every_import_method_publishes_the_same_rows(
    wh: Warehouse, servers: dict[str, SimulatorServer], roster: SimulatedDistrict, tmp_path: Path
) -> None:
    bundle = write_bundle(roster, tmp_path / "roster.zip")
    entries = districts(servers, bundle)
    for district in entries:
        result = sync_district(
            wh, district, f"run-{district.id}", RESOURCES, sync_mode="full", environ=ENVIRON
        )
        assert result.checks is not None and result.checks.passed, (district.id, result.checks)
        assert result.published, district.id
    reference = entries[0].id
    for resource in RESOURCES:
        assert len(published_rows(wh, reference, resource.name)) == len(
            roster.collections[resource.collection]
        )
        for district in entries[1:]:
            with_hash = district.id != "v1p2"
            expected = published_rows(wh, reference, resource.name, with_hash)
            got = published_rows(wh, district.id, resource.name, with_hash)
            different = sorted(
                sid for sid in expected.keys() | got.keys() if expected.get(sid) != got.get(sid)
            )
            assert not different, (
                district.id,
                resource.name,
                columns_that_differ(wh, expected, got, different),
            )
    # The derived tables, rebuilt after each publish, agree too (the 1.2 and CSV bindings carry the teacher's
    # primary flag and the students' logins as the 1.1 JSON binding does).
    for table in (class_teachers, student_logins):
        rows = {d.id: derived_rows(wh, table, d.id) for d in entries}
        assert rows[reference], table.name
        assert all(found == rows[reference] for found in rows.values()), table.name
    # Each REST method really used its own binding and security: the 1.2 and OAuth 1.0a servers were asked.
    assert servers["v1p2"].requests and servers["oauth1"].requests
