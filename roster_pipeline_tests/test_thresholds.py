"""Import thresholds: every rule at and around its boundary, for the district and per school.

Pure pandas: the summaries are built here exactly as the warehouse builder produces them.
"""

from __future__ import annotations

import numbers

import pandas as pd
import pytest

from roster_pipeline.registry.districts import SchoolThresholds, ThresholdOverrides, Thresholds
from roster_pipeline.thresholds import (
    BELOW_MINIMUM,
    EXCEEDED,
    EXEMPT_FIRST_IMPORT,
    OK,
    REJECTED_FLOOR,
    ThresholdInputError,
    ThresholdReport,
    evaluate_change_thresholds,
    evaluate_school_thresholds,
)

DISTRICT = "springfield"


def _pct(count: int, base: int) -> float:
    return 100.0 * count / base if base else 0.0


def change_row(
    resource: str,
    published_before: int,
    *,
    added: int = 0,
    updated: int = 0,
    deleted: int = 0,
    rejected: int = 0,
    fetched: int | None = None,
) -> dict[str, object]:
    """One change-summary row, percentages computed as the warehouse builder does."""
    if fetched is None:
        fetched = published_before - deleted + added + rejected
    return {
        "resource": resource,
        "published_before": published_before,
        "fetched": fetched,
        "added": added,
        "updated": updated,
        "deleted": deleted,
        "unchanged": max(published_before - updated - deleted, 0),
        "tobedeleted": 0,
        "rejected": rejected,
        "added_pct": _pct(added, published_before),
        "updated_pct": _pct(updated, published_before),
        "deleted_pct": _pct(deleted, published_before),
        "rejected_pct": _pct(rejected, fetched),
    }


def school_row(
    school: str, resource: str, published_before: int, after: int, name: str | None = None
) -> dict:
    drop = published_before - after
    return {
        "school_sourced_id": school,
        "school_name": name if name is not None else f"{school.title()} School",
        "resource": resource,
        "published_before": published_before,
        "after": after,
        "drop": drop,
        "drop_pct": _pct(drop, published_before),
    }


def changes(
    *rows: dict,
    thresholds: Thresholds | None = None,
    first_import: bool = False,
    relaxed: ThresholdOverrides | None = None,
) -> ThresholdReport:
    return evaluate_change_thresholds(
        pd.DataFrame(list(rows)),
        thresholds or Thresholds(),
        first_import=first_import,
        relaxed=relaxed,
        district_id=DISTRICT,
    )


def schools(
    *rows: dict, school_thresholds: SchoolThresholds | None = None, first_import: bool = False
) -> ThresholdReport:
    return evaluate_school_thresholds(
        pd.DataFrame(list(rows)),
        school_thresholds or SchoolThresholds(),
        first_import=first_import,
        district_id=DISTRICT,
    )


def status(report: ThresholdReport, measure: str, subject: str) -> str:
    """The status of one (resource or school, measure) row of the report's table."""
    column = "school_sourced_id" if report.kind == "school" else "resource"
    rows = report.table[(report.table[column] == subject) & (report.table["measure"] == measure)]
    assert len(rows) == 1, rows
    return str(rows["status"].iloc[0])


# --- change thresholds: the % boundary (strictly greater trips) -----------------------------------------


@pytest.mark.parametrize(
    ("measure", "count_field", "limit"),
    [("deleted_pct", "deleted", 10), ("updated_pct", "updated", 75)],
)
@pytest.mark.parametrize(
    ("count", "expected"), [(99, OK), (100, OK), (101, EXCEEDED)], ids=["below", "at", "above"]
)
def test_change_pct_boundary_default_limits(
    measure: str, count_field: str, limit: int, count: int, expected: str
) -> None:
    # 1000 published: count = 10*limit is exactly at the limit and passes; one more record trips.
    n = count * limit // 10
    report = changes(change_row("users", 1000, **{count_field: n}))
    assert status(report, measure, "users") == expected
    assert report.passed is (expected != EXCEEDED)


def test_exactly_at_threshold_passes_despite_float_noise() -> None:
    # 28/400*100 == 7.000000000000001 in floating point: still "exactly 7%", which passes.
    row = change_row("users", 400, deleted=28)
    row["deleted_pct"] = 28 / 400 * 100
    assert row["deleted_pct"] > 7
    report = changes(row, thresholds=Thresholds(max_deleted_pct=7))
    assert report.passed
    assert status(report, "deleted_pct", "users") == OK
    assert not changes(change_row("users", 400, deleted=29), thresholds=Thresholds(max_deleted_pct=7)).passed


# --- change thresholds: the absolute floor (min_changes) ------------------------------------------------


