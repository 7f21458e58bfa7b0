"""When each district's import is due, from its schedule: the next run, and when a publish is overdue.

Dagster 1.13's ``FreshnessPolicy`` applies to an asset as a whole, not to one partition, so
``published_roster`` carries one policy whose window is the slowest district's longest gap between
scheduled runs plus a grace period (``import_freshness_policy``): it turns red when no district at all
published in that window.  The per-district view, which a data engineer needs with 40 districts, is the
``district_status`` table: each district's next scheduled run and whether its last publish is overdue
(``is_overdue``), computed here from the same registry schedule.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from roster_pipeline.registry.districts import WEEKDAYS, District, Registry

GRACE = dt.timedelta(hours=6)  # a sync takes time, and a transient SIS outage is retried by the next tick


def _times(district: District) -> list[dt.time]:
    s = district.schedule
    first = dt.time.fromisoformat(s.time)
    if s.frequency != "twice_daily":
        return [first]
    if s.second_time:
        return sorted([first, dt.time.fromisoformat(s.second_time)])
    return sorted([first, dt.time((first.hour + 12) % 24, first.minute)])


def scheduled_interval(district: District) -> dt.timedelta | None:
    """The longest gap between two scheduled runs of the district; None when nothing schedules it."""
    s = district.schedule
    if not district.enabled or s.frequency == "manual":
        return None
    if district.csv_bundle is not None and district.csv_bundle.drop_folder is not None:
        return None  # a dropped bundle starts its runs, not the clock (see defs.schedules)
    if s.frequency == "weekly":
        return dt.timedelta(days=7)
    minutes = sorted(t.hour * 60 + t.minute for t in _times(district))
    gaps = [b - a for a, b in zip(minutes, minutes[1:], strict=False)] + [minutes[0] + 24 * 60 - minutes[-1]]
    return dt.timedelta(minutes=max(gaps))


def next_scheduled_run(district: District, now: dt.datetime) -> dt.datetime | None:
    """The next scheduled run after ``now`` (UTC), from the registry's time in the district's timezone."""
    if scheduled_interval(district) is None:
        return None
    zone = district.zone
    today = now.astimezone(zone).date()
    wanted_day = WEEKDAYS.index(district.schedule.day) if district.schedule.frequency == "weekly" else None
    for offset in range(8):
        day = today + dt.timedelta(days=offset)
        if wanted_day is not None and day.weekday() != wanted_day:
            continue
        for at in _times(district):
            candidate = dt.datetime.combine(day, at, tzinfo=zone)
            if candidate > now:
                return candidate.astimezone(dt.UTC)
    return None


def is_overdue(district: District, last_published: dt.datetime | None, now: dt.datetime) -> bool:
    """True when the district's last publish is older than its schedule's longest gap plus ``GRACE``.

    A district that never published is not overdue (its first import may still be under review)."""
    interval = scheduled_interval(district)
    if interval is None or last_published is None:
        return False
    return now - last_published > interval + GRACE


def import_freshness_policy(registry: Registry) -> dg.FreshnessPolicy | None:
    """One asset-level policy for ``published_roster``: the slowest district's gap plus ``GRACE``."""
    intervals = [i for d in registry.districts.values() if (i := scheduled_interval(d)) is not None]
    if not intervals:
        return None
    slowest = max(intervals)
    return dg.FreshnessPolicy.time_window(fail_window=slowest + GRACE, warn_window=slowest + GRACE / 2)
