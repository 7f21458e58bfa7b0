"""How an admitted sync run imports in a rollover: additions_only and past school years.  Kept apart from
``rollover.py`` so the policy stays pure.

1. ``roster_pipeline.pipeline.admission`` decides before the import is opened (no SIS request) whether the run may
   sync at all, and hands over the run's rollover policy;
2. ``start_rollover_import`` once the import exists: refuses a run that explicitly asked for a past school
   year (run tag ``roster/school_year``), records ``additions_only`` on the import, returns metadata;
3. the checks call ``rollover.policy_for_run`` for the relaxed thresholds of the run's date (or None).
"""

from __future__ import annotations

from collections.abc import Mapping

from roster_pipeline.pipeline.rollover import RolloverPolicy
from roster_pipeline.pipeline.run_tags import SCHOOL_YEAR_TAG
from roster_pipeline.registry.districts import District
from roster_pipeline.warehouse import Warehouse, WarehouseError
from roster_pipeline.warehouse.archive import PastSchoolYearError


def _requested_year(district: District, tags: Mapping[str, str]) -> int | None:
    text = (tags.get(SCHOOL_YEAR_TAG) or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise WarehouseError(
            f"district {district.id!r}: run tag {SCHOOL_YEAR_TAG}={text!r} is not a year"
        ) from None


def start_rollover_import(
    warehouse: Warehouse, district: District, import_id: int, policy: RolloverPolicy, tags: Mapping[str, str]
) -> dict[str, str | bool | int]:
    """Apply the policy to the opened import; on a refusal the import is failed with the reason."""
    run = warehouse.get_import(import_id)
    try:
        requested = _requested_year(district, tags)
        if requested is not None:
            current = warehouse.current_school_year(district.id)
            if current is not None and requested < current:
                raise PastSchoolYearError(district.id, requested, current)
            if requested != run.school_year:
                raise WarehouseError(
                    f"district {district.id!r}: this run asked for school year {requested} (run tag "
                    f"{SCHOOL_YEAR_TAG}) but the SIS serves {run.school_year}; OneRoster serves only the active "
                    "year, so a run cannot import another one"
                )
        if policy.additions_only:
            warehouse.set_additions_only(import_id)
    except Exception as exc:
        warehouse.fail_import(import_id, f"rollover: {exc}")
        raise
    current = warehouse.current_school_year(district.id)
    metadata: dict[str, str | bool | int] = dict(policy.metadata())
    if current is not None and run.school_year > current:
        metadata["rollover"] = f"new school year {run.school_year}: publishing archives {current} and older"
    return metadata