@pytest.mark.parametrize(("deleted", "expected"), [(24, BELOW_MINIMUM), (25, EXCEEDED)])
def test_min_changes_floor(deleted: int, expected: str) -> None:
    # 24% / 25% deleted of 100: far above 10%, but below 25 records the % never trips.
    report = changes(change_row("classes", 100, deleted=deleted))
    assert status(report, "deleted_pct", "classes") == expected
    assert report.passed is (expected != EXCEEDED)


def test_tiny_district_five_record_change_never_trips() -> None:
    report = changes(change_row("users", 8, deleted=5), change_row("orgs", 3, updated=3))
    assert report.passed
    assert set(report.table["status"]) <= {OK, BELOW_MINIMUM}


def test_min_changes_override_zero_makes_every_record_count() -> None:
    report = changes(change_row("orgs", 10, deleted=2), thresholds=Thresholds(min_changes=0))
    assert status(report, "deleted_pct", "orgs") == EXCEEDED


# --- added: off by default ------------------------------------------------------------------------------


def test_added_none_never_trips() -> None:
    report = changes(change_row("users", 100, added=10_000))  # +10,000%
    assert report.passed
    row = report.table[report.table["measure"] == "added_pct"].iloc[0]
    assert row["status"] == OK and pd.isna(row["threshold"])


@pytest.mark.parametrize(("added", "expected"), [(500, OK), (501, EXCEEDED)])
def test_added_limit_when_set(added: int, expected: str) -> None:
    report = changes(change_row("users", 1000, added=added), thresholds=Thresholds(max_added_pct=50))
    assert status(report, "added_pct", "users") == expected


# --- per-resource overrides and the rollover relaxation -------------------------------------------------


def test_per_resource_override_applies_to_that_resource_only() -> None:
    thresholds = Thresholds(
        resources={"enrollments": ThresholdOverrides(max_deleted_pct=30, min_changes=100)}
    )
    report = changes(
        change_row("enrollments", 1000, deleted=250),
        change_row("users", 1000, deleted=250),
        thresholds=thresholds,
    )
    assert status(report, "deleted_pct", "enrollments") == OK
    assert status(report, "deleted_pct", "users") == EXCEEDED
    limits = report.table.set_index(["resource", "measure"])
    assert limits.loc[("enrollments", "deleted_pct"), "threshold"] == 30
    assert limits.loc[("enrollments", "deleted_pct"), "min_count"] == 100
    assert limits.loc[("users", "deleted_pct"), "threshold"] == 10


def test_per_resource_override_min_changes_boundary() -> None:
    thresholds = Thresholds(resources={"enrollments": ThresholdOverrides(min_changes=100)})
    assert (
        status(
            changes(change_row("enrollments", 500, deleted=99), thresholds=thresholds),
            "deleted_pct",
            "enrollments",
        )
        == BELOW_MINIMUM
    )
    assert (
        status(
            changes(change_row("enrollments", 500, deleted=100), thresholds=thresholds),
            "deleted_pct",
            "enrollments",
        )
        == EXCEEDED
    )


def test_relaxed_values_win_over_overrides_and_defaults() -> None:
    thresholds = Thresholds(resources={"classes": ThresholdOverrides(max_updated_pct=50)})
    relaxed = ThresholdOverrides(max_updated_pct=95, max_deleted_pct=40)
    rows = (change_row("classes", 1000, updated=900), change_row("users", 1000, deleted=400))
    strict = changes(*rows, thresholds=thresholds)
    assert {(v.resource, v.measure) for v in strict.violations.itertuples()} == {
        ("classes", "updated_pct"),
        ("users", "deleted_pct"),
    }
    report = changes(*rows, thresholds=thresholds, relaxed=relaxed)
    assert report.passed, report.violations
    assert status(report, "deleted_pct", "users") == OK  # exactly 40% against a relaxed 40%
    assert not changes(change_row("users", 1000, deleted=401), relaxed=relaxed).passed


# --- rejected rows --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rejected", "fetched", "expected"),
    [
        (1, 30, BELOW_MINIMUM),  # one bad row of 30: 3.3%, quarantined and reported, never blocks
        (REJECTED_FLOOR - 1, 300, BELOW_MINIMUM),
        (REJECTED_FLOOR, 300, EXCEEDED),  # 5 of 300 = 1.67%: a pattern
        (10, 1000, OK),  # exactly 1%
        (11, 1000, EXCEEDED),
    ],
)
def test_rejected_pct_and_floor(rejected: int, fetched: int, expected: str) -> None:
    report = changes(change_row("enrollments", fetched, rejected=rejected, fetched=fetched))
    assert status(report, "rejected_pct", "enrollments") == expected
    row = report.table[report.table["measure"] == "rejected_pct"].iloc[0]
    assert row["base"] == fetched and row["min_count"] == REJECTED_FLOOR


