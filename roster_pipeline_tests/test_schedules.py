"""Per-district schedules evaluated at chosen instants: timezones, both DST transitions, tags, skips.

The tick instants come from Dagster's own cron iterator with each schedule's ``execution_timezone`` (what
the daemon uses), so these tests pin down, per district, *when* a run starts in UTC and *what* it asks
for: the district's partition, the tags (district, school year, the plan's sync mode for that local
date) and a run key that makes a re-evaluated tick launch nothing new.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import yaml
from dagster._utils.schedules import cron_string_iterator  # the daemon's iterator: DST handling included

from roster_pipeline.control.store import create_control_schema, pause_district
from roster_pipeline.pipeline.run_tags import DISTRICT_TAG, SCHOOL_YEAR_TAG, SYNC_MODE_TAG
from roster_pipeline.registry.districts import load_registry
from roster_pipeline.warehouse import Warehouse

from .control_helpers import bound_definitions

UTC = dt.UTC


def district(id_: str, timezone: str, **schedule: object) -> dict[str, object]:
    return {
        "id": id_,
        "name": f"District {id_}",
        "api_host": "https://sis.example.org",
        "app_name": id_,
        "client_id_env": "X_KEY",
        "client_secret_env": "X_SECRET",
        "timezone": timezone,
        "schedule": schedule,
    }


DISTRICTS = [
    district("nyc", "America/New_York", time="02:30"),  # 02:30 does not exist on 2026-03-08
    district("albany", "America/New_York", time="01:30"),  # 01:30 happens twice on 2026-11-01
    district("la", "America/Los_Angeles", time="23:00"),  # local date is a day behind UTC's at tick time
    district("berlin", "Europe/Berlin", time="02:30"),  # spring 2026-03-29, fall 2026-10-25
    district("sydney", "Australia/Sydney", frequency="twice_daily", time="02:30", second_time="14:30"),
    district("munich", "Europe/Berlin", frequency="weekly", day="monday", time="23:15"),
    district("chicago", "America/Chicago", time="03:00", sync_plan="full_always"),
    {**district("pinned", "America/Chicago", time="04:00", sync_plan="delta_always"), "school_year": 2027},
    district("manual", "America/Denver", frequency="manual"),
    {**district("off", "America/New_York", time="02:00"), "enabled": False},
]


@pytest.fixture()
def defs(tmp_path: Path, sqlite_url: str) -> dg.Definitions:
    path = tmp_path / "districts.yaml"
    path.write_text(yaml.safe_dump({"districts": DISTRICTS}))
    warehouse = Warehouse(sqlite_url)
    warehouse.create_schema()
    create_control_schema(warehouse.engine)
    return bound_definitions(load_registry(path), path, sqlite_url)


@pytest.fixture()
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as test_instance:
        yield test_instance


def ticks(schedule: dg.ScheduleDefinition, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Every tick of a schedule in [start, end), as the daemon computes them."""
    crons = (
        [schedule.cron_schedule] if isinstance(schedule.cron_schedule, str) else list(schedule.cron_schedule)
    )
    out: list[dt.datetime] = []
    for cron in crons:
        for moment in cron_string_iterator(start.timestamp() - 1, cron, schedule.execution_timezone):
            if moment >= end:
                break
            if moment >= start:
                out.append(moment)
    return sorted(out)


def evaluate(defs: dg.Definitions, name: str, instance: dg.DagsterInstance, when: dt.datetime):
    # Entered: an evaluation context enters its own instance, which must be exited here, not when the
    # context is garbage-collected (that would restore a dead instance's state storage; see conftest).
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=when,
        resources=defs.resources,
        repository_def=defs.get_repository_def(),
    ) as context:
        return defs.resolve_schedule_def(name).evaluate_tick(context)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def as_utc(moments: list[dt.datetime]) -> list[dt.datetime]:
    return [m.astimezone(UTC) for m in moments]


def schedule(defs: dg.Definitions, name: str) -> dg.ScheduleDefinition:
    return next(s for s in defs.schedules if s.name == name)


