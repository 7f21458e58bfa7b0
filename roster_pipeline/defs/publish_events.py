"""The materializations of ``published_roster`` that a review action records on the district's partition.

A sync run materializes ``published_roster`` itself.  An approve or an undo changes the published roster
outside any sync run (from a review job or from ``roster-pipeline review``), and without an event of its
own the district's partition would keep showing the previous import as what is published.  Both the
review jobs (``context.log_event``) and the CLI (``instance.report_runless_asset_event``) record the same
event built here, so the UI says the same thing whichever way the admin acted.
"""

from __future__ import annotations

import dagster as dg

from roster_pipeline.control import undo as undo_action
from roster_pipeline.control.review import ReviewOutcome
from roster_pipeline.warehouse import UndoResult, Warehouse

from .assets import changes_table_markdown

PUBLISHED_ROSTER = "published_roster"
TOTALS = ("fetched", "added", "updated", "deleted", "unchanged")


def approved_materialization(
    warehouse: Warehouse, outcome: ReviewOutcome, reviewer: str, note: str = ""
) -> dg.AssetMaterialization:
    """The approved import, with the same figures a sync run's publish records, plus who approved it."""
    assert outcome.import_id is not None and outcome.published is not None, (
        "only a published approve has figures"
    )
    published = dict(outcome.published)
    totals = {key: sum(getattr(c, key) for c in published.values()) for key in TOTALS}
    return dg.AssetMaterialization(
        asset_key=PUBLISHED_ROSTER,
        partition=outcome.district_id,
        description=f"import {outcome.import_id} approved by {reviewer} (thresholds overridden)",
        metadata={
            "district": outcome.district_id,
            "import_id": outcome.import_id,
            "action": "approve",
            "reviewer": reviewer,
            "note": note,
            **{f"total_{k}": v for k, v in totals.items()},
            "changes": dg.MetadataValue.md(changes_table_markdown(published)),
            **{
                f"{name}_current_rows": n for name, n in warehouse.current_counts(outcome.district_id).items()
            },
        },
    )


def undone_materialization(district_id: str, result: UndoResult) -> dg.AssetMaterialization:
    """The district's roster after an undo: what was restored and removed, and who undid which import."""
    totals = result.totals()
    return dg.AssetMaterialization(
        asset_key=PUBLISHED_ROSTER,
        partition=district_id,
        description=f"import {result.import_id} undone by {result.undone_by}",
        metadata={
            "district": district_id,
            "action": "undo",
            "reviewer": result.undone_by,
            "undone_import_id": result.import_id,
            "undone_by": result.undone_by,
            "note": result.note or "",
            "forced": result.forced,
            "restored": totals["restored"],
            "removed": totals["removed"],
            "unarchived": totals["unarchived"],
            "current_school_year": result.current_school_year
            if result.current_school_year is not None
            else "",
            "changes": dg.MetadataValue.md("```\n" + undo_action.describe(result) + "\n```"),
        },
    )