def test_rejected_floor_never_exceeds_min_changes() -> None:
    report = changes(change_row("users", 30, rejected=1, fetched=30), thresholds=Thresholds(min_changes=0))
    assert status(report, "rejected_pct", "users") == EXCEEDED


# --- the first import -----------------------------------------------------------------------------------


def test_first_import_exempts_change_thresholds_but_not_rejects() -> None:
    rows = (
        change_row("users", 0, added=5000),
        change_row("enrollments", 0, added=90_000, rejected=2000, fetched=92_000),
    )
    report = changes(*rows, thresholds=Thresholds(max_added_pct=10), first_import=True)
    assert not report.passed
    assert list(report.violations["measure"]) == ["rejected_pct"]
    assert list(report.violations["resource"]) == ["enrollments"]
    change_rows = report.table[report.table["measure"] != "rejected_pct"]
    assert set(change_rows["status"]) == {EXEMPT_FIRST_IMPORT}
    assert "first import" in report.summary_line()


def test_first_import_exempts_even_a_huge_deletion_count() -> None:
    # first_import is the caller's statement; whatever the counts say, change % do not apply.
    report = changes(change_row("users", 1000, deleted=900), first_import=True)
    assert report.passed
    assert status(report, "deleted_pct", "users") == EXEMPT_FIRST_IMPORT
    assert status(report, "rejected_pct", "users") == OK


def test_first_import_exempts_schools() -> None:
    report = schools(school_row("lincoln", "enrollments", 450, 0), first_import=True)
    assert report.passed
    assert status(report, "enrollment_drop_pct", "lincoln") == EXEMPT_FIRST_IMPORT


# --- per school -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "resource,measure", [("users", "user_drop_pct"), ("enrollments", "enrollment_drop_pct")]
)
@pytest.mark.parametrize(
    ("after", "expected"), [(81, OK), (80, OK), (79, EXCEEDED)], ids=["below", "at", "above"]
)
def test_school_drop_pct_boundary(resource: str, measure: str, after: int, expected: str) -> None:
    report = schools(school_row("lincoln", resource, 100, after))  # drop 19 / 20 / 21 of 100 against 20%
    assert status(report, measure, "lincoln") == expected


@pytest.mark.parametrize(("published", "after", "expected"), [(20, 11, BELOW_MINIMUM), (20, 10, EXCEEDED)])
def test_school_min_drop_floor(published: int, after: int, expected: str) -> None:
    report = schools(school_row("tiny", "users", published, after))  # drop 9 (45%) / 10 (50%)
    assert status(report, "user_drop_pct", "tiny") == expected


def test_school_limits_are_per_resource() -> None:
    limits = SchoolThresholds(max_user_drop_pct=50, max_enrollment_drop_pct=20, min_drop=1)
    report = schools(
        school_row("lincoln", "users", 100, 70),
        school_row("lincoln", "enrollments", 100, 70),
        school_thresholds=limits,
    )
    assert status(report, "user_drop_pct", "lincoln") == OK
    assert status(report, "enrollment_drop_pct", "lincoln") == EXCEEDED


def test_a_vanishing_school_trips_while_the_district_wide_pct_is_small() -> None:
    # Lincoln (450 enrollments, 60 users) disappears from a 20,000-enrollment district: 2.25% district-wide.
    district = changes(change_row("enrollments", 20_000, deleted=450), change_row("users", 3000, deleted=60))
    assert district.passed
    report = schools(
        school_row("lincoln", "enrollments", 450, 0, name="Lincoln Elementary"),
        school_row("lincoln", "users", 60, 0, name="Lincoln Elementary"),
        school_row("roosevelt", "enrollments", 9000, 9000),
        school_row("roosevelt", "users", 1500, 1490),
    )
    assert not report.passed
    assert set(report.violations["measure"]) == {"enrollment_drop_pct", "user_drop_pct"}
    assert set(report.violations["school_sourced_id"]) == {"lincoln"}
    assert (report.violations["pct"] == 100.0).all()


@pytest.mark.parametrize("clip", [False, True])
def test_a_growing_school_never_trips(clip: bool) -> None:
    row = school_row("lincoln", "enrollments", 100, 400)
    if clip:
        row["drop"], row["drop_pct"] = 0, 0.0
    report = schools(row, school_thresholds=SchoolThresholds(min_drop=0, max_enrollment_drop_pct=0))
    assert report.passed


