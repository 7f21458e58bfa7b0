"""The figures of the two emails equal what the warehouse and the checks recorded.

Built from a real Warehouse on SQLite and Postgres through the same report builders the control sensor
uses, then rendered: the numbers an admin reads must be the ones ``checked_snapshot`` judged, and every
fetched record must be explained by a column.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from roster_pipeline.control.reports import check_your_data_report, import_results_report
from roster_pipeline.notify import render_check_your_data, render_import_results
from roster_pipeline.records.rejects import Reject
from roster_pipeline.registry.districts import District
from roster_pipeline.warehouse import Warehouse

from .warehouse_helpers import YEAR, enrollment, user

DISTRICT = District(
    id="springfield",
    name="Springfield",
    import_method="csv_bundle",
    csv_bundle={"path": "/x.zip"},
    admin_emails=["admin@springfield.example"],
)
SENDER = "roster@example.org"


def bad_email(resource: str, sourced_id: str, severity: str = "error") -> Reject:
    return Reject(
        resource, sourced_id, "email", "format", "x", f"{resource} {sourced_id}: bad email", severity
    )


def text_of(message: Any) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def publish_checked(wh: Warehouse, import_id: int) -> dict[str, dict[str, Any]]:
    """Publish as the pipeline does: checked_snapshot's change summary first, then the publish."""
    summary = {row["resource"]: row for row in wh.change_summary(import_id).to_dict("records")}
    wh.publish(import_id)
    return summary


def test_delta_import_results_use_the_checks_base_not_the_delta_rows(wh: Warehouse) -> None:
    """Item 1: failed before the fix with users published_before 1 and updated 100% (updated + deleted +
    unchanged of a delta that only saw the one changed user), while the checks said 20 and 5.0%."""
    full = wh.begin_import("springfield", "run-1", YEAR, "full")
    wh.stage(full, "users", [user(n) for n in range(20)])
    first = publish_checked(wh, full)
    delta = wh.begin_import("springfield", "run-2", YEAR, "delta")
    wh.stage(delta, "users", [user(3, givenName="Grace")])
    checked = publish_checked(wh, delta)
    assert (checked["users"]["published_before"], checked["users"]["updated_pct"]) == (20, 5.0)

    for import_id, summary in ((full, first), (delta, checked)):
        report = import_results_report(wh, DISTRICT, wh.get_import(import_id))
        row = next(r for r in report.resources if r.resource == "users")
        assert row.published_before == summary["users"]["published_before"]
        assert row.fetched == summary["users"]["fetched"]
        for measure in ("added", "updated", "deleted"):
            assert (getattr(row, f"{measure}_pct") or 0.0) == pytest.approx(
                summary["users"][f"{measure}_pct"]
            )
    text = text_of(render_import_results(report, DISTRICT.admin_emails, SENDER))
    users_line = next(line for line in text.splitlines() if line.startswith("users"))
    assert "20" in users_line.split()[1] and "1 (5.0%)" in users_line and "100%" not in users_line

    # a later import does not change what an earlier one's email says
    wh.stage(later := wh.begin_import("springfield", "run-3", YEAR, "delta"), "users", [user(30)])
    wh.publish(later)
    assert wh.published_before(delta)["users"] == 20 and wh.published_before(later)["users"] == 20


def identity_holds(report: Any) -> dict[str, tuple[int, int]]:
    return {r.resource: (r.fetched, r.accounted) for r in report.resources}


