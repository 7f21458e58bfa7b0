"""Which sync mode a run uses (``full`` or ``delta``) and, for a delta, from when.

Why a module of its own: the mode is decided once, when the import opens, from (in this order) the run
tag ``roster/sync_mode`` (set by the schedules, or by hand in the UI/CLI), the run config of
``roster_import``, and the district's plan for today in its own timezone.  A delta needs a starting
point: the start of the last *published* import of the same district and school year, minus the
district's ``delta_overlap_minutes`` (records changed while that import was pulling are fetched again
rather than missed).  Without such an import a delta falls back to full, and says so.

The mode is then stored in ``import_runs``; the resource assets read it back from there and re-derive
``since`` from the same published import (the latest one *before* this import), so every resource of
one import filters on exactly the same instant without any extra column or cross-asset state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Literal, cast

from roster_pipeline.pipeline.run_tags import REVIEW_ACTION_TAG, SYNC_MODE_TAG, SYNC_MODES, SyncMode
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.registry.districts import District
from roster_pipeline.warehouse import ImportRun, Warehouse

ModeSource = Literal["tag", "config", "review", "plan"]


#: The ``since`` of a delta with no published import to count from (a CSV delta bundle as a district's first
#: import): everything the bundle delivers is new, and, being a delta, nothing is inferred deleted.
DELTA_FROM_THE_START = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class SyncModeError(ValueError):
    """A run asked for a sync mode that does not exist (a typo in a tag or the launchpad config)."""


@dataclass(frozen=True)
class ModeRequest:
    """The mode a run asked for and where that came from (shown in the run's metadata)."""

    mode: SyncMode
    source: ModeSource


@dataclass(frozen=True)
class ModeDecision:
    """The mode an import actually runs in; ``since`` is set exactly when ``mode`` is delta."""

    requested: ModeRequest
    mode: SyncMode
    since: dt.datetime | None = None
    base_import_id: int | None = None  # the published import the delta counts from
    fallback_reason: str | None = None  # why a requested delta runs as full
    vanish_probe: str | None = None  # what a delta's count probe found (see ``escalate_on_vanish``)

    def describe(self) -> str:
        origin = {
            "tag": f"run tag {SYNC_MODE_TAG}",
            "config": "run config",
            "review": "a review reprocess",
            "plan": "the district's plan",
        }
        text = f"{self.mode} sync (requested {self.requested.mode} by {origin[self.requested.source]})"
        if self.since is not None and self.base_import_id is None:
            text += (
                ", no published import to count from: everything delivered is new, nothing inferred deleted"
            )
        elif self.since is not None:
            text += f", records modified after {self.since.isoformat()} (import {self.base_import_id} minus overlap)"
        if self.fallback_reason:
            text += f"; {self.fallback_reason}"
        elif self.vanish_probe:
            text += f"; {self.vanish_probe}"
        return text


def _checked(value: str, where: str) -> SyncMode:
    mode = value.strip().lower()
    if mode not in SYNC_MODES:
        raise SyncModeError(f"{where}: sync mode must be 'full' or 'delta', got {value!r}")
    return cast(SyncMode, mode)


def local_date(district: District, now: dt.datetime | None = None) -> dt.date:
    """Today in the district's timezone: a district's plan follows its own calendar, not UTC's."""
    moment = now or dt.datetime.now(dt.UTC)
    return moment.astimezone(district.zone).date()


def requested_mode(
    district: District,
    tags: Mapping[str, str],
    config_mode: str | None = None,
    now: dt.datetime | None = None,
) -> ModeRequest:
    """Tag, else run config, else full for a review reprocess, else the district's plan for its local today.

    A reprocess follows a held import (often a mass vanish that only a full pull can see), so unless the
    admin asked for a mode it re-checks the whole snapshot.
    """
    if tags.get(SYNC_MODE_TAG):
        return ModeRequest(_checked(tags[SYNC_MODE_TAG], f"run tag {SYNC_MODE_TAG}"), "tag")
    if config_mode:
        return ModeRequest(_checked(config_mode, "roster_import config sync_mode"), "config")
    if tags.get(REVIEW_ACTION_TAG):
        return ModeRequest("full", "review")
    return ModeRequest(district.schedule.sync_mode_on(local_date(district, now)), "plan")


def _aware(moment: dt.datetime) -> dt.datetime:
    # SQLite hands timestamps back naive; the warehouse writes them in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def delta_base(
    warehouse: Warehouse, district_id: str, school_year: int, before_import_id: int | None = None
) -> ImportRun | None:
    """The latest published import of the district and school year (before ``before_import_id``).

    The same school year only: after a rollover the first import of the new year must be a full one.
    """
    return warehouse.last_published_import(
        district_id, school_year=school_year, before_import_id=before_import_id
    )


def since_from(base: ImportRun, district: District) -> dt.datetime:
    """Start of the base import minus the overlap, in UTC."""
    overlap = dt.timedelta(minutes=district.schedule.delta_overlap_minutes)
    return (_aware(base.started_at) - overlap).astimezone(dt.UTC)