def test_a_new_school_with_nothing_published_passes() -> None:
    assert schools(school_row("new", "users", 0, 300)).passed


# --- malformed input ------------------------------------------------------------------------------------


def _bad(**changes_: object) -> pd.DataFrame:
    frame = pd.DataFrame([change_row("users", 1000, deleted=50), change_row("classes", 200)])
    for column, value in changes_.items():
        frame[column] = frame[column].astype(object)
        frame.loc[0, column] = value
    return frame


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        (_bad().drop(columns=["deleted_pct"]), "missing column 'deleted_pct'"),
        (_bad(deleted=-1, deleted_pct=-0.1), "column 'deleted' (resource 'users')"),
        (_bad(deleted_pct=0.05), "deleted_pct must be 100*deleted/published_before"),  # a fraction, not a %
        (_bad(resource="students"), "isin"),
        (_bad(resource="classes"), "field_uniqueness"),
        (_bad(updated="lots"), "column 'updated'"),
        (_bad(rejected_pct=3.0), "rejected_pct must be 100*rejected/fetched"),
    ],
    ids=[
        "missing-column",
        "negative",
        "fraction",
        "unknown-resource",
        "duplicate-resource",
        "not-a-number",
        "inconsistent-rejected",
    ],
)
def test_malformed_change_summary_is_a_clear_error(frame: pd.DataFrame, needle: str) -> None:
    with pytest.raises(ThresholdInputError) as caught:
        evaluate_change_thresholds(frame, Thresholds(), first_import=False, district_id=DISTRICT)
    message = str(caught.value)
    assert "district 'springfield'" in message and "change summary is malformed" in message
    assert needle in message, message


def test_malformed_pct_when_nothing_published() -> None:
    row = change_row("users", 0, added=40)
    row["added_pct"] = 100.0  # must be 0.0 when published_before is 0
    with pytest.raises(ThresholdInputError, match="added_pct must be"):
        changes(row)


def test_not_a_dataframe_is_a_clear_error() -> None:
    with pytest.raises(ThresholdInputError, match="must be a pandas DataFrame, got list"):
        evaluate_change_thresholds(
            [change_row("users", 1)],
            Thresholds(),
            first_import=False,  # type: ignore[arg-type]
            district_id=DISTRICT,
        )


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ({"resource": "classes"}, "isin"),
        ({"drop": 0}, "drop must be published_before - after"),  # a vanished school hidden by a 0 drop
        ({"drop_pct": 1.0}, "drop_pct must be 100*drop/published_before"),
        ({"after": -3}, "column 'after'"),
    ],
)
def test_malformed_school_summary_is_a_clear_error(edit: dict, needle: str) -> None:
    row = school_row("lincoln", "enrollments", 450, 0) | edit
    with pytest.raises(ThresholdInputError) as caught:
        schools(row)
    assert "district 'springfield'" in str(caught.value) and "school summary is malformed" in str(
        caught.value
    )
    assert needle in str(caught.value), str(caught.value)


def test_missing_school_columns_and_duplicates() -> None:
    frame = pd.DataFrame([school_row("a", "users", 10, 10), school_row("a", "users", 10, 10)])
    with pytest.raises(ThresholdInputError) as caught:
        evaluate_school_thresholds(
            frame.drop(columns=["after"]), SchoolThresholds(), first_import=False, district_id=DISTRICT
        )
    assert "missing column 'after'" in str(caught.value)
    with pytest.raises(ThresholdInputError, match="school_sourced_id"):
        evaluate_school_thresholds(frame, SchoolThresholds(), first_import=False, district_id=DISTRICT)


def test_sql_dtypes_are_accepted() -> None:
    frame = pd.DataFrame([change_row("users", 1000, deleted=200)])
    for column in (
        "published_before",
        "fetched",
        "added",
        "updated",
        "deleted",
        "unchanged",
        "tobedeleted",
        "rejected",
    ):
        frame[column] = frame[column].astype("Int64")
    frame["extra_column"] = "ignored"
    report = evaluate_change_thresholds(frame, Thresholds(), first_import=False, district_id=DISTRICT)
    assert list(report.violations["resource"]) == ["users"]


def test_empty_summaries_pass() -> None:
    empty_changes = pd.DataFrame([change_row("users", 1)]).iloc[0:0]
    report = evaluate_change_thresholds(empty_changes, Thresholds(), first_import=False, district_id=DISTRICT)
    assert report.passed and report.table.empty
    assert "message" in report.violations.columns


# --- the report: messages, markdown, metadata -----------------------------------------------------------


