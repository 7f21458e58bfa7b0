"""Completeness before deletion: a full pull is returned only when it provably holds every record.

The SIS is the project's simulator over loopback; its paging faults make it lie about X-Total-Count,
serve short pages, change the district between two pages, or answer 500. Each test ends either with
exactly the district's records or with an error naming district, endpoint and the counts that
disagree. The last tests go one level up: a sync into the warehouse publishes nothing and infers no
deletion from a pull that could not be proven complete.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest

from roster_pipeline.oneroster import (
    ClientConfig,
    OneRosterClient,
    PagingInconsistentError,
    RetriesExhaustedError,
)
from roster_pipeline.pipeline.sync import sync_district
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.simulator import SimulatorServer, running_simulator
from roster_pipeline.warehouse import Warehouse

from .client_helpers import simulator_client_config
from .pipeline_helpers import write_registry

APP = "demo"
CLIENT_ID = "cid"
CLIENT_SECRET = "s3cret-for-completeness"


def config_for(server: SimulatorServer, **overrides: Any) -> ClientConfig:
    settings: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "page_size": 10,
        "backoff_max_seconds": 0.05,
        **overrides,
    }
    return simulator_client_config(server, APP, **settings)


def pull(client: OneRosterClient, name: str, **kwargs: Any) -> list[str]:
    return [record["sourcedId"] for batch in client.iter_batches(name, **kwargs) for record in batch]


def ids_of(server: SimulatorServer, collection: str) -> list[str]:
    return sorted(server.tenant(APP).district.collections[collection])


@pytest.fixture()
def sim() -> Iterator[SimulatorServer]:
    """tiny: 31 users, 153 enrollments, so a page size of 10 or 50 gives several pages."""
    with running_simulator(
        size="tiny", seed=1, app_name=APP, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ) as s:
        yield s


PAGING = pytest.mark.parametrize("concurrent", [True, False], ids=["concurrent", "sequential"])


def assert_names(error: PagingInconsistentError, endpoint: str, expected: int, received: int) -> None:
    text = str(error)
    assert error.district_id == "springfield" and error.endpoint == endpoint
    assert text.startswith(f"district 'springfield', endpoint '{endpoint}': ")
    assert error.expected_total == expected and error.observed_total == received, text
    assert str(expected) in text and str(received) in text


# ----------------------------------------------------------------------------------------- item 3: short page 1


@PAGING
def test_a_short_first_page_once_is_re_read_and_no_record_is_lost(
    sim: SimulatorServer, concurrent: bool
) -> None:
    sim.faults.add(kind="drop", count=1, offset=0, times=1, path_contains="/users")
    with OneRosterClient(config_for(sim, concurrent_paging=concurrent)) as client:
        ids = pull(client, "users")
        stats = client.stats_for("users")
    assert sorted(ids) == ids_of(sim, "users") and len(ids) == len(
        set(ids)
    )  # the dropped user came with the re-read
    assert stats.complete and stats.restarts == 1 and stats.records == 31


@PAGING
def test_a_first_page_always_short_fails_naming_expected_and_received(
    sim: SimulatorServer, concurrent: bool
) -> None:
    sim.faults.add(kind="drop", count=1, offset=0, times=None, path_contains="/users")
    with OneRosterClient(config_for(sim, concurrent_paging=concurrent, max_paging_restarts=1)) as client:
        with pytest.raises(PagingInconsistentError) as caught:
            pull(client, "users")
        stats = client.stats_for("users")
    assert_names(caught.value, "/users", expected=31, received=30)
    assert "2 passes" in str(caught.value) and not stats.complete


@PAGING
def test_a_server_that_caps_pages_is_still_read_completely(concurrent: bool) -> None:
    """A real cap (Infinite Campus, --max-page-size) is a short page 1 too: every later page is that size."""
    with (
        running_simulator(
            size="tiny",
            seed=1,
            app_name=APP,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            max_page_size=7,
        ) as server,
        OneRosterClient(config_for(server, page_size=10, concurrent_paging=concurrent)) as client,
    ):
        for collection in ("users", "enrollments", "academicSessions"):  # 31, 153 and 7 (== the cap) records
            assert pull(client, collection) == ids_of(server, collection), collection
            stats = client.stats_for(collection)
            assert stats.restarts == 0 and stats.pages == -(-len(ids_of(server, collection)) // 7)


@PAGING
def test_a_short_page_on_a_capped_server_is_not_taken_for_its_cap(concurrent: bool) -> None:
    with running_simulator(
        size="tiny", seed=1, app_name=APP, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, max_page_size=7
    ) as server:
        server.faults.add(kind="drop", count=1, offset=0, times=None, path_contains="/users")
        with OneRosterClient(
            config_for(server, concurrent_paging=concurrent, max_paging_restarts=1)
        ) as client:
            with pytest.raises(PagingInconsistentError) as caught:
                pull(client, "users")
    assert_names(caught.value, "/users", expected=31, received=30)


# ----------------------------------------------------------------------------------------- item 4: X-Total-Count


@PAGING
@pytest.mark.parametrize("lie", [50, 20, 1], ids=["equal-to-page-1", "below-page-1", "one"])
def test_a_page_1_total_smaller_than_the_district_never_truncates_the_pull(
    sim: SimulatorServer, concurrent: bool, lie: int
) -> None:
    sim.faults.add(kind="total_count", total=lie, offset=0, times=1, path_contains="/enrollments")
    with OneRosterClient(config_for(sim, page_size=50, concurrent_paging=concurrent)) as client:
        ids = pull(client, "enrollments")
        stats = client.stats_for("enrollments")
    assert ids == ids_of(sim, "enrollments") and len(ids) == 153  # not 50
    assert stats.complete and stats.restarts == 1 and stats.reported_total == 153


@PAGING
def test_a_page_1_total_that_always_lies_low_fails_instead_of_truncating(
    sim: SimulatorServer, concurrent: bool
) -> None:
    sim.faults.add(kind="total_count", total=50, offset=0, times=None, path_contains="/enrollments")
    with OneRosterClient(config_for(sim, page_size=50, concurrent_paging=concurrent)) as client:
        with pytest.raises(PagingInconsistentError) as caught:
            pull(client, "enrollments")
    error = caught.value
    assert (
        error.district_id == "springfield" and error.endpoint == "/enrollments" and error.expected_total == 50
    )
    assert "X-Total-Count" in str(error)


@PAGING
@pytest.mark.parametrize(
    "delta", [-3, -50, -1, 5, 1], ids=["low-3", "low-a-page", "low-1", "high-5", "high-1"]
)
def test_a_total_wrong_on_every_page_fails_clearly(
    sim: SimulatorServer, concurrent: bool, delta: int
) -> None:
    """153 enrollments in pages of 50: a total of 150 (a whole last page missing) or 103 must not pass."""
    sim.faults.add(kind="total_count", total_delta=delta, times=None, path_contains="/enrollments")
    with OneRosterClient(
        config_for(sim, page_size=50, concurrent_paging=concurrent, max_paging_restarts=1)
    ) as client:
        with pytest.raises(PagingInconsistentError) as caught:
            pull(client, "enrollments")
    assert caught.value.expected_total == 153 + delta and caught.value.endpoint == "/enrollments"
    assert "springfield" in str(caught.value)


@PAGING
@pytest.mark.parametrize("delta", [-50, 5], ids=["low", "high"])
def test_a_total_wrong_once_is_re_read_to_the_right_data(
    sim: SimulatorServer, concurrent: bool, delta: int
) -> None:
    sim.faults.add(
        kind="total_count", total_delta=delta, times=1, after=1, path_contains="/enrollments"
    )  # page 2
    with OneRosterClient(config_for(sim, page_size=50, concurrent_paging=concurrent)) as client:
        ids = pull(client, "enrollments")
        stats = client.stats_for("enrollments")
    assert ids == ids_of(sim, "enrollments") and stats.restarts == 1 and stats.complete


def test_an_exact_multiple_of_the_page_size_costs_one_empty_page_not_a_failure(sim: SimulatorServer) -> None:
    """31 users in pages of 31: page 1 is full and equals the total, which alone proves nothing."""
    with OneRosterClient(config_for(sim, page_size=31)) as client:
        assert pull(client, "users") == ids_of(sim, "users")
        stats = client.stats_for("users")
    assert stats.pages == 1 and stats.requests == 2 and stats.restarts == 0


# ----------------------------------------------------------------------------------------- the district changes


@PAGING
@pytest.mark.parametrize(
    ("mutation", "params"),
    [
        ("add_students", {"count": 4, "seed": 3}),
        ("remove_students", {"count": 3, "seed": 4, "mode": "vanish"}),
        ("remove_students", {"count": 3, "seed": 5, "mode": "tobedeleted"}),
    ],
    ids=["inserted", "deleted", "marked-tobedeleted"],
)
def test_records_inserted_or_deleted_while_paging_end_in_the_current_district(
    sim: SimulatorServer, concurrent: bool, mutation: str, params: dict[str, Any]
) -> None:
    before = set(ids_of(sim, "users"))
    rule = sim.faults.add(
        kind="mutate", mutation=mutation, mutation_params=params, times=1, after=1, path_contains="/users"
    )
    with OneRosterClient(config_for(sim, concurrent_paging=concurrent)) as client:
        ids = pull(client, "users")
        stats = client.stats_for("users")
    (result,) = rule.results
    changed = result.changes["users"]
    now = set(ids_of(sim, "users"))
    assert changed.added or changed.removed or changed.tobedeleted  # the district really changed mid-pull
    assert len(ids) == len(set(ids))  # each record once
    assert set(ids) >= now  # every record the district has now arrived: nothing to infer a deletion from
    assert set(ids) <= now | before  # and nothing else (a record gone mid-pull may have been read first)
    assert stats.complete


# ----------------------------------------------------------------------------------------- item 10: HTTP 500


@PAGING
def test_one_http_500_mid_pull_is_retried_and_the_data_is_right(
    sim: SimulatorServer, concurrent: bool
) -> None:
    sim.faults.add(status=500, times=1, after=2, path_contains="/enrollments")
    with OneRosterClient(config_for(sim, concurrent_paging=concurrent)) as client:
        ids = pull(client, "enrollments")
        stats = client.stats_for("enrollments")
    assert ids == ids_of(sim, "enrollments")
    assert stats.retries == 1 and stats.complete and stats.requests == stats.pages + 1


def test_http_500_forever_gives_up_after_the_budget_naming_district_endpoint_and_attempts(
    sim: SimulatorServer,
) -> None:
    sim.faults.add(status=500, times=None, path_contains="/classes")
    with OneRosterClient(config_for(sim, max_retries=3)) as client:
        with pytest.raises(RetriesExhaustedError) as caught:
            pull(client, "classes")
        stats = client.stats_for("classes")
    error = caught.value
    assert error.attempts == 4 and error.status == 500 and stats.requests == 4
    assert str(error).startswith("district 'springfield', endpoint '/classes': gave up after 4 attempts")
    assert (
        "HTTP 500" in error.last_failure and "internal_server_error" in error.last_failure
    )  # the SIS's imsx codes
    served = [r for r in sim.requests if r.path.endswith("/classes")]
    assert len(served) == 4


# ----------------------------------------------------------------------------------------- one level up: the warehouse


def registry_for(
    server: SimulatorServer, tmp_path: Path, environ: MutableMapping[str, str], page_size: int
) -> Any:
    return write_registry(tmp_path / "districts.yaml", server, environ, [APP], page_size=page_size).get(APP)


def test_a_short_first_page_never_becomes_a_deletion(
    sim: SimulatorServer, warehouse_url: str, tmp_path: Path
) -> None:
    environ: dict[str, str] = {}
    district = registry_for(sim, tmp_path, environ, page_size=10)
    warehouse = Warehouse(warehouse_url)
    warehouse.create_schema()
    first = sync_district(warehouse, district, "run-1", RESOURCES, environ=environ)
    assert first.published  # a clean first import is published
    published = warehouse.current_counts(APP)
    assert published["users"] == sum(
        1 for r in sim.tenant(APP).district.collections["users"].values() if r["status"] == "active"
    )

    sim.faults.add(kind="drop", count=1, offset=0, times=None, path_contains="/users")
    with pytest.raises(PagingInconsistentError) as caught:
        sync_district(warehouse, district, "run-2", RESOURCES, environ=environ)
    assert caught.value.district_id == APP and caught.value.endpoint == "/users"
    assert warehouse.current_counts(APP) == published  # no user soft-deleted, no enrollment lost
    latest = warehouse.last_published_import(APP)
    assert latest is not None and latest.import_id == first.import_id
    failed = warehouse.get_import(warehouse.import_for_run(APP, "run-2"))
    assert failed.status == "failed" and "PagingInconsistentError" in (failed.error or "")
    warehouse.dispose()


def test_a_page_1_total_smaller_than_the_district_publishes_nothing_on_a_first_import(
    sim: SimulatorServer, warehouse_url: str, tmp_path: Path
) -> None:
    environ: dict[str, str] = {}
    district = registry_for(sim, tmp_path, environ, page_size=50)
    warehouse = Warehouse(warehouse_url)
    warehouse.create_schema()
    sim.faults.add(kind="total_count", total=50, offset=0, times=None, path_contains="/enrollments")
    with pytest.raises(PagingInconsistentError) as caught:
        sync_district(warehouse, district, "run-1", RESOURCES, environ=environ)
    assert caught.value.district_id == APP and caught.value.endpoint == "/enrollments"
    assert warehouse.last_published_import(APP) is None
    assert set(warehouse.current_counts(APP).values()) == {0}  # not 50 of 153 enrollments
    sim.faults.clear()  # the SIS is fixed: the rerun lands everything
    rerun = sync_district(warehouse, district, "run-2", RESOURCES, environ=environ)
    assert rerun.published and warehouse.current_counts(APP)["enrollments"] == sum(
        1 for r in sim.tenant(APP).district.collections["enrollments"].values() if r["status"] == "active"
    )
    warehouse.dispose()
