"""End to end: the real simulator over HTTP → the client → the Dagster assets → the warehouse.

Every test runs on both the embedded SQLite default and Postgres (``warehouse_url``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district, mutations
from roster_pipeline.warehouse import Warehouse

from .pipeline_helpers import materialization_metadata, monkeypatch_environ, sync, write_registry

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres


@pytest.fixture()
def server(alpha_template) -> Iterator[SimulatorServer]:
    import copy

    tenants = [
        Tenant("alpha", "alpha-client", "alpha-very-secret-1", copy.deepcopy(alpha_template)),
        Tenant("beta", "beta-client", "beta-very-secret-2", generate_district("tiny", seed=22)),
    ]
    with SimulatorServer(tenants) as running:
        yield running


@pytest.fixture()
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as test_instance:
        yield test_instance


def active_count(server: SimulatorServer, app: str, collection: str) -> int:
    records = server.tenant(app).district.collections[collection].values()
    return sum(1 for r in records if r["status"] == "active")


def total_count(server: SimulatorServer, app: str, collection: str) -> int:
    return len(server.tenant(app).district.collections[collection])


def test_full_sync_lands_every_resource_with_correct_counts(
    server: SimulatorServer, warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance
) -> None:
    registry_path = tmp_path / "districts.yaml"
    registry = write_registry(registry_path, server, monkeypatch_environ(monkeypatch), ["alpha", "beta"])

    result = sync(registry, registry_path, warehouse_url, "alpha", instance)
    assert result.success

    counts = Warehouse(warehouse_url).current_counts("alpha")
    for resource in RESOURCES:
        meta = materialization_metadata(result, resource.name)
        assert meta["rows_fetched"] == total_count(server, "alpha", resource.collection), resource.name
        assert counts[resource.name] == active_count(server, "alpha", resource.collection), resource.name
        assert meta["updated"] == 0 and meta["deleted"] == 0
        # where the time went, for the benchmark and the UI: every stage measured, none negative
        assert set(meta["stage_seconds"]) == {"fetch", "parse", "validate", "load", "classify"}, resource.name
        assert min(meta["stage_seconds"].values()) >= 0 and meta["stage_seconds"]["load"] > 0, resource.name
    assert "check" in materialization_metadata(result, "checked_snapshot")["stage_seconds"]
    assert materialization_metadata(result, "published_roster")["stage_seconds"]["publish"] > 0
    published = materialization_metadata(result, "published_roster")
    assert published["total_fetched"] == sum(total_count(server, "alpha", r.collection) for r in RESOURCES)


def test_second_sync_without_change_reports_nothing_changed(
    server: SimulatorServer, warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance
) -> None:
    registry_path = tmp_path / "districts.yaml"
    registry = write_registry(registry_path, server, monkeypatch_environ(monkeypatch), ["alpha"])
    assert sync(registry, registry_path, warehouse_url, "alpha", instance).success

    again = sync(registry, registry_path, warehouse_url, "alpha", instance)
    assert again.success
    for resource in RESOURCES:
        meta = materialization_metadata(again, resource.name)
        assert (meta["added"], meta["updated"], meta["deleted"]) == (0, 0, 0), resource.name
        assert meta["unchanged"] + meta["tobedeleted"] == total_count(server, "alpha", resource.collection)


@pytest.mark.parametrize(
    "alpha_template", ["small"], indirect=True
)  # every mutation changes rows of each kind
def test_counts_after_a_mutation_match_the_mutation_exactly(
    server: SimulatorServer, warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance
) -> None:
    registry_path = tmp_path / "districts.yaml"
    registry = write_registry(registry_path, server, monkeypatch_environ(monkeypatch), ["alpha"])
    assert sync(registry, registry_path, warehouse_url, "alpha", instance).success

    district = server.tenant("alpha").district
    changed = mutations.change_users(district, percent=5, seed=7)
    added = mutations.add_students(district, count=12, seed=8)
    removed = mutations.remove_students(district, count=9, seed=9, mode="vanish")

    result = sync(registry, registry_path, warehouse_url, "alpha", instance)
    assert result.success
    users = materialization_metadata(result, "users")
    assert users["added"] == len(added.changes["users"].added)
    assert users["updated"] == len(changed.changes["users"].updated - removed.changes["users"].removed)
    assert users["deleted"] == len(removed.changes["users"].removed)
    enrollments = materialization_metadata(result, "enrollments")
    assert enrollments["added"] == len(added.changes["enrollments"].added)
    assert enrollments["deleted"] == len(removed.changes["enrollments"].removed)
    counts = Warehouse(warehouse_url).current_counts("alpha")
    assert counts["users"] == active_count(server, "alpha", "users")
    assert counts["enrollments"] == active_count(server, "alpha", "enrollments")


def test_two_districts_never_mix_rows(
    server: SimulatorServer, warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance
) -> None:
    registry_path = tmp_path / "districts.yaml"
    registry = write_registry(registry_path, server, monkeypatch_environ(monkeypatch), ["alpha", "beta"])
    assert sync(registry, registry_path, warehouse_url, "alpha", instance).success
    assert sync(registry, registry_path, warehouse_url, "beta", instance).success
    # A second full sync of beta must not soft-delete anything of alpha (vanished = absent from *beta's* pull).
    assert sync(registry, registry_path, warehouse_url, "beta", instance).success

    warehouse = Warehouse(warehouse_url)
    for app in ("alpha", "beta"):
        counts = warehouse.current_counts(app)
        for resource in RESOURCES:
            assert counts[resource.name] == active_count(server, app, resource.collection), (
                app,
                resource.name,
            )
    with warehouse.engine.connect() as conn:
        alpha_users = set(
            conn.execute(sa.text("SELECT sourced_id FROM users WHERE district_id = 'alpha'")).scalars()
        )
        beta_users = set(
            conn.execute(sa.text("SELECT sourced_id FROM users WHERE district_id = 'beta'")).scalars()
        )
    assert alpha_users == set(server.tenant("alpha").district.collections["users"])
    assert beta_users == set(server.tenant("beta").district.collections["users"])


@pytest.mark.parametrize("alpha_template", ["small"], indirect=True)  # resources that outlive a token
def test_token_expiry_mid_sync_is_survived(
    alpha_template, warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance
) -> None:
    import copy

    tenant = Tenant("alpha", "alpha-client", "alpha-very-secret-1", copy.deepcopy(alpha_template))
    # A 1-second token and 20 ms per request: every resource outlives several tokens.
    with SimulatorServer([tenant], token_ttl_seconds=1, latency_ms=20) as short_lived:
        registry_path = tmp_path / "districts.yaml"
        registry = write_registry(
            registry_path, short_lived, monkeypatch_environ(monkeypatch), ["alpha"], page_size=200
        )
        result = sync(registry, registry_path, warehouse_url, "alpha", instance)
        assert result.success
        token_requests = [r for r in short_lived.requests if "oauth2/token" in r.path]
        assert len(token_requests) > 7  # more than one token per asset: renewal happened mid-resource
        assert not [r for r in short_lived.requests if r.status == 401 and "oauth2/token" in r.path]
    counts = Warehouse(warehouse_url).current_counts("alpha")
    assert counts["enrollments"] == active_count(short_lived, "alpha", "enrollments")


def test_429_with_retry_after_is_honoured(
    server: SimulatorServer, warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance
) -> None:
    registry_path = tmp_path / "districts.yaml"
    registry = write_registry(registry_path, server, monkeypatch_environ(monkeypatch), ["beta"])
    server.faults.add(status=429, retry_after=1, times=1, path_contains="/users")

    started = time.monotonic()
    result = sync(registry, registry_path, warehouse_url, "beta", instance)
    assert result.success
    users_requests = [r for r in server.requests if r.path.endswith("/users")]
    throttled = [r for r in users_requests if r.status == 429]
    assert len(throttled) == 1
    after = [r for r in users_requests if r.started > throttled[0].started]
    assert after and after[0].started - throttled[0].started >= 1.0
    assert materialization_metadata(result, "users")["retries"] >= 1
    assert time.monotonic() - started >= 1.0


def test_secrets_never_reach_dagster_events_logs_or_metadata(
    server: SimulatorServer,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    instance,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The client secret and every bearer token issued stay out of the event log, metadata and logs."""
    import logging

    caplog.set_level(logging.DEBUG)
    registry_path = tmp_path / "districts.yaml"
    registry = write_registry(registry_path, server, monkeypatch_environ(monkeypatch), ["beta"])
    # One failing run too: error messages and stack traces are where secrets usually leak.
    server.faults.add(
        status=501, times=5, path_contains="/users"
    )  # not retried (500 is): fails the run at once
    failed = sync(registry, registry_path, sqlite_url, "beta", instance)
    assert not failed.success
    server.faults.clear()
    assert sync(registry, registry_path, sqlite_url, "beta", instance).success

    secrets = {server.tenant("beta").client_secret, *server.token_store._tokens}  # noqa: SLF001 - test peeks
    assert len(secrets) > 1, "tokens were issued"
    everything: list[str] = []
    for run in instance.get_runs():
        everything += [str(entry) for entry in instance.all_logs(run.run_id)]
    everything.append(caplog.text)
    blob = "\n".join(everything)
    assert "district beta" in blob or "beta" in blob  # the logs are really there
    for secret in secrets:
        assert secret not in blob