def _bad_night() -> ThresholdReport:
    return changes(
        change_row("users", 1000, deleted=312),  # 3.1x its limit
        change_row("enrollments", 5000, updated=4000),  # 1.07x
        change_row("classes", 300, rejected=6, fetched=300),  # 2x
        change_row("orgs", 10, deleted=5),  # below minimum
        change_row("courses", 400),
    )


def test_violations_are_worst_first_and_messages_name_district_resource_and_measure() -> None:
    report = _bad_night()
    assert not report.passed
    assert list(zip(report.violations["resource"], report.violations["measure"], strict=True)) == [
        ("users", "deleted_pct"),
        ("classes", "rejected_pct"),
        ("enrollments", "updated_pct"),
    ]
    for row in report.violations.itertuples():
        assert (
            "'springfield'" in row.message
            and f"'{row.resource}'" in row.message
            and row.measure in row.message
        )
    assert set(report.violations.columns) >= {
        "district_id",
        "resource",
        "measure",
        "count",
        "pct",
        "threshold",
        "message",
    }
    first = report.violations.iloc[0]
    assert (first["count"], first["pct"], first["threshold"]) == (312, 31.2, 10.0)


def test_school_messages_name_the_school() -> None:
    report = schools(school_row("lin-1", "enrollments", 450, 0, name="Lincoln Elementary"))
    message = report.violations["message"].iloc[0]
    assert "'springfield'" in message and "Lincoln Elementary" in message and "lin-1" in message
    assert "enrollment_drop_pct" in message and "450 to 0" in message


def test_markdown_lists_offenders_worst_first() -> None:
    text = _bad_night().markdown()
    order = [
        text.index(f"| {resource} | {measure} |")
        for resource, measure in [
            ("users", "deleted_pct"),
            ("classes", "rejected_pct"),
            ("enrollments", "updated_pct"),
            ("orgs", "deleted_pct"),
        ]
    ]
    assert order == sorted(order)
    assert "**EXCEEDED**" in text and "BELOW MINIMUM" in text
    assert "| courses |" not in text  # nothing changed: noise
    assert text.startswith("**district 'springfield': 3 change thresholds exceeded")


def test_markdown_is_capped_and_escapes_school_names() -> None:
    rows = [
        school_row(f"s{i:03}", "enrollments", 100, 100 - i, name=f"School {i} | Annex") for i in range(1, 60)
    ]
    report = schools(*rows)
    text = report.markdown(max_rows=5)
    table_lines = [line for line in text.splitlines() if line.startswith("| School ") and "(s" in line]
    assert len(table_lines) == 5
    assert table_lines[0].startswith("| School 59 \\| Annex (s059) |")  # the worst: 59% dropped
    assert "54 more row(s) not shown" in text and "(34 of them exceeded)" in text


def test_markdown_when_nothing_changed() -> None:
    text = changes(change_row("users", 100)).markdown()
    assert "passed" in text and "Nothing to compare" in text


def test_as_metadata_is_plain_values() -> None:
    for report in (
        _bad_night(),
        changes(change_row("users", 100)),
        schools(school_row("lincoln", "users", 60, 0)),
    ):
        meta = report.as_metadata()
        assert all(
            isinstance(v, str | bool | numbers.Integral | float) and type(v).__module__ == "builtins"
            for v in meta.values()
        ), meta
        assert meta["district_id"] == DISTRICT and meta["passed"] == report.passed
    meta = _bad_night().as_metadata()
    assert meta["violations"] == 3 and meta["below_minimum"] == 1
    assert meta["worst_measure"] == "deleted_pct" and meta["worst_subject"] == "users"
    assert meta["worst_pct"] == 31.2 and meta["worst_threshold"] == 10.0


def test_summary_line() -> None:
    assert _bad_night().summary_line() == (
        "district 'springfield': 3 change thresholds exceeded — worst: users deleted_pct 31.2% > 10% "
        "(312 rows) and 2 more"
    )
    assert changes(change_row("orgs", 10, deleted=5)).summary_line() == (
        "district 'springfield': change thresholds passed (1 above a % limit but below the minimum count)"
    )


def test_only_restricts_a_report_to_some_measures() -> None:
    report = _bad_night()
    rejected = report.only({"rejected_pct"})
    assert list(rejected.violations["resource"]) == ["classes"] and not rejected.passed
    assert set(rejected.table["measure"]) == {"rejected_pct"}
    assert "deleted_pct" not in rejected.markdown()
    changes_only = report.only({"deleted_pct", "updated_pct", "added_pct"})
    assert len(changes_only.violations) == 2 and len(report.violations) == 3
    assert report.only({"added_pct"}).passed