def test_every_fetched_record_is_accounted_for_in_full_and_delta(wh: Warehouse) -> None:
    """Item 2: failed before the fix: the row had no column for the 2 enrollments first seen marked
    tobedeleted, nor for the duplicate user copy, so fetched did not add up."""
    full = wh.begin_import("springfield", "run-1", YEAR, "full")
    wh.stage(full, "users", [user(n) for n in range(6)] + [user(1)])  # one duplicate copy
    wh.record_rejects(full, [bad_email("users", "usr-9")])  # kept out of staging
    wh.stage(
        full,
        "enrollments",
        [enrollment(n) for n in range(4)] + [enrollment(n, status="tobedeleted") for n in (4, 5)],
    )
    wh.reject_staged(
        full, [Reject("enrollments", "enr-3", "user.sourcedId", "reference", "usr-3", "no such user")]
    )
    checked = publish_checked(wh, full)
    report = import_results_report(wh, DISTRICT, wh.get_import(full))
    rows = {r.resource: r for r in report.resources}
    assert (
        rows["enrollments"].fetched,
        rows["enrollments"].added,
        rows["enrollments"].tobedeleted,
        rows["enrollments"].rejected,
    ) == (6, 3, 2, 1)
    assert (rows["users"].fetched, rows["users"].added, rows["users"].duplicates, rows["users"].rejected) == (
        8,
        6,
        1,
        1,
    )
    assert all(fetched == accounted for fetched, accounted in identity_holds(report).values()), (
        identity_holds(report)
    )
    assert {name: r.fetched for name, r in rows.items()} == {name: checked[name]["fetched"] for name in rows}

    delta = wh.begin_import("springfield", "run-2", YEAR, "delta")
    wh.stage(delta, "users", [user(0, givenName="Grace"), user(1), user(2, status="tobedeleted"), user(7)])
    wh.stage(delta, "enrollments", [enrollment(0, status="tobedeleted"), enrollment(9)])
    publish_checked(wh, delta)
    report = import_results_report(wh, DISTRICT, wh.get_import(delta))
    rows = {r.resource: r for r in report.resources}
    assert (
        rows["users"].updated,
        rows["users"].unchanged,
        rows["users"].tobedeleted,
        rows["users"].deleted,
        rows["users"].added,
    ) == (1, 1, 1, 1, 1)
    assert all(fetched == accounted for fetched, accounted in identity_holds(report).values()), (
        identity_holds(report)
    )

    text = text_of(render_import_results(report, DISTRICT.admin_emails, SENDER))
    header = next(line for line in text.splitlines() if line.startswith("Resource"))
    for column in ("Marked tobedeleted", "Withheld", "Duplicates", "Rejected", "Deleted"):
        assert column in header


def attached_csv(message: Any, filename: str) -> list[dict[str, str]]:
    part = next(p for p in message.iter_attachments() if p.get_filename() == filename)
    return list(csv.DictReader(io.StringIO(part.get_payload(decode=True).decode("utf-8-sig"))))


# the base of the percentages is named "published" rows; anything else saying published is a false claim
PERCENT_BASE = ("% of published rows", "rows published before this import", "Published before")


def test_held_import_lists_its_warnings_where_it_says_and_never_claims_a_publish(wh: Warehouse) -> None:
    """Item 3: failed before the fix: the email said "2 warning(s) ... (records published anyway; they are
    in rejected_rows.csv ...)" while that file held only the error and nothing was published."""
    full = wh.begin_import("springfield", "run-1", YEAR, "full")
    wh.stage(full, "users", [user(n) for n in range(4)])
    wh.record_rejects(
        full,
        [
            bad_email("users", "usr-9"),
            bad_email("users", "usr-1", "warning"),
            bad_email("users", "usr-2", "warning"),
        ],
    )
    wh.hold_import(full, "users_valid_records: 20.0% of users rejected (limit 1%)")
    report = check_your_data_report(wh, DISTRICT, wh.get_import(full))
    message = render_check_your_data(report, DISTRICT.admin_emails, SENDER)
    text = text_of(message)

    rows = attached_csv(message, "rejected_rows.csv")
    assert sorted((r["sourced_id"], r["severity"]) for r in rows) == [
        ("usr-1", "warning"),
        ("usr-2", "warning"),
        ("usr-9", "error"),
    ]
    assert "2 warning(s) were also reported" in text
    assert "listed in rejected_rows.csv with severity 'warning'" in text
    assert "1 rejected row(s) (severity 'error'" in text and "2 warning(s) (severity 'warning'" in text
    remainder = text
    for phrase in PERCENT_BASE:
        remainder = remainder.replace(phrase, "")
    assert "published" not in remainder.lower(), [
        line for line in text.splitlines() if "published" in line.lower()
    ]


def test_published_before_survives_an_undo_and_later_imports(wh: Warehouse) -> None:
    """The base of an import's email does not move when later imports are published or undone."""
    first = wh.begin_import("springfield", "run-1", YEAR, "full")
    wh.stage(first, "users", [user(n) for n in range(10)])
    wh.stage(first, "enrollments", [enrollment(n) for n in range(4)])
    wh.publish(first)
    undone = wh.begin_import("springfield", "run-2", YEAR, "delta")
    wh.stage(undone, "users", [user(n) for n in range(10, 15)])
    wh.publish(undone)
    wh.undo_last_import("springfield", undone_by="Jo Admin")
    later = wh.begin_import("springfield", "run-3", YEAR, "full")
    wh.stage(later, "users", [user(n) for n in range(8)])  # 2 vanish
    checked = publish_checked(wh, later)
    assert wh.published_before(first)["users"] == 0 and wh.published_before(first)["enrollments"] == 0
    assert wh.published_before(undone)["users"] == 10
    assert wh.published_before(later)["users"] == checked["users"]["published_before"] == 10
    assert wh.published_before(later)["enrollments"] == checked["enrollments"]["published_before"] == 4
