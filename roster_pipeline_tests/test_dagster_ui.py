"""What a data engineer reads in the Dagster UI: check results on each district's own partition."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.event_api import PartitionKeyFilter

from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district
from roster_pipeline.snapshot_checks import CHANGE_THRESHOLDS, SCHOOL_THRESHOLDS, VALID_RECORDS

from .pipeline_helpers import EnvSetter, sync, write_registry

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
    with dg.instance_for_test() as instance:
        alpha = sync(registry, registry_path, url, "alpha", instance)
        beta = sync(registry, registry_path, url, "beta", instance)
        assert alpha.success and beta.success
        storage = instance.event_log_storage
        for district, run in (("alpha", alpha), ("beta", beta)):
            latest = storage.get_latest_asset_check_execution_by_key(CHECK_KEYS, PartitionKeyFilter(key=district))
            assert set(latest) == set(CHECK_KEYS), district
            for key, record in latest.items():
                # beta ran last; an unpartitioned check would show beta's run on alpha's page too
                assert record.partition == district and record.run_id == run.run_id, (district, key)
        evaluations = [e.partition for e in beta.get_asset_check_evaluations()]
        assert evaluations == ["beta"] * 3