def test_each_enabled_scheduled_district_has_a_named_schedule_in_its_own_timezone(defs) -> None:
    by_name = {s.name: s for s in defs.schedules}
    assert sorted(by_name) == [
        "sync_albany",
        "sync_berlin",
        "sync_chicago",
        "sync_la",
        "sync_munich",
        "sync_nyc",
        "sync_pinned",
        "sync_sydney",
    ]  # no manual, no disabled district
    assert by_name["sync_sydney"].execution_timezone == "Australia/Sydney"
    assert by_name["sync_la"].execution_timezone == "America/Los_Angeles"
    assert list(by_name["sync_sydney"].cron_schedule) == ["30 2 * * *", "30 14 * * *"]
    assert by_name["sync_munich"].cron_schedule == "15 23 * * 1"


def test_spring_forward_a_missing_local_time_runs_once_at_three(defs) -> None:
    # New York, Sunday 2026-03-08: 02:00 EST jumps to 03:00 EDT, so 02:30 does not exist.
    nyc = ticks(schedule(defs, "sync_nyc"), utc(2026, 3, 6, 12), utc(2026, 3, 10, 0))
    assert as_utc(nyc) == [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)]
    assert [m.astimezone(ZoneInfo("America/New_York")).strftime("%d %H:%M") for m in nyc] == [
        "07 02:30",
        "08 03:00",
        "09 02:30",
    ]
    # Berlin, Sunday 2026-03-29: 02:00 CET jumps to 03:00 CEST.
    berlin = ticks(schedule(defs, "sync_berlin"), utc(2026, 3, 27, 12), utc(2026, 3, 30, 12))
    assert as_utc(berlin) == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]
    # Sydney, Sunday 2026-10-04: 02:00 AEST jumps to 03:00 AEDT; the 14:30 tick is unaffected.
    sydney = ticks(schedule(defs, "sync_sydney"), utc(2026, 10, 2, 14), utc(2026, 10, 4, 14))
    assert as_utc(sydney) == [
        utc(2026, 10, 2, 16, 30),
        utc(2026, 10, 3, 4, 30),
        utc(2026, 10, 3, 16, 0),
        utc(2026, 10, 4, 3, 30),
    ]


def test_fall_back_a_doubled_local_time_runs_exactly_once_at_the_later_instant(defs) -> None:
    # New York, Sunday 2026-11-01: 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
    albany = ticks(schedule(defs, "sync_albany"), utc(2026, 10, 31, 0), utc(2026, 11, 3, 0))
    assert as_utc(albany) == [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 6, 30), utc(2026, 11, 2, 6, 30)]
    # Berlin, Sunday 2026-10-25: 02:30 at 00:30 UTC (CEST) and at 01:30 UTC (CET).
    berlin = ticks(schedule(defs, "sync_berlin"), utc(2026, 10, 24, 0), utc(2026, 10, 27, 0))
    assert as_utc(berlin) == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 1, 30), utc(2026, 10, 26, 1, 30)]
    # Sydney, Sunday 2026-04-05: 02:30 at 15:30 UTC (AEDT) and at 16:30 UTC (AEST) the day before.
    sydney = ticks(schedule(defs, "sync_sydney"), utc(2026, 4, 4, 12), utc(2026, 4, 5, 12))
    assert as_utc(sydney) == [utc(2026, 4, 4, 16, 30), utc(2026, 4, 5, 4, 30)]


def test_one_run_per_local_day_across_a_whole_dst_week(defs) -> None:
    for name, zone, start in [
        ("sync_nyc", "America/New_York", utc(2026, 3, 5)),
        ("sync_albany", "America/New_York", utc(2026, 10, 28)),
        ("sync_berlin", "Europe/Berlin", utc(2026, 10, 22)),
    ]:
        moments = ticks(schedule(defs, name), start, start + dt.timedelta(days=7))
        days = [m.astimezone(ZoneInfo(zone)).date() for m in moments]
        assert len(days) == len(set(days)) == 7, (name, moments)


