"""Helpers for the pause / review / sensor tests: the real Definitions bound to one test's warehouse and
registry, a district sync as the UI launches it, and one evaluation of the control sensor."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa

from roster_pipeline.definitions import build_definitions
from roster_pipeline.defs.jobs import SYNC_JOB_NAME
from roster_pipeline.defs.resources import DistrictRegistryResource, WarehouseResource
from roster_pipeline.defs.sensors import CONTROL_SENSOR_NAME
from roster_pipeline.pipeline.run_tags import SYNC_MODE_TAG
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.registry.districts import Registry


def bound_definitions(registry: Registry, registry_path: Path, warehouse_url: str) -> dg.Definitions:
    base = build_definitions(registry)
    return dg.Definitions(
        assets=base.assets,
        jobs=base.jobs,
        schedules=base.schedules,
        sensors=base.sensors,
        resources={
            "warehouse": WarehouseResource(database_url=warehouse_url),
            "registry": DistrictRegistryResource(districts_file=str(registry_path)),
        },
    )


def run_sync(
    defs: dg.Definitions,
    district_id: str,
    instance: dg.DagsterInstance,
    tags: Mapping[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """The district's sync job; a full sync unless the tags say otherwise (never today's weekday plan)."""
    return defs.resolve_job_def(SYNC_JOB_NAME).execute_in_process(
        partition_key=district_id,
        instance=instance,
        tags={SYNC_MODE_TAG: "full", **(tags or {})},
        raise_on_error=False,
    )


def run_review_job(
    defs: dg.Definitions,
    job_name: str,
    op_name: str,
    config: dict[str, Any],
    instance: dg.DagsterInstance,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(job_name).execute_in_process(
        run_config={"ops": {op_name: {"config": config}}}, instance=instance, raise_on_error=raise_on_error
    )


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None = None):
    """One evaluation of the control sensor (cursor None = a fresh sensor, as after a restart)."""
    sensor = defs.resolve_sensor_def(CONTROL_SENSOR_NAME)
    # Entered, so whatever the context enters (resources, an instance) is exited here, not at garbage collection.
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
    ) as context:
        return sensor.evaluate_tick(context)


def published_dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = sa.create_engine(url)
    out = {}
    with engine.connect() as conn:
        for resource in RESOURCES:
            rows = conn.execute(
                sa.text(f"SELECT * FROM {resource.name} ORDER BY district_id, sourced_id")
            ).all()
            out[resource.name] = [tuple(str(v) for v in row) for row in rows]
    engine.dispose()
    return out


def kinds(messages: list[Any]) -> list[tuple[str, str, str]]:
    """(district, import, kind) of every captured email, from the idempotency header."""
    return [tuple(str(m["X-Roster-Idempotency-Key"]).split(":")) for m in messages]  # type: ignore[misc]
