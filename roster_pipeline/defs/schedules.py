"""One schedule per enabled district, from the registry: ``sync_<district_id>`` in the district's timezone.

The registry's frequency and time become a cron string evaluated in the district's own timezone
(``execution_timezone``), so 02:30 stays 02:30 local across DST: on the spring-forward night a time that
does not exist runs at 03:00, on the fall-back night a time that exists twice runs once (Dagster takes
the later instant).  Each tick asks for the district's sync tagged with the district, its school year
(when the registry pins one) and the sync mode of its plan for that local date, under a run key made of
the district and the scheduled local time, so a re-evaluated tick never launches a second run.  A paused
or disabled district's tick is skipped with a reason that says why and how to review it.  A registry
change (new district, new time) takes effect on a code-location reload.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from roster_pipeline.pipeline.admission import admission
from roster_pipeline.pipeline.run_tags import (
    DISTRICT_NAME_TAG,
    DISTRICT_TAG,
    SCHEDULE_TAG,
    SCHOOL_YEAR_TAG,
    SYNC_MODE_TAG,
)
from roster_pipeline.registry.districts import WEEKDAYS, District, Registry

from .jobs import SYNC_JOB_NAME
from .resources import DistrictRegistryResource, WarehouseResource


def cron_for(district: District) -> list[str] | None:
    """The district's cron string(s) in its own timezone; None for ``frequency: manual``."""
    s = district.schedule
    hour, minute = (int(x) for x in s.time.split(":"))
    if s.frequency == "manual":
        return None
    if s.frequency == "weekly":
        return [f"{minute} {hour} * * {(WEEKDAYS.index(s.day or 'sunday') + 1) % 7}"]
    crons = [f"{minute} {hour} * * *"]
    if s.frequency == "twice_daily":
        h2, m2 = (int(x) for x in s.second_time.split(":")) if s.second_time else ((hour + 12) % 24, minute)
        crons.append(f"{m2} {h2} * * *")
    return crons


def skip_reason(
    warehouse: WarehouseResource,
    registry: DistrictRegistryResource,
    district_id: str,
    local_date: dt.date | None = None,
) -> str | None:
    """Why this district must not sync now (the registry and the pause re-read at every tick), or None."""
    current = registry.get().districts.get(district_id)
    return admission(district_id, current, warehouse.get().engine, local_date=local_date).refusal


def schedule_name(district_id: str) -> str:
    return f"sync_{district_id.replace('-', '_')}"  # Dagster names allow [A-Za-z0-9_] only


def district_tags(district: District) -> dict[str, str]:
    """The district's id and name as run tags, so a run in the UI says which district it is for."""
    return {DISTRICT_TAG: district.id, DISTRICT_NAME_TAG: district.name}


def tick_request(district: District, scheduled: dt.datetime, schedule: str) -> dg.RunRequest:
    """The run one tick asks for: plan mode of the district's local date, idempotent run key."""
    local = scheduled.astimezone(district.zone)
    tags = {
        SCHEDULE_TAG: schedule,
        **district_tags(district),
        SYNC_MODE_TAG: district.schedule.sync_mode_on(local.date()),
    }
    if district.school_year is not None:
        tags[SCHOOL_YEAR_TAG] = str(district.school_year)
    return dg.RunRequest(
        partition_key=district.id,
        run_key=f"{district.id}-{local.isoformat()}",  # one run per tick, however often it is evaluated
        tags=tags,
    )


def build_district_schedule(district: District) -> dg.ScheduleDefinition | None:
    crons = cron_for(district)
    if crons is None:
        return None
    if district.csv_bundle is not None and district.csv_bundle.drop_folder is not None:
        return None  # a new bundle in its drop folder starts its runs (defs.drop_folders), not the clock
    name = schedule_name(district.id)

    @dg.schedule(
        name=name,
        cron_schedule=crons if len(crons) > 1 else crons[0],
        execution_timezone=district.timezone,
        job_name=SYNC_JOB_NAME,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Sync {district.name} ({district.schedule.frequency} at {district.schedule.time} "
        f"{district.timezone}, plan {district.schedule.sync_plan}); skipped while the district is paused or "
        "disabled.",
    )
    def _schedule(
        context: dg.ScheduleEvaluationContext,
        warehouse: WarehouseResource,
        registry: DistrictRegistryResource,
    ) -> dg.RunRequest | dg.SkipReason:
        scheduled = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        reason = skip_reason(warehouse, registry, district.id, scheduled.astimezone(district.zone).date())
        if reason is not None:
            return dg.SkipReason(reason)
        return tick_request(district, scheduled, name)

    return _schedule


def build_district_schedules(registry: Registry) -> list[dg.ScheduleDefinition]:
    schedules = [build_district_schedule(d) for d in registry.enabled()]
    return [s for s in schedules if s is not None]
