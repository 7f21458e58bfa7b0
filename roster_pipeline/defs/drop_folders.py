"""The drop-folder sensor: a new CSV bundle in a ``csv_bundle`` district's drop folder starts its sync.

For every enabled district with ``csv_bundle: {drop_folder: ...}``: each complete new bundle (see
``roster_pipeline.sources.csv_bundle.drop_folder``: a ``.zip``, unchanged for ``settle_seconds``, a
readable zip) is moved into ``processed/`` and one sync run of the district's partition is requested,
tagged ``roster/csv_bundle`` with the moved bundle's path, oldest bundle first (delta bundles apply in
order; the per-district run concurrency limit keeps them one at a time).

A bundle runs once, three ways over: it leaves the drop folder when taken, the cursor remembers its
identity (name, size, mtime) per district, and the run key is made of the same identity.  A paused or
disabled district's bundles are left waiting in the folder (logged) and taken once it may sync again.
Zips still being written, or broken, are left where they are and named in the log at every tick.
"""

from __future__ import annotations

import json

import dagster as dg

from roster_pipeline.pipeline.run_tags import CSV_BUNDLE_TAG
from roster_pipeline.registry.districts import District
from roster_pipeline.sources.csv_bundle.drop_folder import drop_folder_of, scan, take

from .jobs import SYNC_JOB_NAME
from .resources import DistrictRegistryResource, WarehouseResource
from .schedules import district_tags, skip_reason

DROP_FOLDER_SENSOR_NAME = "csv_bundle_drop_folders"
REMEMBERED_PER_DISTRICT = 500  # bundle identities kept in the cursor per district (newest)


def _parse_cursor(text: str | None) -> dict[str, list[str]]:
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}  # a lost cursor is safe: taken bundles are no longer in the drop folder
    return (
        {str(k): [str(x) for x in v] for k, v in data.items() if isinstance(v, list)}
        if isinstance(data, dict)
        else {}
    )


def drop_folder_districts(districts: list[District]) -> list[District]:
    return [d for d in districts if d.enabled and drop_folder_of(d) is not None]


def build_drop_folder_sensor() -> dg.SensorDefinition:
    @dg.sensor(
        name=DROP_FOLDER_SENSOR_NAME,
        job_name=SYNC_JOB_NAME,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Starts the sync run of a csv_bundle district when a complete new OneRoster CSV bundle (.zip) lands "
            "in its drop folder; the bundle is moved to processed/ and named by the run tag roster/csv_bundle, "
            "so it runs once."
        ),
    )
    def csv_bundle_drop_folders(
        context: dg.SensorEvaluationContext, warehouse: WarehouseResource, registry: DistrictRegistryResource
    ) -> dg.SensorResult:
        remembered = _parse_cursor(context.cursor)
        requests: list[dg.RunRequest] = []
        notes: list[str] = []
        for district in drop_folder_districts(list(registry.get())):
            folder = drop_folder_of(district)
            assert folder is not None and district.csv_bundle is not None
            found = scan(folder, district.csv_bundle.settle_seconds)
            for path, why in found.waiting:
                context.log.info(f"district {district.id}: {path.name} not taken yet: {why}")
            if not found.ready:
                continue
            blocked = skip_reason(warehouse, registry, district.id)
            if blocked is not None:
                notes.append(f"district {district.id}: {len(found.ready)} bundle(s) waiting: {blocked}")
                continue
            seen = remembered.setdefault(district.id, [])
            for bundle in found.ready:
                if bundle.key in seen:
                    context.log.warning(
                        f"district {district.id}: {bundle.path.name} was already taken once (same name, size and "
                        "mtime) but is in the drop folder again; not run twice. Remove it, or touch it to run it again"
                    )
                    continue
                taken = take(bundle)
                seen.append(bundle.key)
                context.log.info(
                    f"district {district.id}: took {bundle.path.name} → {taken}; sync run requested"
                )
                requests.append(
                    dg.RunRequest(
                        run_key=f"{district.id}:{bundle.key}",
                        partition_key=district.id,
                        tags={CSV_BUNDLE_TAG: str(taken), **district_tags(district)},
                    )
                )
            del seen[:-REMEMBERED_PER_DISTRICT]
        for note in notes:
            context.log.info(note)
        skip = None if requests else ("; ".join(notes) or "no new bundle")
        return dg.SensorResult(
            run_requests=requests, cursor=json.dumps(remembered, sort_keys=True), skip_reason=skip
        )

    return csv_bundle_drop_folders
