"""The csv_bundle registry settings, the drop-folder sensor and one Dagster run of a drop-folder district.

The sensor is evaluated with ``build_sensor_context`` on a temporary drop folder: a complete new bundle
gives one RunRequest for the district's partition, tagged with the bundle (moved to processed/); the
same bundle never runs twice; a zip still being written is left alone.  One real Dagster run proves the
tag reaches every asset, which each open the bundle it names.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from roster_pipeline.control.store import pause_district
from roster_pipeline.definitions import build_definitions
from roster_pipeline.defs.assets import build_roster_assets
from roster_pipeline.defs.drop_folders import DROP_FOLDER_SENSOR_NAME
from roster_pipeline.defs.partitions import district_partitions
from roster_pipeline.defs.resources import DistrictRegistryResource, WarehouseResource
from roster_pipeline.defs.schedules import build_district_schedules
from roster_pipeline.pipeline.run_tags import CSV_BUNDLE_TAG
from roster_pipeline.registry.districts import District, RegistryError, load_registry, parse_registry
from roster_pipeline.sources import open_source
from roster_pipeline.sources.csv_bundle import CsvBundleError
from roster_pipeline.sources.csv_bundle.drop_folder import PROCESSED
from roster_pipeline.warehouse import TABLES
from roster_pipeline_tests.csv_bundle_helpers import write_zip

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres

DISTRICT = "dropper"
AN_HOUR_AGO = time.time() - 3600


# ---------------------------------------------------------------- registry


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"csv_bundle": {"path": "/a.zip", "drop_folder": "/in"}}, "exactly one of 'path'"),
        ({"csv_bundle": {}}, "exactly one of 'path'"),
        ({}, "needs a 'csv_bundle' section"),
        ({"csv_bundle": {"drop_folder": " "}}, "must not be empty"),
    ],
)
def test_csv_bundle_settings_are_validated_naming_the_district(entry: dict, says: str) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_registry({"districts": [{"id": DISTRICT, "name": "D", "import_method": "csv_bundle", **entry}]})
    assert f"district {DISTRICT!r}" in str(caught.value) and says in str(caught.value)


def test_rest_district_still_needs_credentials_and_takes_no_csv_section() -> None:
    base = {"id": "rest", "name": "R", "api_host": "ic.example.org", "app_name": "r"}
    with pytest.raises(RegistryError, match="district 'rest'.*needs client_id_env and client_secret_env"):
        parse_registry({"districts": [base]})
    with pytest.raises(RegistryError, match="'csv_bundle' only applies to import_method 'csv_bundle'"):
        parse_registry(
            {
                "districts": [
                    {
                        **base,
                        "client_id_env": "R_ID",
                        "client_secret_env": "R_SECRET",
                        "csv_bundle": {"path": "/a.zip"},
                    }
                ]
            }
        )
    # A csv_bundle district needs no URL and no credentials.
    district = District(id="c", name="C", import_method="csv_bundle", csv_bundle={"path": "/a.zip"})
    assert district.csv_bundle is not None and district.csv_bundle.path == "/a.zip"


def test_a_run_may_only_read_bundles_the_sensor_took(tmp_path: Path) -> None:
    district = District(
        id=DISTRICT, name="D", import_method="csv_bundle", csv_bundle={"drop_folder": str(tmp_path)}
    )
    with pytest.raises(CsvBundleError, match="drop-folder sensor"):
        open_source(district)
    with pytest.raises(CsvBundleError, match="must name a bundle in"):
        open_source(district, run_tags={CSV_BUNDLE_TAG: "/etc/passwd"})


# ---------------------------------------------------------------- the sensor


@pytest.fixture()
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


@pytest.fixture()
def registry_file(tmp_path: Path, drop: Path) -> Path:
    path = tmp_path / "districts.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "districts": [
                    {
                        "id": DISTRICT,
                        "name": "Drop Folder District",
                        "import_method": "csv_bundle",
                        "csv_bundle": {"drop_folder": str(drop), "settle_seconds": 60},
                        "page_size": 50,
                    }
                ]
            }
        )
    )
    return path


@pytest.fixture()
def resources(registry_file: Path, tmp_path: Path) -> dict[str, dg.ConfigurableResource]:
    return {
        "warehouse": WarehouseResource(database_url=f"sqlite:///{tmp_path / 'warehouse.sqlite'}"),
        "registry": DistrictRegistryResource(districts_file=str(registry_file)),
    }


def landed(path: Path, mtime: float = AN_HOUR_AGO) -> Path:
    os.utime(path, (mtime, mtime))
    return path


def tick(resources: dict, cursor: str | None) -> dg.SensorResult:
    """One evaluation of the drop-folder sensor, within the definitions of the test registry."""
    defs = build_definitions(resources["registry"].get())
    sensor = defs.resolve_sensor_def(DROP_FOLDER_SENSOR_NAME)
    with dg.DagsterInstance.ephemeral() as instance:
        with dg.build_sensor_context(
            instance=instance, cursor=cursor, definitions=defs, resources=resources
        ) as context:
            return sensor.evaluate_tick(context)


def test_new_bundle_starts_one_run_of_the_partition_and_is_moved(drop: Path, resources: dict) -> None:
    bundle = landed(write_zip(drop / "roster.zip"))
    first = tick(resources, None)
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    taken = Path(request.tags[CSV_BUNDLE_TAG])
    assert request.partition_key == DISTRICT
    assert taken.parent == drop / PROCESSED and taken.name.endswith("-roster.zip") and taken.is_file()
    assert not bundle.exists()
    # Next tick: nothing new.
    second = tick(resources, first.cursor)
    assert second.run_requests == [] and second.cursor == first.cursor

    # The same bundle dropped again (same name, size and mtime): remembered, never run twice.
    shutil.copy2(taken, drop / "roster.zip")
    again = tick(resources, first.cursor)
    assert again.run_requests == [] and (drop / "roster.zip").exists()


def test_next_nights_bundle_under_the_same_name_runs_and_keeps_the_first(drop: Path, resources: dict) -> None:
    landed(write_zip(drop / "roster.zip"), AN_HOUR_AGO - 86400)
    first = tick(resources, None)
    landed(write_zip(drop / "roster.zip", mode="delta"))
    second = tick(resources, first.cursor)
    assert len(second.run_requests) == 1
    assert len(list((drop / PROCESSED).glob("*roster.zip"))) == 2  # last night's is not overwritten


def test_bundles_still_being_written_are_left_alone(drop: Path, resources: dict) -> None:
    write_zip(drop / "fresh.zip")  # modified just now: may still be growing
    complete = write_zip(drop / "whole.zip").read_bytes()
    landed_half = drop / "half.zip"
    landed_half.write_bytes(complete[: len(complete) // 2])  # old, but no central directory: not a zip yet
    landed(landed_half)
    landed(write_zip(drop / "upload.zip.part"))  # written under another name, renamed into place when done
    (drop / "whole.zip").unlink()
    result = tick(resources, None)
    assert result.run_requests == []
    assert sorted(p.name for p in drop.iterdir()) == ["fresh.zip", "half.zip", "upload.zip.part"]


def test_a_paused_districts_bundles_wait_in_the_folder(drop: Path, resources: dict) -> None:
    bundle = landed(write_zip(drop / "roster.zip"))
    pause_district(
        resources["warehouse"].get().engine,
        DISTRICT,
        by="test",
        reason="import 7 held",
        import_id=None,
        run_id=None,
    )
    result = tick(resources, None)
    assert result.run_requests == [] and bundle.exists()


def test_drop_folder_districts_get_no_clock_schedule(registry_file: Path) -> None:
    assert build_district_schedules(load_registry(registry_file)) == []


# ---------------------------------------------------------------- one real run


def test_the_run_tag_reaches_every_asset_and_publishes_the_bundle(
    drop: Path, registry_file: Path, warehouse_url: str
) -> None:
    landed(write_zip(drop / "roster.zip"))
    resources = {
        "warehouse": WarehouseResource(database_url=warehouse_url),
        "registry": DistrictRegistryResource(districts_file=str(registry_file)),
    }
    request = tick(resources, None).run_requests[0]
    assets = build_roster_assets(district_partitions(load_registry(registry_file)))
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            assets,
            partition_key=DISTRICT,
            instance=instance,
            tags=request.tags,
            resources=resources,
            raise_on_error=False,
        )
        assert result.success
        untagged = dg.materialize(
            assets, partition_key=DISTRICT, instance=instance, resources=resources, raise_on_error=False
        )
        assert not untagged.success
    users = TABLES["users"].published
    with sa.create_engine(warehouse_url).connect() as conn:
        published = set(
            conn.execute(sa.select(users.c.sourced_id).where(users.c.district_id == DISTRICT)).scalars()
        )
    assert published == {"u-t", "u-s", "u-g"}
