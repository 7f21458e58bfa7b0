"""Disabling a district (``enabled: false``): no schedule, runs refused with the way back, data kept;
re-enabling resumes from what is published.  Real simulator over HTTP, real assets, SQLite and Postgres."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from roster_pipeline.definitions import build_definitions
from roster_pipeline.registry.districts import load_registry
from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district, mutations
from roster_pipeline.warehouse import Warehouse

from .pipeline_helpers import failure, monkeypatch_environ, sync, write_registry

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres


@pytest.fixture()
def server() -> Iterator[SimulatorServer]:
    district = generate_district("tiny", seed=53)
    with SimulatorServer([Tenant("alpha", "alpha-client", "alpha-secret-xyz", copy.deepcopy(district))]) as s:
        yield s


@pytest.fixture()
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as test_instance:
        yield test_instance


def set_enabled(path: Path, enabled: bool) -> None:
    """What an operator does: flip ``enabled`` in the registry file (then reload the code location)."""
    data = yaml.safe_load(path.read_text())
    data["districts"][0]["enabled"] = enabled
    path.write_text(yaml.safe_dump(data))


def test_disabled_district_is_refused_keeps_its_data_and_resumes_when_re_enabled(
    server: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warehouse_url: str, instance
) -> None:
    path = tmp_path / "districts.yaml"
    registry = write_registry(path, server, monkeypatch_environ(monkeypatch), ["alpha"])
    assert sync(registry, path, warehouse_url, "alpha", instance).success
    wh = Warehouse(warehouse_url)
    counts = wh.current_counts("alpha")
    published = wh.last_published_import("alpha")
    assert [s.name for s in build_definitions(registry).schedules] == ["sync_alpha"]

    set_enabled(path, False)
    disabled = load_registry(path)
    assert build_definitions(disabled).schedules == []  # no schedule after the reload
    mutations.remove_students(server.tenant("alpha").district, 3, seed=2)
    refused = sync(disabled, path, warehouse_url, "alpha", instance)
    assert not refused.success
    message = failure(refused)
    assert "DistrictPausedError" in message  # a refusal: the control sensor neither pauses nor emails
    for needle in (
        "'alpha' is disabled",
        "enabled: false",
        "published data is kept",
        "enabled: true",
        "reload the code location",
    ):
        assert needle in message
    assert wh.import_for_run("alpha", refused.run_id) is None  # no import opened, the SIS not asked
    assert wh.current_counts("alpha") == counts  # data kept
    assert wh.last_published_import("alpha") == published

    set_enabled(path, True)
    enabled = load_registry(path)
    assert [s.name for s in build_definitions(enabled).schedules] == ["sync_alpha"]
    resumed = sync(enabled, path, warehouse_url, "alpha", instance)
    assert resumed.success, failure(resumed)
    assert wh.current_counts("alpha")["users"] < counts["users"]  # the removal made while disabled lands now
    assert wh.last_published_import("alpha").import_id > published.import_id  # type: ignore[union-attr]
    wh.dispose()
