"""The threshold checks' reports, reshaped into the Check Your Data email's rows, and rendered."""

from __future__ import annotations

import pandas as pd

from roster_pipeline.notify import render_check_your_data
from roster_pipeline.notify.from_thresholds import failed_checks, resource_rows, school_rows
from roster_pipeline.registry.districts import SchoolThresholds, Thresholds
from roster_pipeline.thresholds import evaluate_change_thresholds, evaluate_school_thresholds
from roster_pipeline_tests.notify_helpers import ADMINS, SENDER, check_your_data_report, parts


def _change_row(resource: str, before: int, *, deleted: int = 0, updated: int = 0, rejected: int = 0) -> dict:
    fetched = before - deleted + rejected
    return {
        "resource": resource,
        "published_before": before,
        "fetched": fetched,
        "added": 0,
        "updated": updated,
        "deleted": deleted,
        "unchanged": before - updated - deleted,
        "tobedeleted": 0,
        "rejected": rejected,
        "added_pct": 0.0,
        "updated_pct": 100.0 * updated / before,
        "deleted_pct": 100.0 * deleted / before,
        "rejected_pct": 100.0 * rejected / fetched,
    }


def test_change_and_school_reports_become_email_rows() -> None:
    change = evaluate_change_thresholds(
        pd.DataFrame(
            [_change_row("users", 1000, updated=10), _change_row("enrollments", 5000, deleted=3100)]
        ),
        Thresholds(),
        first_import=False,
        district_id="springfield",
    )
    school = evaluate_school_thresholds(
        pd.DataFrame(
            [
                {
                    "school_sourced_id": "sch-3",
                    "school_name": "Lincoln <Elementary>",
                    "resource": "enrollments",
                    "published_before": 800,
                    "after": 40,
                    "drop": 760,
                    "drop_pct": 95.0,
                }
            ]
        ),
        SchoolThresholds(),
        first_import=False,
        district_id="springfield",
    )

    rows = {r.resource: r for r in resource_rows(change)}
    assert (
        rows["users"].status == "OK"
        and rows["users"].updated == 10
        and rows["users"].published_before == 1000
    )
    enrollments = rows["enrollments"]
    assert enrollments.status == "EXCEEDED" and enrollments.exceeded == ("deleted",)
    assert (enrollments.deleted, enrollments.max_deleted_pct, enrollments.fetched) == (3100, 10.0, 1900)
    assert enrollments.max_added_pct is None  # "no limit" by default
    assert round(enrollments.deleted_pct or 0, 1) == 62.0

    [lincoln] = school_rows(school)
    assert (lincoln.school_id, lincoln.before, lincoln.after, lincoln.drop, lincoln.threshold_pct) == (
        "sch-3",
        800,
        40,
        760,
        20.0,
    )

    checks = failed_checks(("enrollments_thresholds", change), ("school_thresholds", school))
    assert [c.name for c in checks] == ["enrollments_thresholds", "school_thresholds"]

    message = render_check_your_data(
        check_your_data_report(resources=list(rows.values()), schools=[lincoln], failed_checks=checks),
        ADMINS,
        SENDER,
    )
    text, html = parts(message)
    assert "3,100 (62%)" in text and "limit 10%" in text and "Lincoln <Elementary> (sch-3)" in text
    assert "Lincoln &lt;Elementary&gt;" in html


def test_first_import_rows_are_exempt() -> None:
    change = evaluate_change_thresholds(
        pd.DataFrame([_change_row("users", 1000, deleted=900)]),
        Thresholds(),
        first_import=True,
        district_id="springfield",
    )
    [users] = resource_rows(change)
    assert users.status == "EXEMPT" and users.exceeded == ()
