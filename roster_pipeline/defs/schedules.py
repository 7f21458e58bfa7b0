"""One schedule per enabled district, from the registry: ``sync_<district_id>`` in the district's timezone.

Minimal on purpose (issue 6 adds sync modes and rollover): the registry's frequency and time become a
cron string, each tick asks for the district's sync with an idempotent run key, and a paused or
disabled district's tick is skipped with a reason that says why and how to review it.  A registry change
(new district, new time) takes effect on a code-location reload.
"""

from __future__ import annotations

import dagster as dg

from roster_pipeline.control.state import get_state, review_hint
from roster_pipeline.districts import WEEKDAYS, District, Registry

from .jobs import SYNC_JOB_NAME
from .resources import DistrictRegistryResource, WarehouseResource

SCHEDULE_TAG = "roster/schedule"


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


def skip_reason(warehouse: WarehouseResource, registry: DistrictRegistryResource, district_id: str) -> str | None:
    """Why this district must not sync now (re-read at every tick), or None."""
    current = registry.get().districts.get(district_id)
    if current is None:
        return f"district {district_id} is no longer in the registry; reload the code location"
    if not current.enabled:
        return f"district {district_id} is disabled (enabled: false in the registry)"
    state = get_state(warehouse.get().engine, district_id)
    if state.paused:
        return f"{state.describe()}; {review_hint(district_id)}"
    return None


def schedule_name(district_id: str) -> str:
    return f"sync_{district_id.replace('-', '_')}"  # Dagster names allow [A-Za-z0-9_] only


def build_district_schedule(district: District) -> dg.ScheduleDefinition | None:
    crons = cron_for(district)
    if crons is None:
        return None
    name = schedule_name(district.id)

    @dg.schedule(
        name=name,
        cron_schedule=crons if len(crons) > 1 else crons[0],
        execution_timezone=district.timezone,
        job_name=SYNC_JOB_NAME,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Sync {district.name} ({district.schedule.frequency} at {district.schedule.time} "
        f"{district.timezone}); skipped while the district is paused or disabled.",
    )
    def _schedule(
        context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource, registry: DistrictRegistryResource
    ) -> dg.RunRequest | dg.SkipReason:
        reason = skip_reason(warehouse, registry, district.id)
        if reason is not None:
            return dg.SkipReason(reason)
        return dg.RunRequest(
            partition_key=district.id,
            run_key=f"{district.id}-{context.scheduled_execution_time.isoformat()}",  # one run per tick
            tags={SCHEDULE_TAG: name},
        )

    return _schedule


def build_district_schedules(registry: Registry) -> list[dg.ScheduleDefinition]:
    schedules = [build_district_schedule(d) for d in registry.enabled()]
    return [s for s in schedules if s is not None]