def decide_mode(
    warehouse: Warehouse,
    district: District,
    school_year: int,
    request: ModeRequest,
    delivered: SyncMode | None = None,
) -> ModeDecision:
    """Turn a request into the mode the import opens with (a delta with nothing to count from: full).

    ``delivered``: the mode the source's data itself has, when the source decides rather than the run
    (a CSV bundle: its manifest's bulk or delta files).  Then the data wins over the request: a delta
    bundle is a delta import whatever was asked (a full import would infer every record it lacks
    deleted), counting from the last published import or, with none, from the start
    (``DELTA_FROM_THE_START``); a bulk bundle is a full import.  A request it overrides is noted in
    ``fallback_reason`` (shown as a warning and in the run's metadata).
    """
    if delivered is not None:
        note = None
        if delivered != request.mode:
            note = (
                f"district {district.id}: {request.mode} sync requested, but the CSV bundle delivers "
                f"{'delta files (changes only)' if delivered == 'delta' else 'bulk files (every record)'}: "
                f"running a {delivered} import"
            )
        if delivered == "full":
            return ModeDecision(request, "full", fallback_reason=note)
        base = delta_base(warehouse, district.id, school_year)
        if base is None:
            return ModeDecision(request, "delta", since=DELTA_FROM_THE_START, fallback_reason=note)
        return ModeDecision(
            request,
            "delta",
            since=since_from(base, district),
            base_import_id=base.import_id,
            fallback_reason=note,
        )
    if request.mode == "full":
        return ModeDecision(request, "full")
    base = delta_base(warehouse, district.id, school_year)
    if base is None:
        reason = (
            f"falling back to full: district {district.id} has no published import for school year "
            f"{school_year} to count a delta from"
        )
        return ModeDecision(request, "full", fallback_reason=reason)
    return ModeDecision(request, "delta", since=since_from(base, district), base_import_id=base.import_id)


def since_for_import(warehouse: Warehouse, district: District, import_id: int) -> dt.datetime | None:
    """The ``since`` of an open import: None for a full import, else from the import it follows."""
    run = warehouse.get_import(import_id)
    if run.sync_mode != "delta":
        return None
    base = delta_base(warehouse, run.district_id, run.school_year, before_import_id=import_id)
    if base is None and district.import_method == "csv_bundle":
        return DELTA_FROM_THE_START  # a delta bundle as the first import (see decide_mode)
    if base is None:  # only if published imports were removed by hand after this one opened
        raise SyncModeError(
            f"district {district.id}: delta import {import_id} has no earlier published import to count from; "
            "launch a full sync (tag roster/sync_mode=full)"
        )
    return since_from(base, district)


__all__ = [
    "DELTA_FROM_THE_START",
    "SYNC_MODE_TAG",
    "ModeDecision",
    "ModeRequest",
    "SyncMode",
    "SyncModeError",
    "decide_mode",
    "delta_base",
    "local_date",
    "requested_mode",
    "since_for_import",
]


def escalate_on_vanish(
    decision: ModeDecision,
    district: District,
    published: Mapping[str, int],
    served_count: Callable[[str], int | None],
) -> ModeDecision:
    """A delta whose SIS now serves far fewer records than are published runs full instead.

    A delta asks only for records modified since the last import, so records that vanish from the SIS
    (a botched export, a wiped section table) never show up in it: without this, a mass vanish waits for
    the next full sync, up to a week. So before a delta opens, every collection is asked for its count
    (``served_count``: one request of one record each). Where the SIS serves fewer than are published, by
    more than the district's ``max_deleted_pct`` and at least ``min_changes`` records (the bounds at which
    the full import's ``change_thresholds`` would hold it), the import runs full: the full pull sees the
    vanish, the checks hold it, nothing is published. Smaller drops stay deltas and are settled by the next
    full sync. Only ever a reason to pull more: a count never deletes anything.

    ``published``: the district's published, not deleted rows per resource (``Warehouse.current_counts``).
    """
    if decision.mode != "delta" or decision.base_import_id is None:
        return decision
    excluded = district.excluded_resources()
    vanished: list[str] = []
    uncounted: list[str] = []
    for resource in RESOURCES:
        before = published.get(resource.name, 0)
        if resource.name in excluded or before == 0:
            continue
        served = served_count(resource.collection)
        if served is None:
            uncounted.append(resource.name)
            continue
        missing = before - served
        bounds = district.thresholds.for_resource(resource.name)
        if missing >= max(bounds.min_changes, 1) and 100.0 * missing / before > bounds.max_deleted_pct:
            vanished.append(
                f"{resource.name}: the SIS serves {served:,}, {before:,} are published "
                f"({100.0 * missing / before:.1f}% fewer; max_deleted_pct {bounds.max_deleted_pct:g})"
            )
    if vanished:
        reason = (
            f"running full: district {district.id}'s SIS serves far fewer records than are published, which a "
            f"delta cannot see vanish ({'; '.join(vanished)})"
        )
        return ModeDecision(decision.requested, "full", fallback_reason=reason, vanish_probe=reason)
    note = "every collection's count is within the thresholds of what is published"
    if uncounted:
        note = (
            f"the SIS sends no count for {', '.join(uncounted)}: records vanishing there are seen by the next "
            f"full sync; {note.replace('every', 'every other')}"
        )
    return replace(decision, vanish_probe=f"vanish probe: {note}")