def test_dst_ticks_request_the_districts_sync_with_full_on_the_full_sync_day(defs, instance) -> None:
    # Both US transitions fall on a Sunday: the weekly full day of the default plan.
    spring, fall = utc(2026, 3, 8, 7, 0), utc(2026, 11, 1, 6, 30)
    for name, when, mode in [
        ("sync_nyc", spring, "full"),
        ("sync_nyc", spring + dt.timedelta(days=1), "delta"),
        ("sync_albany", fall, "full"),
        ("sync_albany", fall + dt.timedelta(days=1), "delta"),
    ]:
        [request] = evaluate(defs, name, instance, when).run_requests
        district_id = name.removeprefix("sync_")
        assert request.partition_key == district_id
        assert request.tags[SYNC_MODE_TAG] == mode, (name, when)
        assert request.tags[DISTRICT_TAG] == district_id
        assert request.run_key == f"{district_id}-{when.astimezone(ZoneInfo('America/New_York')).isoformat()}"
    [fall_request] = evaluate(defs, "sync_albany", instance, fall).run_requests
    assert fall_request.run_key == "albany-2026-11-01T01:30:00-05:00"


def test_the_plan_follows_the_districts_local_date_not_utcs(defs, instance) -> None:
    # LA 23:00 Saturday 2026-11-28 = Sunday 07:00 UTC: still a Saturday locally, so a delta.
    saturday = evaluate(defs, "sync_la", instance, utc(2026, 11, 29, 7)).run_requests[0]
    sunday = evaluate(defs, "sync_la", instance, utc(2026, 11, 30, 7)).run_requests[0]
    assert (saturday.tags[SYNC_MODE_TAG], sunday.tags[SYNC_MODE_TAG]) == ("delta", "full")
    assert saturday.run_key == "la-2026-11-28T23:00:00-08:00"


def test_which_districts_get_a_run_on_an_ordinary_friday(defs, instance) -> None:
    warehouse = Warehouse(defs.resources["warehouse"].database_url)
    pause_district(
        warehouse.engine,
        "berlin",
        by="test",
        reason="import 3 held: 40% users deleted",
        import_id=3,
        run_id="r3",
    )
    start, end = utc(2026, 11, 27, 0), utc(2026, 11, 28, 0)  # Friday, UTC
    launched: dict[str, list[dg.RunRequest]] = {}
    skipped: dict[str, str] = {}
    for s in defs.schedules:
        for when in ticks(s, start, end):
            result = evaluate(defs, s.name, instance, when)
            launched.setdefault(s.name, []).extend(result.run_requests)
            if result.skip_message:
                skipped[s.name] = result.skip_message
    runs = {name: len(requests) for name, requests in launched.items() if requests}
    # sydney: twice a day; munich: weekly on Monday, no tick; berlin: paused (ticks, but skipped).
    assert runs == {
        "sync_nyc": 1,
        "sync_albany": 1,
        "sync_la": 1,
        "sync_sydney": 2,
        "sync_chicago": 1,
        "sync_pinned": 1,
    }
    assert "sync_munich" not in launched
    assert (
        skipped["sync_berlin"].startswith("district berlin is paused since ")
        and "40% users deleted" in skipped["sync_berlin"]
    )
    modes = {r.partition_key: r.tags[SYNC_MODE_TAG] for requests in launched.values() for r in requests}
    assert modes == {
        "nyc": "delta",
        "albany": "delta",
        "la": "delta",
        "sydney": "delta",
        "chicago": "full",
        "pinned": "delta",
    }
    years = {r.partition_key: r.tags.get(SCHOOL_YEAR_TAG) for requests in launched.values() for r in requests}
    assert years["pinned"] == "2027" and years["nyc"] is None  # only a school year the registry pins
    keys = [r.run_key for requests in launched.values() for r in requests]
    assert len(keys) == len(set(keys))


def test_a_weekly_district_runs_full_on_its_day_only(defs, instance) -> None:
    moments = ticks(schedule(defs, "sync_munich"), utc(2026, 11, 23), utc(2026, 12, 7))
    assert as_utc(moments) == [utc(2026, 11, 23, 22, 15), utc(2026, 11, 30, 22, 15)]  # Mondays 23:15 CET
    [request] = evaluate(defs, "sync_munich", instance, moments[0]).run_requests
    assert request.tags[SYNC_MODE_TAG] == "full"


def test_re_evaluating_a_tick_gives_the_same_run_key(defs, instance) -> None:
    when = utc(2026, 11, 27, 7, 30)
    first = evaluate(defs, "sync_nyc", instance, when).run_requests[0]
    again = evaluate(defs, "sync_nyc", instance, when).run_requests[0]
    assert first.run_key == again.run_key == "nyc-2026-11-27T02:30:00-05:00"
