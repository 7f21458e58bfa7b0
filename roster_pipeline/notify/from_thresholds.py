"""Bridge from the threshold checks' ``ThresholdReport`` (long tables) to the email's rows.

The checks keep one row per (resource or school, measure); the email shows one row per resource with
every measure against its limit, and one line per school that tripped.  Doing the reshaping here keeps
the sensor that sends the email free of table plumbing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, SupportsFloat

from roster_pipeline.notify.content import (
    FailedCheck,
    ResourceThresholdRow,
    SchoolThresholdRow,
    ThresholdStatus,
)

if TYPE_CHECKING:
    from roster_pipeline.thresholds import ThresholdReport

_MEASURES = ("added", "updated", "deleted", "rejected")
_EXCEEDED = "EXCEEDED"
_EXEMPT = "EXEMPT (first import)"


def _number(value: SupportsFloat | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def resource_rows(change: ThresholdReport) -> list[ResourceThresholdRow]:
    """One row per resource from a change report: counts, %, limits, and OK / EXCEEDED / EXEMPT."""
    rows: list[ResourceThresholdRow] = []
    table = change.table
    for resource in dict.fromkeys(table["resource"]):  # first-seen order
        part = table[table["resource"] == resource]
        counts: dict[str, int] = {}
        pcts: dict[str, float | None] = {}  # "<measure>_pct" and its limit "max_<measure>_pct"
        exceeded: list[str] = []
        published_before = fetched = 0
        for _, row in part.iterrows():
            measure = str(row["measure"]).removesuffix("_pct")
            if measure not in _MEASURES:
                continue
            counts[measure] = int(row["count"])
            pcts[f"{measure}_pct"] = _number(row["pct"])
            pcts[f"max_{measure}_pct"] = _number(row["threshold"])
            if measure == "rejected":
                fetched = int(row["base"])
            else:
                published_before = int(row["base"])
            if row["status"] == _EXCEEDED:
                exceeded.append(measure)
        # EXEMPT: a first import, whose change limits do not apply (its rejected-rows limit still does).
        status: ThresholdStatus = (
            "EXCEEDED" if exceeded else ("EXEMPT" if _EXEMPT in set(part["status"]) else "OK")
        )
        rows.append(
            ResourceThresholdRow(
                resource=str(resource),
                published_before=published_before,
                fetched=fetched,
                added=counts.get("added", 0),
                updated=counts.get("updated", 0),
                deleted=counts.get("deleted", 0),
                rejected=counts.get("rejected", 0),
                max_added_pct=pcts.get("max_added_pct"),
                max_updated_pct=pcts.get("max_updated_pct"),
                max_deleted_pct=pcts.get("max_deleted_pct"),
                max_rejected_pct=pcts.get("max_rejected_pct"),
                added_pct=pcts.get("added_pct"),
                updated_pct=pcts.get("updated_pct"),
                deleted_pct=pcts.get("deleted_pct"),
                rejected_pct=pcts.get("rejected_pct"),
                status=status,
                exceeded=tuple(exceeded),
            )
        )
    return rows


def school_rows(school: ThresholdReport) -> list[SchoolThresholdRow]:
    """The schools that tripped (EXCEEDED rows only), worst first as the report orders them."""
    rows: list[SchoolThresholdRow] = []
    for _, row in school.violations.iterrows():
        name = row.get("school_name")
        school_id = str(row["school_sourced_id"])
        rows.append(
            SchoolThresholdRow(
                school_name=name if isinstance(name, str) and name else school_id,
                school_id=school_id,
                resource=str(row["resource"]),
                before=int(row["base"]),
                after=int(row["after"]),
                threshold_pct=_number(row["threshold"]) or 0.0,
                drop=int(row["count"]),
                drop_pct=_number(row["pct"]),
            )
        )
    return rows


def failed_checks(*reports: tuple[str, ThresholdReport]) -> list[FailedCheck]:
    """``FailedCheck`` lines for the reports that did not pass: (check name, its summary sentence)."""
    return [FailedCheck(name, report.summary_line()) for name, report in reports if not report.passed]


__all__ = ["failed_checks", "resource_rows", "school_rows"]
