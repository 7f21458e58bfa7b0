"""What a data engineer reads in the Dagster UI: check results on each district's own partition."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.event_api import PartitionKeyFilter

from roster_pipeline.definitions import build_definitions
from roster_pipeline.defs.freshness import GRACE, is_overdue, next_scheduled_run, scheduled_interval
from roster_pipeline.pipeline.snapshot_checks import CHANGE_THRESHOLDS, SCHOOL_THRESHOLDS, VALID_RECORDS
from roster_pipeline.registry.districts import District, load_registry
from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district

from .pipeline_helpers import EnvSetter, sync, write_registry

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres

CHECK_KEYS = [
    dg.AssetCheckKey(dg.AssetKey("checked_snapshot"), name)
    for name in (VALID_RECORDS, CHANGE_THRESHOLDS, SCHOOL_THRESHOLDS)
]


@pytest.fixture()
def two_districts() -> Iterator[SimulatorServer]:
    tenants = [
        Tenant("alpha", "alpha-client", "alpha-secret-1", generate_district("tiny", seed=31)),
        Tenant("beta", "beta-client", "beta-secret-2", generate_district("tiny", seed=32)),
    ]
    with SimulatorServer(tenants) as running:
        yield running


def test_each_district_partition_keeps_its_own_latest_check_results(
    two_districts: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry_path = tmp_path / "districts.yaml"
    registry = write_registry(registry_path, two_districts, EnvSetter(monkeypatch), ["alpha", "beta"])
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    with dg.DagsterInstance.ephemeral() as instance:
        alpha = sync(registry, registry_path, url, "alpha", instance)
        beta = sync(registry, registry_path, url, "beta", instance)
        assert alpha.success and beta.success
        storage = instance.event_log_storage
        for district, run in (("alpha", alpha), ("beta", beta)):
            latest = storage.get_latest_asset_check_execution_by_key(
                CHECK_KEYS, PartitionKeyFilter(key=district)
            )
            assert set(latest) == set(CHECK_KEYS), district
            for key, record in latest.items():
                # beta ran last; an unpartitioned check would show beta's run on alpha's page too
                assert record.partition == district and record.run_id == run.run_id, (district, key)
        evaluations = [e.partition for e in beta.get_asset_check_evaluations()]
        assert evaluations == ["beta"] * 3
        # every publish re-records district_status: both districts' last import is there, with its outcome
        status = instance.get_latest_materialization_event(dg.AssetKey("district_status"))
        assert status is not None and status.run_id == beta.run_id
        table = status.asset_materialization.metadata["status"].value
        for district in ("alpha", "beta"):
            line = next(row for row in table.splitlines() if row.startswith(f"| {district} "))
            assert f"District {district}" in line and ", full, published" in line, line


def scheduled_district(**schedule: object) -> District:
    return District.model_validate(
        {
            "id": "chicago",
            "name": "Chicago",
            "api_host": "https://sis.example.org",
            "app_name": "chicago",
            "client_id_env": "X_KEY",
            "client_secret_env": "X_SECRET",
            "timezone": "America/Chicago",
            "schedule": schedule,
        }
    )


def test_next_run_and_overdue_follow_the_district_schedule_in_its_timezone() -> None:
    daily = scheduled_district(time="02:30")
    now = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)  # 03:00 in Chicago: today's 02:30 has passed
    assert next_scheduled_run(daily, now) == dt.datetime(2026, 11, 28, 8, 30, tzinfo=dt.UTC)
    assert scheduled_interval(daily) == dt.timedelta(days=1)
    assert not is_overdue(daily, now - dt.timedelta(days=1), now)
    assert is_overdue(daily, now - dt.timedelta(days=1) - GRACE - dt.timedelta(minutes=1), now)
    assert not is_overdue(daily, None, now)  # never published: under review, not late

    weekly = scheduled_district(frequency="weekly", day="saturday", time="23:30")
    assert next_scheduled_run(weekly, now) == dt.datetime(2026, 11, 29, 5, 30, tzinfo=dt.UTC)  # Sat 23:30 CST
    twice = scheduled_district(frequency="twice_daily", time="06:00", second_time="10:00")
    assert scheduled_interval(twice) == dt.timedelta(hours=20)  # the longest gap, 10:00 → 06:00
    assert scheduled_interval(scheduled_district(frequency="manual")) is None
    assert next_scheduled_run(scheduled_district(frequency="manual"), now) is None


def test_assets_carry_owners_tags_and_a_freshness_window_from_the_slowest_schedule() -> None:
    registry = load_registry()  # the example: springfield daily, shelbyville weekly
    graph = build_definitions(registry).resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.group_name in ("roster_sync", "roster_derived"):
            assert node.owners == ["team:roster_data"] and node.tags["domain"] == "rostering", key
    assert graph.get(dg.AssetKey("users")).tags["pii"] == "true"
    assert "pii" not in graph.get(dg.AssetKey("orgs")).tags
    policy = graph.get(dg.AssetKey("published_roster")).freshness_policy
    assert policy.fail_window.to_timedelta() == dt.timedelta(days=7) + GRACE  # shelbyville syncs weekly
