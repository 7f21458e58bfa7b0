"""Helpers for the end-to-end tests: a registry pointing at a running simulator, and a district sync
through the real Dagster assets (``materialize``), as the UI would launch it."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from roster_pipeline.defs.assets import build_roster_assets
from roster_pipeline.defs.partitions import district_partitions
from roster_pipeline.defs.resources import DistrictRegistryResource, WarehouseResource
from roster_pipeline.pipeline.run_tags import SYNC_MODE_TAG
from roster_pipeline.registry.districts import Registry, load_registry
from roster_pipeline.simulator import SimulatorServer


def write_registry(
    path: Path,
    server: SimulatorServer,
    environ: MutableMapping[str, str],
    apps: Iterable[str],
    **overrides: Any,
) -> Registry:
    """A registry with one district per simulator app (district id == app name)."""
    districts = []
    for app in apps:
        tenant = server.tenant(app)
        key_env, secret_env = f"TEST_{app.upper()}_KEY", f"TEST_{app.upper()}_SECRET"
        environ[key_env] = tenant.client_id
        environ[secret_env] = tenant.client_secret
        districts.append(
            {
                "id": app,
                "name": f"District {app}",
                "sis": "infinite_campus",
                "api_host": server.url,
                "app_name": app,
                "client_id_env": key_env,
                "client_secret_env": secret_env,
                "page_size": 500,
                "admin_emails": [f"admin@{app}.example.org"],
                **overrides,
            }
        )
    path.write_text(yaml.safe_dump({"districts": districts}))
    return load_registry(path)


def sync(
    registry: Registry,
    registry_path: Path,
    warehouse_url: str,
    district_id: str,
    instance: dg.DagsterInstance,
    sync_mode: str | None = "full",
) -> dg.ExecuteInProcessResult:
    """Materialize every asset of one district partition, in process, through the real assets.

    ``sync_mode`` becomes the run tag (full by default, so a test never depends on today's weekday);
    None leaves the mode to the district's plan for today.
    """
    assets = build_roster_assets(district_partitions(registry))
    return dg.materialize(
        assets,
        partition_key=district_id,
        instance=instance,
        tags={SYNC_MODE_TAG: sync_mode} if sync_mode else None,
        resources={
            "warehouse": WarehouseResource(database_url=warehouse_url),
            "registry": DistrictRegistryResource(districts_file=str(registry_path)),
        },
        raise_on_error=False,
    )


def materialization_metadata(result: dg.ExecuteInProcessResult, asset_name: str) -> dict[str, Any]:
    events = result.asset_materializations_for_node(asset_name)
    assert events, f"{asset_name} was not materialized"
    return {key: value.value for key, value in events[-1].metadata.items()}


class MonkeypatchedEnviron(dict):
    """A mapping for ``write_registry``'s ``environ`` whose assignments go to os.environ through
    monkeypatch, so the credentials a registry names are set for the test and undone after it."""

    def __init__(self, monkeypatch: Any) -> None:
        super().__init__()
        self._monkeypatch = monkeypatch

    def __setitem__(self, key: str, value: str) -> None:
        self._monkeypatch.setenv(key, value)
        super().__setitem__(key, value)


class EnvSetter(dict):
    """A mapping whose assignments go to os.environ through monkeypatch (undone after the test): what
    ``write_registry`` writes the districts' credentials into."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__()
        self._monkeypatch = monkeypatch

    def __setitem__(self, key: str, value: str) -> None:
        self._monkeypatch.setenv(key, value)
        super().__setitem__(key, value)


def monkeypatch_environ(monkeypatch: Any) -> EnvSetter:
    """What ``write_registry`` writes the districts' credentials into: os.environ, undone after the test."""
    return EnvSetter(monkeypatch)


def failure(result: dg.ExecuteInProcessResult) -> str:
    """The root cause of a run's one failed step, as ``ClassName: message``."""
    [event] = result.get_step_failure_events()
    error = event.step_failure_data.error
    while error.cause is not None:
        error = error.cause
    return f"{error.cls_name}: {error.message}"
