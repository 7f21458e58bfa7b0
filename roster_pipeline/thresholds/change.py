"""District-wide change thresholds: would publishing this snapshot add, update, delete or reject too much?

Rules (the defaults come from ``Thresholds``; per-resource overrides and rollover relaxations apply
through ``Thresholds.for_resource``):

- ``deleted_pct`` / ``updated_pct`` / ``added_pct`` trip when the percentage of the resource's published
  rows is *strictly* above the limit (exactly 10% with a 10% limit passes) **and** the count is at least
  ``min_changes`` (default 25), so 5 changed records in a tiny district never trip a percentage.
  ``max_added_pct: null`` (the default) means growth never trips.  None of the three applies to a
  district's first import: there is nothing published to compare with.
- ``rejected_pct`` (rows quarantined by the schema checks, as a % of rows fetched) trips when strictly
  above ``max_rejected_pct`` **and** at least ``min(min_changes, REJECTED_FLOOR)`` rows were rejected.
  It applies to the first import too: a feed that fails validation is broken whether or not anything
  was published before.
"""

from __future__ import annotations

import pandas as pd

from roster_pipeline.registry.districts import ThresholdOverrides, Thresholds
from roster_pipeline.thresholds.inputs import ChangeSummary, validate_input
from roster_pipeline.thresholds.report import ThresholdReport
from roster_pipeline.thresholds.rules import EXCEEDED, Rule, evaluate, severity_order

# Why a separate, small floor for rejected rows (and not min_changes' 25): rejected rows are already
# quarantined — never staged, never published — and listed for the admin, so one stray bad row (1 of 30
# in a tiny district, 3.3%) must not hold the whole import back.  But rejects are the clearest sign of a
# broken feed, and a floor of 25 would let a 300-enrollment district publish with 24 (8%) of its rows
# missing.  Five rows is "a pattern, not an accident".  The floor never exceeds min_changes, so a
# district that tightens min_changes (to 0, say) tightens its reject check with it.
REJECTED_FLOOR = 5

CHANGE_RULES: tuple[Rule, ...] = (
    Rule(
        "deleted_pct", "deleted", "published_before", "deleted_pct", "max_deleted_pct", "min_changes", False
    ),
    Rule(
        "updated_pct", "updated", "published_before", "updated_pct", "max_updated_pct", "min_changes", False
    ),
    Rule("added_pct", "added", "published_before", "added_pct", "max_added_pct", "min_changes", False),
    Rule("rejected_pct", "rejected", "fetched", "rejected_pct", "max_rejected_pct", "min_rejected", True),
)

_NOUN = {"deleted_pct": "deleted", "updated_pct": "updated", "added_pct": "added", "rejected_pct": "rejected"}


def with_thresholds(
    summary: pd.DataFrame, thresholds: Thresholds, relaxed: ThresholdOverrides | None, rejected_floor: int
) -> pd.DataFrame:
    """The summary with each resource's effective thresholds as columns (NaN = no limit)."""
    frame = summary.copy()
    effective = [thresholds.for_resource(name, relaxed) for name in frame["resource"]]
    frame["max_added_pct"] = [float("nan") if e.max_added_pct is None else e.max_added_pct for e in effective]
    frame["max_deleted_pct"] = [e.max_deleted_pct for e in effective]
    frame["max_updated_pct"] = [e.max_updated_pct for e in effective]
    frame["max_rejected_pct"] = [e.max_rejected_pct for e in effective]
    frame["min_changes"] = [e.min_changes for e in effective]
    frame["min_rejected"] = [min(e.min_changes, rejected_floor) for e in effective]
    for column in ("max_added_pct", "max_deleted_pct", "max_updated_pct", "max_rejected_pct"):
        frame[column] = frame[column].astype("float64")
    for column in ("min_changes", "min_rejected"):
        frame[column] = frame[column].astype("int64")
    return frame


def _message(district_id: str, row: pd.Series) -> str:
    measure = row["measure"]
    of = "fetched" if measure == "rejected_pct" else "published"
    return (
        f"district {district_id!r}: resource {row['resource']!r} {measure} {row['pct']:.2f}% "
        f"({int(row['count']):,} {_NOUN[measure]} of {int(row['base']):,} {of}) exceeds the limit of "
        f"{row['threshold']:g}% (at least {int(row['min_count']):,} rows needed to trip)"
    )


def evaluate_change_thresholds(
    summary: pd.DataFrame,
    thresholds: Thresholds,
    *,
    first_import: bool,
    relaxed: ThresholdOverrides | None = None,
    district_id: str,
    rejected_floor: int = REJECTED_FLOOR,
) -> ThresholdReport:
    """Check one district's change summary (one row per resource) against its thresholds.

    ``summary`` is validated first against ``ChangeSummary``; a malformed one raises
    ``ThresholdInputError``.  ``relaxed`` are the rollover window's values (``Rollover.relaxed_thresholds``)
    and win over the per-resource overrides.  See the module docstring for the rules.
    """
    valid = validate_input(
        summary, ChangeSummary, what="change summary", district_id=district_id, key_columns=("resource",)
    )
    frame = with_thresholds(valid.reset_index(drop=True), thresholds, relaxed, rejected_floor)
    table = evaluate(
        frame,
        list(CHANGE_RULES),
        first_import=first_import,
        keys=["resource"],
        name=f"change thresholds of district {district_id}",
    )
    violations = severity_order(table[table["status"] == EXCEEDED])
    violations.insert(0, "district_id", district_id)
    violations["message"] = pd.Series(
        [_message(district_id, row) for _, row in violations.iterrows()], dtype="object"
    )
    return ThresholdReport(district_id, "change", first_import, table, violations.drop(columns=["status"]))
