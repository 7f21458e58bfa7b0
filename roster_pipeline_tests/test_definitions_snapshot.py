"""The whole Dagster definitions, from the example registry, as a stored snapshot reviewed like code.

Assets (group, partitions, upstream, kinds, owners, tags, freshness, column schema), asset checks, jobs
(what they select, their executor and tags), schedules (cron, timezone, default status), sensors (interval,
default status, job) and the district partitions: any change to what a data engineer sees in the UI shows
up in the diff of ``__snapshots__/test_definitions_snapshot.ambr``. An intended change is accepted with
``python3 -m pytest roster_pipeline_tests/test_definitions_snapshot.py --snapshot-update`` and reviewed in
the commit, as dagster-open-platform's ``test_defs.py`` does.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from syrupy.assertion import SnapshotAssertion

from roster_pipeline.definitions import build_definitions
from roster_pipeline.registry.districts import load_registry


def describe_definitions(defs: dg.Definitions) -> dict[str, Any]:
    """A plain, sorted, deterministic picture of ``defs`` (no object reprs, no memory addresses)."""
    graph = defs.resolve_asset_graph()
    assets: dict[str, Any] = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        schema = node.metadata.get("dagster/column_schema")
        freshness = node.freshness_policy
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitioned_by": type(node.partitions_def).__name__ if node.partitions_def else None,
            "upstream": sorted(k.to_user_string() for k in node.parent_keys),
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "tags": dict(sorted(node.tags.items())),
            "freshness": repr(freshness) if freshness is not None else None,
            "columns": [c.name for c in schema.columns] if schema is not None else None,
            "checks": sorted(k.name for k in node.check_keys),
        }
    checks = {
        f"{k.asset_key.to_user_string()}:{k.name}": {
            "blocking": graph.get(k).blocking,
            "partitioned": graph.get(k).partitions_def is not None,
        }
        for k in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name))
    }
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):
            continue
        jobs[job.name] = {
            "assets": sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys),
            "executor": job.executor_def.name,
            "tags": dict(sorted(job.tags.items())),
            "partitioned": job.partitions_def is not None,
        }
    schedules = {
        s.name: {
            "cron": s.cron_schedule,
            "timezone": s.execution_timezone,
            "default": s.default_status.value,
            "job": s.job_name,
        }
        for s in sorted(defs.schedules or [], key=lambda s: s.name)
    }
    sensors = {
        s.name: {
            "interval_seconds": s.minimum_interval_seconds,
            "default": s.default_status.value,
            "job": s.job_name if s.has_jobs else None,
        }
        for s in sorted(defs.sensors or [], key=lambda s: s.name)
    }
    partitions = graph.get(dg.AssetKey("roster_import")).partitions_def
    return {
        "assets": assets,
        "asset_checks": checks,
        "jobs": jobs,
        "schedules": schedules,
        "sensors": sensors,
        "district_partitions": partitions.get_partition_keys() if partitions else [],
    }


def test_definitions_match_the_reviewed_snapshot(snapshot: SnapshotAssertion, monkeypatch) -> None:
    monkeypatch.delenv("ROSTER_CONTROL_SENSOR_INTERVAL_SECONDS", raising=False)
    assert describe_definitions(build_definitions(load_registry())) == snapshot
