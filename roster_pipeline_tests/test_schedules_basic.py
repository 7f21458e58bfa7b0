"""The minimal per-district schedules: one per enabled district, in its timezone, skipped while paused."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import yaml

from roster_pipeline.control.store import create_control_schema, pause_district, resume_district
from roster_pipeline.definitions import build_definitions
from roster_pipeline.defs.resources import DistrictRegistryResource, WarehouseResource
from roster_pipeline.defs.schedules import cron_for
from roster_pipeline.registry.districts import load_registry
from roster_pipeline.warehouse import Warehouse


def district(id_: str, **extra: object) -> dict[str, object]:
    return {
        "id": id_,
        "name": f"District {id_}",
        "api_host": "https://sis.example.org",
        "app_name": id_,
        "client_id_env": "X_KEY",
        "client_secret_env": "X_SECRET",
        **extra,
    }


@pytest.fixture()
def setup(tmp_path: Path, sqlite_url: str):
    path = tmp_path / "districts.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "districts": [
                    district("chicago", timezone="America/Chicago", schedule={"time": "02:30"}),
                    district(
                        "berlin-east",
                        timezone="Europe/Berlin",
                        schedule={"frequency": "weekly", "day": "monday", "time": "23:15"},
                    ),
                    district("twice", schedule={"frequency": "twice_daily", "time": "06:00"}),
                    district("manual", schedule={"frequency": "manual"}),
                    district("off", enabled=False),
                    district(
                        "rolling",
                        timezone="America/New_York",
                        rollover={"date": "07-01", "first_day": "08-20", "mode": "pause"},
                    ),
                ]
            }
        )
    )
    registry = load_registry(path)
    base = build_definitions(registry)
    resources = {
        "warehouse": WarehouseResource(database_url=sqlite_url),
        "registry": DistrictRegistryResource(districts_file=str(path)),
    }
    defs = dg.Definitions(
        assets=base.assets,
        jobs=base.jobs,
        schedules=base.schedules,
        sensors=base.sensors,
        resources=resources,
    )
    warehouse = Warehouse(sqlite_url)
    warehouse.create_schema()
    create_control_schema(warehouse.engine)
    return defs, registry, warehouse


def evaluate(defs: dg.Definitions, name: str, instance: dg.DagsterInstance, when: datetime):
    # Entered, so the instance the context enters is exited here, not whenever it is garbage-collected.
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=when,
        resources=defs.resources,
        repository_def=defs.get_repository_def(),
    ) as context:
        return defs.resolve_schedule_def(name).evaluate_tick(context)


def test_one_schedule_per_enabled_scheduled_district_in_its_timezone(setup) -> None:
    defs, registry, _ = setup
    schedules = {s.name: s for s in defs.schedules}
    assert sorted(schedules) == [
        "sync_berlin_east",
        "sync_chicago",
        "sync_rolling",
        "sync_twice",
    ]  # not manual/disabled
    assert schedules["sync_chicago"].cron_schedule == "30 2 * * *"
    assert schedules["sync_chicago"].execution_timezone == "America/Chicago"
    assert schedules["sync_berlin_east"].cron_schedule == "15 23 * * 1"
    assert list(schedules["sync_twice"].cron_schedule) == ["0 6 * * *", "0 18 * * *"]
    assert cron_for(registry.get("manual")) is None
    assert all(s.default_status == dg.DefaultScheduleStatus.RUNNING for s in schedules.values())
    assert all(s.job_name == "sync_district" for s in schedules.values())


def test_tick_requests_the_district_partition_with_an_idempotent_run_key(setup) -> None:
    defs, _, _ = setup
    when = datetime(2026, 11, 27, 2, 30, tzinfo=ZoneInfo("America/Chicago"))
    with dg.DagsterInstance.ephemeral() as instance:
        result = evaluate(defs, "sync_chicago", instance, when)
        again = evaluate(defs, "sync_chicago", instance, when)
    [request] = result.run_requests
    assert request.partition_key == "chicago"
    assert request.run_key == again.run_requests[0].run_key and "2026-11-27T02:30:00-06:00" in request.run_key
    # the runs list shows the district's name next to the partition id
    assert (
        request.tags["roster/district"] == "chicago"
        and request.tags["roster/district_name"] == "District chicago"
    )


def test_a_paused_district_is_skipped_with_the_reason_and_the_others_still_run(setup) -> None:
    defs, _, warehouse = setup
    pause_district(
        warehouse.engine,
        "chicago",
        by="roster_pipeline sensor",
        reason="import 7 held: 90% enrollments deleted",
        import_id=7,
        run_id="r1",
    )
    when = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)
    with dg.DagsterInstance.ephemeral() as instance:
        paused = evaluate(defs, "sync_chicago", instance, when)
        other = evaluate(defs, "sync_twice", instance, when)
        assert not paused.run_requests
        assert paused.skip_message.startswith("district chicago is paused since ")
        assert "import 7" in paused.skip_message and "90% enrollments deleted" in paused.skip_message
        assert "roster-pipeline review chicago approve|reject|reprocess" in paused.skip_message
        assert [r.partition_key for r in other.run_requests] == ["twice"]

        resume_district(warehouse.engine, "chicago")
        assert [r.partition_key for r in evaluate(defs, "sync_chicago", instance, when).run_requests] == [
            "chicago"
        ]


def test_a_district_disabled_after_the_code_location_loaded_is_skipped(setup, tmp_path: Path) -> None:
    defs, _, _ = setup
    path = tmp_path / "districts.yaml"
    data = yaml.safe_load(path.read_text())
    data["districts"][0]["enabled"] = False
    path.write_text(yaml.safe_dump(data))
    with dg.DagsterInstance.ephemeral() as instance:
        result = evaluate(defs, "sync_chicago", instance, datetime(2026, 11, 27, 8, 30, tzinfo=UTC))
    assert not result.run_requests and "disabled" in result.skip_message


def test_rollover_pause_skips_ticks_inside_the_window_and_runs_from_the_first_day(setup) -> None:
    defs, _, _ = setup
    with dg.DagsterInstance.ephemeral() as instance:
        inside = evaluate(defs, "sync_rolling", instance, datetime(2027, 7, 15, 6, 0, tzinfo=UTC))
        assert not inside.run_requests
        assert "rollover" in inside.skip_message.lower() and "08-20" in inside.skip_message.replace(
            "2027-08-20", "08-20"
        )
        # 02:00 New York on the first day is 06:00 UTC: the window is over.
        first_day = evaluate(defs, "sync_rolling", instance, datetime(2027, 8, 20, 6, 0, tzinfo=UTC))
        assert [r.partition_key for r in first_day.run_requests] == ["rolling"]
        # The day before, in New York (2027-08-20 03:00 UTC is still 08-19 locally): still paused.
        day_before = evaluate(defs, "sync_rolling", instance, datetime(2027, 8, 20, 3, 0, tzinfo=UTC))
        assert not day_before.run_requests
