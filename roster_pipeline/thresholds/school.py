"""Per-school thresholds: one school losing its users or enrollments must be caught.

A district-wide 10% deletion limit cannot see one school of forty vanishing (2.5% of the district), yet
that is exactly the SIS mistake admins fear (a school mis-coded, closed by accident, or missing from the
export).  So each school is checked on its own:

- ``user_drop_pct`` (rows with resource ``users``) trips when the school's drop is strictly above
  ``max_user_drop_pct`` **and** the drop is at least ``min_drop`` (default 10) records, so a 4-student
  school losing 2 does not trip; ``enrollment_drop_pct`` likewise with ``max_enrollment_drop_pct``.
- Growth (a negative or zero drop) never trips.  Not applied to the first import: nothing was published.
"""

from __future__ import annotations

import pandas as pd

from roster_pipeline.registry.districts import SchoolThresholds
from roster_pipeline.thresholds.inputs import SchoolSummary, validate_input
from roster_pipeline.thresholds.report import ThresholdReport
from roster_pipeline.thresholds.rules import EXCEEDED, Rule, evaluate, severity_order

SCHOOL_RULES: tuple[Rule, ...] = (
    Rule(
        "user_drop_pct",
        "drop",
        "published_before",
        "drop_pct",
        "max_drop_pct",
        "min_drop",
        False,
        where=("resource", "users"),
    ),
    Rule(
        "enrollment_drop_pct",
        "drop",
        "published_before",
        "drop_pct",
        "max_drop_pct",
        "min_drop",
        False,
        where=("resource", "enrollments"),
    ),
)

_LIMIT_NAME = {"user_drop_pct": "max_user_drop_pct", "enrollment_drop_pct": "max_enrollment_drop_pct"}


def _message(district_id: str, row: pd.Series) -> str:
    name = row["school_name"] if isinstance(row["school_name"], str) and row["school_name"] else "(no name)"
    return (
        f"district {district_id!r}: school {name!r} ({row['school_sourced_id']}) {row['measure']} "
        f"{row['pct']:.2f}%: {row['resource']} would drop from {int(row['base']):,} to {int(row['after']):,} "
        f"({int(row['count']):,} fewer), above {_LIMIT_NAME[row['measure']]} {row['threshold']:g}% "
        f"(at least {int(row['min_count']):,} needed to trip)"
    )


def evaluate_school_thresholds(
    schools: pd.DataFrame,
    school_thresholds: SchoolThresholds,
    *,
    first_import: bool,
    district_id: str,
) -> ThresholdReport:
    """Check each school's users and enrollments drop (one row per school and resource).

    ``schools`` is validated first against ``SchoolSummary``; a malformed one raises
    ``ThresholdInputError``.  See the module docstring for the rules.
    """
    valid = validate_input(
        schools,
        SchoolSummary,
        what="school summary",
        district_id=district_id,
        key_columns=("school_sourced_id", "resource"),
    )
    frame = valid.reset_index(drop=True).copy()
    frame["max_drop_pct"] = (
        frame["resource"]
        .map(
            {
                "users": school_thresholds.max_user_drop_pct,
                "enrollments": school_thresholds.max_enrollment_drop_pct,
            }
        )
        .astype("float64")
    )
    frame["min_drop"] = int(school_thresholds.min_drop)
    frame["min_drop"] = frame["min_drop"].astype("int64")
    table = evaluate(
        frame,
        list(SCHOOL_RULES),
        first_import=first_import,
        keys=["school_sourced_id", "school_name", "resource"],
        carry=("after",),
        name=f"per-school thresholds of district {district_id}",
    )
    violations = severity_order(table[table["status"] == EXCEEDED])
    violations.insert(0, "district_id", district_id)
    violations["message"] = pd.Series(
        [_message(district_id, row) for _, row in violations.iterrows()], dtype="object"
    )
    return ThresholdReport(district_id, "school", first_import, table, violations.drop(columns=["status"]))
