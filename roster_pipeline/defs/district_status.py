"""The ``district_status`` asset: every district's state as one table in the UI.

Recorded by the control sensor (pause, resume), the review jobs and every publish; kept in a module of
its own because all three record it, and the publish asset must not import the sensors.
"""

from __future__ import annotations

import dagster as dg

from roster_pipeline.control.status import district_activity, status_markdown
from roster_pipeline.control.store import all_states
from roster_pipeline.registry.districts import Registry
from roster_pipeline.warehouse import Warehouse

DISTRICT_STATUS_ASSET = "district_status"


def district_status_spec() -> dg.AssetSpec:
    return dg.AssetSpec(
        DISTRICT_STATUS_ASSET,
        group_name="roster_control",
        kinds={"sql"},
        description=(
            "Every district: running or PAUSED, since when, by whom, why (in full below the table), the held "
            "import, any pending review action, the next scheduled run, the last import (when, full or delta, "
            "outcome), the last publish (OVERDUE when its schedule is missed) and the thresholds in force. Recorded by the district_control sensor and the review jobs whenever a district "
            "is paused or resumed; the source of truth is the warehouse table district_state."
        ),
    )


def district_status_event(warehouse: Warehouse, registry: Registry) -> dg.AssetMaterialization:
    states = all_states(warehouse.engine)
    held = {d: (run.import_id if (run := warehouse.held_import(d)) else None) for d in registry.districts}
    paused = sorted(d for d, s in states.items() if s.paused and d in registry.districts)
    return dg.AssetMaterialization(
        asset_key=DISTRICT_STATUS_ASSET,
        metadata={
            "districts": len(registry.districts),
            "paused": len(paused),
            "paused_districts": ", ".join(paused) or "none",
            "status": dg.MetadataValue.md(
                status_markdown(registry, states, held, district_activity(warehouse, registry))
            ),
        },
    )
