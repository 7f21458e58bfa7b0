"""The district status table (markdown) shown on the ``district_status`` asset in the Dagster UI.

One row per district with what an on-call data engineer asks first: is it running, when does it run
next, what did its last import do (when, full or delta, outcome), and is its last publish overdue for its
schedule.  Below the table, each paused district's reason in full (a table cell must stay short) and the
import thresholds in force, so "why was this held?" is answered on the same page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from roster_pipeline.control.store import DistrictState
from roster_pipeline.defs.freshness import is_overdue, next_scheduled_run
from roster_pipeline.registry.districts import District, Registry, Thresholds
from roster_pipeline.warehouse import ImportRun, Warehouse


@dataclass(frozen=True)
class DistrictActivity:
    """What the warehouse knows of a district's imports: the latest one, and the latest published one."""

    latest: ImportRun | None
    published: ImportRun | None


def district_activity(warehouse: Warehouse, registry: Registry) -> dict[str, DistrictActivity]:
    return {
        d: DistrictActivity(warehouse.latest_import(d), warehouse.last_published_import(d))
        for d in registry.districts
    }


def _cell(text: object, limit: int = 160) -> str:
    value = " ".join(str(text).split()).replace("|", "\\|")
    return value if len(value) <= limit else value[: limit - 3] + "... (in full below)"


def _utc(value: datetime | None) -> datetime | None:
    # SQLite gives naive datetimes back; everything the warehouse stores is UTC.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _when(value: datetime | None) -> str:
    value = _utc(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _last_import(run: ImportRun | None) -> str:
    if run is None:
        return "none yet"
    return (
        f"{_when(run.finished_at or run.started_at)}: import {run.import_id}, {run.sync_mode}, {run.status}"
    )


def _next_run(district: District, now: datetime) -> str:
    if not district.enabled:
        return "disabled"
    if district.csv_bundle is not None and district.csv_bundle.drop_folder is not None:
        return "when a bundle is dropped"
    upcoming = next_scheduled_run(district, now)
    return _when(upcoming) if upcoming else "manual"


def _pct(value: float | None) -> str:
    return "off" if value is None else f"{value:g}%"


def thresholds_text(thresholds: Thresholds) -> str:
    """The thresholds of the registry in one line; per-resource overrides named after it."""
    school = thresholds.per_school
    text = (
        f"deleted {_pct(thresholds.max_deleted_pct)}, updated {_pct(thresholds.max_updated_pct)}, "
        f"added {_pct(thresholds.max_added_pct)}, rejected {_pct(thresholds.max_rejected_pct)}, "
        f"none trips under {thresholds.min_changes} changes; per school: users -{school.max_user_drop_pct:g}%, "
        f"enrollments -{school.max_enrollment_drop_pct:g}% (at least {school.min_drop})"
    )
    for resource, override in sorted(thresholds.resources.items()):
        changed = ", ".join(
            f"{k.removeprefix('max_').removesuffix('_pct')} {v:g}{'' if k == 'min_changes' else '%'}"
            for k, v in override.model_dump().items()
            if v is not None
        )
        text += f"; {resource}: {changed}"
    return text


def status_markdown(
    registry: Registry,
    states: dict[str, DistrictState],
    held: dict[str, int | None],
    activity: dict[str, DistrictActivity] | None = None,
    now: datetime | None = None,
) -> str:
    now = now or datetime.now(UTC)
    activity = activity or {}
    lines = [
        "| district | name | enabled | state | since | by | held import | reason | pending | next run "
        "| last import | last published |",
        "| --- | --- | --- | --- | --- | --- | ---: | --- | --- | --- | --- | --- |",
    ]
    reasons: list[str] = []
    for district in registry.districts.values():
        state = states.get(district.id, DistrictState.running(district.id))
        known = activity.get(district.id, DistrictActivity(None, None))
        since = _when(state.paused_at) if state.paused else ""
        published_at = _utc(known.published.finished_at) if known.published else None
        published = _when(published_at)
        if is_overdue(district, published_at, now):
            published = f"**OVERDUE** {published}"
        lines.append(
            f"| {district.id} | {_cell(district.name)} | {'yes' if district.enabled else 'no'} | "
            f"{'PAUSED' if state.paused else 'running'} | {since} | {_cell(state.paused_by or '') if state.paused else ''} | "
            f"{held.get(district.id) or ''} | {_cell(state.reason or '') if state.paused else ''} | "
            f"{state.pending_action or ''} | {_next_run(district, now)} | {_cell(_last_import(known.latest))} | "
            f"{published} |"
        )
        if state.paused and state.reason:
            reasons.append(
                f"**{district.id}** ({district.name}), paused {since} by {state.paused_by or 'unknown'}:\n\n"
                + "\n".join(f"    {line}" for line in state.reason.splitlines())
            )
    if reasons:
        lines += ["", "### Why paused", "", *("\n\n".join(reasons).splitlines())]
    lines += ["", "### Thresholds in force", "", "| district | thresholds |", "| --- | --- |"]
    lines += [
        f"| {d.id} | {_cell(thresholds_text(d.thresholds), limit=10_000)} |"
        for d in registry.districts.values()
    ]
    return "\n".join(lines)
