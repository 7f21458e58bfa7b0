"""The Dagster code location as a whole: what the UI shows, and that the shipped config files load."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from roster_pipeline.definitions import build_definitions
from roster_pipeline.registry.districts import load_registry
from roster_pipeline_tests.paths import PROJECT_ROOT

# A snapshot of the graph: a change to it shows up in review (as dagster-open-platform's test_defs does).
EXPECTED_ASSETS = [
    "academic_sessions",
    "checked_snapshot",
    "classes",
    "courses",
    "demographics",
    "enrollments",
    "orgs",
    "published_roster",
    "roster_import",
    "users",
]


# Derived from the published roster in the same run (group roster_derived), downstream of published_roster.
DERIVED_ASSETS = ["class_teachers", "student_logins"]


def test_definitions_snapshot_from_the_example_registry() -> None:
    registry = load_registry()
    defs = build_definitions(registry)
    graph = defs.resolve_asset_graph()
    assert sorted(key.to_user_string() for key in graph.get_all_asset_keys()) == sorted(
        [*EXPECTED_ASSETS, *DERIVED_ASSETS, "district_status"]
    )
    status = graph.get(dg.AssetKey("district_status"))
    assert status.group_name == "roster_control" and status.partitions_def is None

    job = defs.resolve_job_def("sync_district")
    assert job.partitions_def is not None
    assert job.partitions_def.get_partition_keys() == list(registry.districts)
    assert sorted(key.to_user_string() for key in job.asset_layer.executable_asset_keys) == sorted(
        EXPECTED_ASSETS + DERIVED_ASSETS
    )

    for name in EXPECTED_ASSETS:
        key = dg.AssetKey(name)
        node = graph.get(key)
        assert node.partitions_def == job.partitions_def, key
        assert node.group_name == "roster_sync"
        assert node.description and len(node.description) > 40, (
            f"{key} needs a description that reads well in the UI"
        )
    for name in DERIVED_ASSETS:
        node = graph.get(dg.AssetKey(name))
        assert node.partitions_def == job.partitions_def and node.group_name == "roster_derived", name
        assert {k.to_user_string() for k in node.parent_keys} == {"published_roster"}, name
        assert node.description and len(node.description) > 40, name
    publish = graph.get(dg.AssetKey("published_roster"))
    assert {k.to_user_string() for k in publish.parent_keys} == {"checked_snapshot"}
    checked = graph.get(dg.AssetKey("checked_snapshot"))
    assert {k.to_user_string() for k in checked.parent_keys} == set(EXPECTED_ASSETS) - {
        "published_roster",
        "roster_import",
        "checked_snapshot",
    }
    assert sorted(key.name for key in graph.asset_check_keys) == [
        "change_thresholds",
        "school_thresholds",
        "valid_records",
    ]
    for check_key in graph.asset_check_keys:  # one result per district, on the district's partition
        assert graph.get(check_key).partitions_def == job.partitions_def, check_key

    # Per-district schedules for enabled, non-manual districts; the control sensor runs by default.
    enabled = [d.id for d in registry.districts.values() if d.enabled and d.schedule.frequency != "manual"]
    assert sorted(s.name for s in defs.schedules or []) == sorted(
        f"sync_{d.replace('-', '_')}" for d in enabled
    )
    sensors = {s.name: s for s in defs.sensors or []}
    assert sensors["district_control"].default_status == dg.DefaultSensorStatus.RUNNING
    assert {j.name for j in defs.jobs or []} >= {
        "review_approve",
        "review_reject",
        "review_reprocess",
        "review_undo",
    }

    dry_run = defs.resolve_job_def("dry_run_district")
    assert sorted(k.to_user_string() for k in dry_run.asset_layer.executable_asset_keys) == sorted(
        set(EXPECTED_ASSETS) - {"published_roster"}
    )


def test_each_resource_asset_shows_the_columns_its_pandera_model_enforces() -> None:
    from roster_pipeline.records.catalogue import RESOURCES
    from roster_pipeline.validation.schemas import SCHEMAS

    graph = build_definitions(load_registry()).resolve_asset_graph()
    for resource in RESOURCES:
        schema = graph.get(dg.AssetKey(resource.name)).metadata["dagster/column_schema"]
        columns = {column.name: column for column in schema.columns}
        assert set(columns) == set(SCHEMAS[resource.name].to_schema().columns), resource.name
        assert columns["sourcedId"].constraints.nullable is False, resource.name
        assert any("isin" in c for c in columns["status"].constraints.other), resource.name


def test_sync_job_description_says_the_mode_is_decided_per_run() -> None:
    """The job is not always a full sync: the run tag or the district's plan decides, and the UI says so."""
    description = build_definitions(load_registry()).resolve_job_def("sync_district").description or ""
    assert not description.lower().startswith("full sync")
    assert "full or delta" in description and "roster/sync_mode" in description
    assert "district's sync plan" in description


def test_every_job_runs_a_district_in_one_process_the_implicit_asset_job_too() -> None:
    """One process per run keeps a district's requests within its max_concurrency: the jobs say so, and the
    definitions' default covers what Dagster builds itself (the UI's Materialize, `dagster asset materialize`)."""
    defs = build_definitions(load_registry())
    assert defs.resolve_implicit_global_asset_job_def().executor_def is dg.in_process_executor
    for name in ("sync_district", "dry_run_district"):
        assert defs.resolve_job_def(name).executor_def is dg.in_process_executor


def test_dagster_definitions_validate_passes_on_the_workspace(tmp_path: Path) -> None:
    # Run from a folder without dagster.yaml: in the project root Dagster would pick up the production
    # instance config, which needs the DAGSTER_PG_* variables (tested separately below).
    dagster = shutil.which("dagster") or str(Path(sys.executable).with_name("dagster"))
    completed = subprocess.run(
        [dagster, "definitions", "validate", "-w", str(PROJECT_ROOT / "workspace.yaml")],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env={k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.postgres
def test_production_dagster_yaml_uses_postgres_storage_from_env_vars(production_dagster_home) -> None:
    """The settings as loaded; test_production_instance.py runs real work on them."""
    with dg.DagsterInstance.from_config(str(production_dagster_home.path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None and queue.max_concurrent_runs == 8
        limits = queue.tag_concurrency_limits
        assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
        # The instance really works against the database: store and read back a run.
        run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job(), run_id=None)
        assert instance.get_run_by_id(run.run_id) is not None
