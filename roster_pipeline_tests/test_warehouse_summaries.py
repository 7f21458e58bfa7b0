"""Change summary, school summary and the per-field diff of a staged import, on SQLite and Postgres."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.records.rejects import Reject
from roster_pipeline.thresholds import ChangeSummary, SchoolSummary
from roster_pipeline.warehouse import (
    CHANGE_SUMMARY_COLUMNS,
    FIELD_CHANGE_COLUMNS,
    SCHOOL_SUMMARY_COLUMNS,
    Warehouse,
    WarehouseError,
)
from roster_pipeline_tests.warehouse_helpers import YEAR, dump_published, enrollment, ref, sync, user


def error(resource: str, sourced_id: str) -> Reject:
    return Reject(resource, sourced_id, "email", "format", "x", f"{resource} {sourced_id}: bad email")


def org(sourced_id: str, kind: str = "school", name: str | None = None) -> dict[str, Any]:
    return {
        "sourcedId": sourced_id,
        "status": "active",
        "dateLastModified": "2026-11-01T12:00:00.000Z",
        "name": name or f"School {sourced_id}",
        "type": kind,
    }


def member(n: int, *schools: str, **fields: Any) -> dict[str, Any]:
    return user(n, orgs=[ref("org", s) for s in schools], **fields)


def at(n: int, school: str, **fields: Any) -> dict[str, Any]:
    return enrollment(n, school=ref("org", school), **fields)


def by_resource(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["resource"]: row for row in frame.to_dict("records")}


def test_first_import_summary_has_every_resource_and_no_percent_of_nothing(wh: Warehouse) -> None:
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [user(n) for n in range(4)])
    wh.record_rejects(import_id, [error("users", "usr-9")])
    frame = wh.change_summary(import_id)
    assert tuple(frame.columns) == CHANGE_SUMMARY_COLUMNS
    assert list(frame["resource"]) == [r.name for r in RESOURCES]
    assert frame.dtypes["added"] == "int64" and frame.dtypes["added_pct"] == "float64"
    users = by_resource(frame)["users"]
    assert {k: users[k] for k in ("published_before", "fetched", "added", "rejected", "added_pct")} == {
        "published_before": 0,
        "fetched": 5,
        "added": 4,
        "rejected": 1,
        "added_pct": 0.0,
    }
    assert users["rejected_pct"] == pytest.approx(20.0)
    assert by_resource(frame)["orgs"] == {c: 0 for c in CHANGE_SUMMARY_COLUMNS} | {"resource": "orgs"} | {
        c: 0.0 for c in CHANGE_SUMMARY_COLUMNS[9:]
    }


def test_change_summary_counts_and_percentages(wh: Warehouse) -> None:
    # another (older: a past year can no longer be imported into) year first: out of scope
    sync(wh, {"enrollments": [enrollment(n) for n in range(3)]}, year=YEAR - 1)
    sync(wh, {"users": [user(n) for n in range(10)], "enrollments": [enrollment(n) for n in range(4)]})
    import_id = wh.begin_import("springfield", "run", YEAR)  # full
    staged_users = [user(n) for n in range(7)] + [user(7, status="tobedeleted"), user(11)]
    staged_users[1] = user(1, givenName="Grace")
    staged_users[2] = user(2, email="new@springfield.k12.us")
    wh.stage(import_id, "users", staged_users)  # usr-8 vanished; usr-9 quarantined (kept)
    wh.record_rejects(
        import_id, [error("users", "usr-9"), error("users", "usr-12"), error("users", "usr-12")]
    )
    wh.stage(import_id, "enrollments", [enrollment(n) for n in range(4)] + [enrollment(5)])
    wh.reject_staged(
        import_id, [Reject("enrollments", "enr-5", "user.sourcedId", "reference", "usr-5", "no such user")]
    )
    frame = wh.change_summary(import_id)
    users, enrollments = by_resource(frame)["users"], by_resource(frame)["enrollments"]
    assert {k: users[k] for k in CHANGE_SUMMARY_COLUMNS[1:9]} == {
        "published_before": 10,
        "fetched": 11,
        "added": 1,
        "updated": 2,
        "deleted": 2,
        "unchanged": 5,
        "tobedeleted": 1,
        "rejected": 2,
    }
    assert (users["added_pct"], users["updated_pct"], users["deleted_pct"]) == (10.0, 20.0, 20.0)
    assert users["rejected_pct"] == pytest.approx(100 * 2 / 11)
    assert {k: enrollments[k] for k in ("published_before", "fetched", "unchanged", "added", "rejected")} == {
        "published_before": 4,
        "fetched": 5,
        "unchanged": 4,
        "added": 0,
        "rejected": 1,
    }
    assert enrollments["rejected_pct"] == 20.0
    # the counts are the diff's own
    diff = wh.diff(import_id, "users")
    assert (diff.added, diff.updated, diff.deleted, diff.unchanged) == (1, 2, 2, 5)
    assert wh.change_summary(import_id).equals(frame)  # repeatable


def test_change_summary_matches_the_threshold_model(wh: Warehouse) -> None:
    sync(wh, {"users": [member(n, "sch-1") for n in range(4)], "orgs": [org("sch-1")]})
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [member(1, "sch-1")])
    changes = ChangeSummary.validate(wh.change_summary(import_id), lazy=True)
    schools = SchoolSummary.validate(wh.school_summary(import_id), lazy=True)
    assert by_resource(changes)["users"]["deleted"] == 3 and not schools.empty


def test_summaries_need_a_staged_snapshot(wh: Warehouse) -> None:
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [user(1)])
    wh.hold_import(import_id, "thresholds")
    assert by_resource(wh.change_summary(import_id))["users"]["added"] == 1  # held: still reviewable
    wh.publish(import_id, override=True)
    for method in (wh.change_summary, wh.school_summary, wh.build_field_diff):
        with pytest.raises(WarehouseError, match="published; its snapshot is no longer staged"):
            method(import_id)


def publish_three_schools(wh: Warehouse) -> None:
    """sch-1: usr-0..5 (+ the district org), sch-2: usr-6..9, usr-10 in sch-1 and sch-3;
    enrollments enr-0..5 at sch-1, enr-6..9 at sch-2."""
    sync(
        wh,
        {
            "orgs": [org("dist-1", "district", "Springfield"), org("sch-1"), org("sch-2"), org("sch-3")],
            "users": [member(n, "sch-1", "dist-1") for n in range(6)]
            + [member(n, "sch-2", "dist-1") for n in range(6, 10)]
            + [member(10, "sch-1", "sch-3")],
            "enrollments": [at(n, "sch-1") for n in range(6)] + [at(n, "sch-2") for n in range(6, 10)],
        },
    )


def school_rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in frame[["resource", "school_sourced_id", "published_before", "after", "drop"]].itertuples(
            index=False
        )
    ]


def test_school_summary_full_import_catches_a_vanished_school(wh: Warehouse) -> None:
    publish_three_schools(wh)
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(
        import_id,
        "orgs",
        [org("dist-1", "district"), org("sch-1"), org("sch-2", name="Renamed"), org("sch-3")],
    )
    wh.stage(
        import_id, "users", [member(n, "sch-1", "dist-1") for n in range(6)] + [member(10, "sch-1", "sch-3")]
    )
    wh.record_rejects(import_id, [error("users", "usr-6")])  # quarantined: stays alive in sch-2
    wh.stage(import_id, "enrollments", [at(n, "sch-1") for n in range(4)] + [at(20, "sch-3")])
    frame = wh.school_summary(import_id)
    assert tuple(frame.columns) == SCHOOL_SUMMARY_COLUMNS
    assert school_rows(frame) == [
        ("users", "sch-1", 7, 7, 0),
        ("users", "sch-2", 4, 1, 3),
        ("users", "sch-3", 1, 1, 0),
        ("enrollments", "sch-1", 6, 4, 2),
        ("enrollments", "sch-2", 4, 0, 4),
        ("enrollments", "sch-3", 0, 1, 0),
    ]
    assert list(frame["drop_pct"]) == pytest.approx([0.0, 75.0, 0.0, 100 / 3, 100.0, 0.0])
    assert frame.loc[frame.school_sourced_id == "sch-2", "school_name"].tolist() == ["Renamed", "Renamed"]
    assert "dist-1" not in set(frame["school_sourced_id"])  # the district org is not a school


def test_school_summary_delta_applies_deletions_additions_and_moves(wh: Warehouse) -> None:
    publish_three_schools(wh)
    import_id = wh.begin_import("springfield", "run", YEAR, "delta")
    wh.stage(
        import_id, "users", [member(6, "sch-2", status="tobedeleted"), member(7, "sch-1")]
    )  # one gone, one moved
    wh.stage(import_id, "enrollments", [at(6, "sch-2", status="tobedeleted"), at(30, "sch-2")])
    assert school_rows(wh.school_summary(import_id)) == [
        ("users", "sch-1", 7, 8, 0),
        ("users", "sch-2", 4, 2, 2),
        ("users", "sch-3", 1, 1, 0),
        ("enrollments", "sch-1", 6, 6, 0),
        ("enrollments", "sch-2", 4, 4, 0),
    ]


def test_school_summary_of_an_import_without_users_keeps_them(wh: Warehouse) -> None:
    publish_three_schools(wh)
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "enrollments", [at(n, "sch-1") for n in range(6)])
    rows = school_rows(wh.school_summary(import_id))
    assert ("users", "sch-2", 4, 4, 0) in rows and ("enrollments", "sch-2", 4, 0, 4) in rows


def changes(wh: Warehouse, import_id: int) -> list[tuple[Any, ...]]:
    frame = wh.field_changes(import_id)
    assert tuple(frame.columns) == FIELD_CHANGE_COLUMNS
    return [
        tuple(r)
        for r in frame[["resource", "sourced_id", "change", "field", "old_value", "new_value"]].itertuples(
            index=False
        )
    ]


def test_field_diff_of_a_full_import(wh: Warehouse) -> None:
    sync(wh, {"users": [user(n) for n in range(1, 8)], "enrollments": [enrollment(1)]})
    sync(wh, {"users": [user(n) for n in range(1, 7)]}, mode="delta")
    sync(wh, {"users": [user(n) for n in range(1, 7)]})  # usr-7 soft-deleted (vanished)
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(
        import_id,
        "users",
        [
            user(1, givenName="Grace", email="grace@springfield.k12.us"),  # two fields
            user(2),  # unchanged
            user(4),  # usr-3 vanished
            user(5, metadata={"ext": "1"}),  # only outside the flattened columns
            user(6, status="tobedeleted"),
            user(7),  # back again
            user(8),  # new
        ],
    )
    wh.stage(import_id, "enrollments", [enrollment(1, role="teacher")])
    wh.record_rejects(import_id, [error("users", "usr-4")])  # quarantined: no change reported
    before = dump_published(wh)
    assert wh.build_field_diff(import_id) == 8
    rows = changes(wh, import_id)
    assert [r for r in rows if r[3] != "raw"] == [
        ("users", "usr-1", "updated", "email", "student1@springfield.k12.us", "grace@springfield.k12.us"),
        ("users", "usr-1", "updated", "given_name", "Ada", "Grace"),
        ("users", "usr-3", "deleted", "*", None, None),
        ("users", "usr-6", "deleted", "*", None, None),
        ("users", "usr-7", "readded", "*", None, None),
        ("users", "usr-8", "added", "*", None, None),
        ("enrollments", "enr-1", "updated", "role", "student", "teacher"),
    ]
    [(_, sourced_id, change, _, old, new)] = [r for r in rows if r[3] == "raw"]
    assert (sourced_id, change) == ("usr-5", "updated")
    assert json.loads(old) == user(5) and json.loads(new) == user(5, metadata={"ext": "1"})
    assert dump_published(wh) == before  # building the diff publishes nothing
    # rebuilding replaces the import's rows; the limit is for previews
    assert wh.build_field_diff(import_id) == 8 and len(wh.field_changes(import_id)) == 8
    assert len(wh.field_changes(import_id, limit=3)) == 3
    # the counts agree with the diff
    diff = wh.diff(import_id, "users")
    frame = wh.field_changes(import_id)
    users = frame[frame.resource == "users"]
    assert users.groupby("change").sourced_id.nunique().to_dict() == {
        "added": diff.added - diff.readded,
        "readded": diff.readded,
        "deleted": diff.deleted,
        "updated": diff.updated,
    }


def test_field_diff_of_a_delta_has_no_vanished_records(wh: Warehouse) -> None:
    sync(wh, {"users": [user(1), user(2)]})
    import_id = wh.begin_import("springfield", "run", YEAR, "delta")
    wh.stage(import_id, "users", [user(1, familyName="Hopper", middleName="M")])
    assert wh.build_field_diff(import_id) == 2
    assert changes(wh, import_id) == [
        ("users", "usr-1", "updated", "family_name", "Lovelace1", "Hopper"),
        ("users", "usr-1", "updated", "middle_name", None, "M"),  # NULL → value is a change
    ]
    other = wh.begin_import("shelbyville", "run", YEAR)
    assert wh.build_field_diff(other) == 0 and wh.field_changes(other).empty


def test_publish_of_a_held_import_is_all_or_nothing(wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy as sa

    from roster_pipeline.warehouse import diff as sql

    sync(wh, {"users": [user(1), user(2)], "enrollments": [enrollment(1)]})
    before = dump_published(wh)
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [user(1, givenName="Changed")])
    wh.record_rejects(import_id, [error("users", "usr-2")])
    wh.stage(import_id, "enrollments", [enrollment(2)])
    wh.hold_import(import_id, "thresholds")
    real = sql.apply_changes

    def failing(
        conn: sa.Connection, t: Any, scope: Any, now: Any, expected: Any = None
    ) -> tuple[int, int, int]:
        result = real(conn, t, scope, now, expected)
        if t.resource.name == "enrollments":
            raise RuntimeError("connection lost")
        return result

    monkeypatch.setattr(sql, "apply_changes", failing)
    with pytest.raises(RuntimeError, match="connection lost"):
        wh.publish(import_id, override=True, overridden_by="admin")
    assert dump_published(wh) == before
    run = wh.get_import(import_id)
    assert (run.status, run.overridden_by) == ("held", None)  # still waiting, nothing recorded
    monkeypatch.setattr(sql, "apply_changes", real)
    assert wh.publish(import_id, override=True, overridden_by="admin")["users"].updated == 1
    assert wh.current_counts("springfield")["users"] == 2  # usr-2 quarantined, not deleted
