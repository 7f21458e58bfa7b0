"""District mutations: each changes what it says, reports exactly that, and keeps references whole.

The central check compares a snapshot taken before the mutation with the district after it and
derives added / updated / tobedeleted / removed independently of the mutation's own bookkeeping;
the MutationResult must equal that diff exactly, because sync tests hold the pipeline to it.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from roster_pipeline.simulator import mutations
from roster_pipeline.simulator.admin import DESCRIPTIONS, MUTATIONS, apply_mutation
from roster_pipeline.simulator.district import BASE_COLLECTIONS, SimulatedDistrict
from roster_pipeline.simulator.generate import generate_district
from roster_pipeline.simulator.mutations import MutationResult

from .simulator_checks import active_student_enrollment_counts, broken_references

Snapshot = dict[str, dict[str, bytes]]  # collection -> sourcedId -> the record's JSON


@pytest.fixture()
def district() -> SimulatedDistrict:
    return generate_district("small", seed=11)


def snapshot(district: SimulatedDistrict) -> Snapshot:
    """Every record as JSON bytes: a deep copy that is cheap to take and to compare."""
    return {
        name: {i: orjson.dumps(r) for i, r in records.items()}
        for name, records in district.collections.items()
    }


def old_record(before: Snapshot, collection: str, sourced_id: str) -> dict[str, Any]:
    return orjson.loads(before[collection][sourced_id])


def observed_changes(before: Snapshot, district: SimulatedDistrict) -> dict[str, dict[str, set[str]]]:
    """What changed, worked out from the records alone."""
    changes: dict[str, dict[str, set[str]]] = {}
    for name in BASE_COLLECTIONS:
        old, new = before[name], district.collections[name]
        differing = [i for i in old.keys() & new.keys() if orjson.dumps(new[i]) != old[i]]
        marked = {
            i
            for i in differing
            if orjson.loads(old[i])["status"] == "active" and new[i]["status"] == "tobedeleted"
        }
        changes[name] = {
            "added": set(new.keys() - old.keys()),
            "removed": set(old.keys() - new.keys()),
            "tobedeleted": marked,
            "updated": set(differing) - marked,
        }
    return changes


def assert_exact(
    result: MutationResult, before: Snapshot, district: SimulatedDistrict, version: int, latest_before: str
) -> None:
    """The result lists exactly the observed changes, touched records carry its stamp, refs hold."""
    observed = observed_changes(before, district)
    for name in BASE_COLLECTIONS:
        reported = result.changes[name]
        for category in ("added", "updated", "tobedeleted", "removed"):
            assert getattr(reported, category) == observed[name][category], f"{name}.{category}"
        for sourced_id in result.touched(name):
            assert district.collections[name][sourced_id]["dateLastModified"] == result.timestamp
    assert district.version == version + 1 == result.version
    assert result.timestamp > latest_before
    assert broken_references(district, active_only=True) == []
    summary = result.summary()
    assert orjson.loads(orjson.dumps(summary)) == summary
    for name in BASE_COLLECTIONS:
        assert summary["changes"][name] == {
            category: len(observed[name][category])
            for category in ("added", "updated", "tobedeleted", "removed")
        }


def run(district: SimulatedDistrict, mutate: Any) -> MutationResult:
    before, version = snapshot(district), district.version
    latest_before = max(r["dateLastModified"] for c in district.collections.values() for r in c.values())
    result = mutate(district)
    assert_exact(result, before, district, version, latest_before)
    return result


def students(district: SimulatedDistrict, status: str = "active") -> set[str]:
    return {
        u["sourcedId"]
        for u in district.collections["users"].values()
        if u["role"] == "student" and u["status"] == status
    }


# ---------------------------------------------------------------------------------------------------- users
def test_change_users_updates_the_requested_share(district: SimulatedDistrict) -> None:
    active_users = sum(1 for u in district.collections["users"].values() if u["status"] == "active")
    result = run(district, lambda d: mutations.change_users(d, 10, seed=3))
    assert len(result.changes["users"].updated) == round(active_users * 0.10)
    assert all(result.changes[name].is_empty() for name in BASE_COLLECTIONS if name != "users")
    emails = [u["email"] for u in district.collections["users"].values() if "email" in u]
    assert len(emails) == len(set(emails))


def test_same_seed_same_change_different_seed_different_change() -> None:
    a, b, c = (generate_district("tiny", seed=11) for _ in range(3))
    mutations.change_users(a, 20, seed=1, now=datetime(2027, 1, 1, tzinfo=UTC))
    mutations.change_users(b, 20, seed=1, now=datetime(2027, 1, 1, tzinfo=UTC))
    mutations.change_users(c, 20, seed=2, now=datetime(2027, 1, 1, tzinfo=UTC))
    assert snapshot(a) == snapshot(b) != snapshot(c)


def test_add_students_with_enrollments_and_demographics(district: SimulatedDistrict) -> None:
    result = run(district, lambda d: mutations.add_students(d, 25, seed=4))
    added = result.changes["users"].added
    assert len(added) == 25 and result.changes["demographics"].added == added
    users, classes = district.collections["users"], district.collections["classes"]
    per_student = Counter()
    for enrollment_id in result.changes["enrollments"].added:
        enrollment = district.collections["enrollments"][enrollment_id]
        per_student[enrollment["user"]["sourcedId"]] += 1
        klass = classes[enrollment["class"]["sourcedId"]]
        assert klass["status"] == "active"
        assert klass["school"]["sourcedId"] == users[enrollment["user"]["sourcedId"]]["orgs"][0]["sourcedId"]
    assert set(per_student) == added and all(5 <= n <= 8 for n in per_student.values())
    assert all(users[s]["email"] and users[s]["role"] == "student" for s in added)
    logins = [u["username"] for u in users.values()]
    assert len(logins) == len(set(logins))


def test_adding_twice_with_the_same_seed_adds_new_ids(district: SimulatedDistrict) -> None:
    first = mutations.add_students(district, 5, seed=1)
    second = run(district, lambda d: mutations.add_students(d, 5, seed=1))
    assert first.changes["users"].added.isdisjoint(second.changes["users"].added)
    assert district.count("users") == 1991 + 10 or len(second.changes["users"].added) == 5


def test_add_students_to_a_named_school(district: SimulatedDistrict) -> None:
    school = sorted(o for o, r in district.collections["orgs"].items() if r["type"] == "school")[2]
    result = run(district, lambda d: mutations.add_students(d, 3, seed=1, school_id=school))
    assert {
        district.collections["users"][s]["orgs"][0]["sourcedId"] for s in result.changes["users"].added
    } == {school}


def test_remove_students_marks_student_enrollments_and_demographics(district: SimulatedDistrict) -> None:
    active_before = students(district)
    result = run(district, lambda d: mutations.remove_students(d, 12, seed=5))
    gone = result.changes["users"].tobedeleted
    removed_students = gone & active_before
    assert len(removed_students) == 12
    assert all(district.collections["users"][u]["role"] == "guardian" for u in gone - removed_students)
    assert result.changes["demographics"].tobedeleted == removed_students
    assert not any(
        e["status"] == "active" and e["user"]["sourcedId"] in removed_students
        for e in district.collections["enrollments"].values()
    )
    assert result.changes["enrollments"].tobedeleted and not result.changes["enrollments"].removed


def test_remove_students_vanish_takes_everything_of_theirs(district: SimulatedDistrict) -> None:
    result = run(district, lambda d: mutations.remove_students(d, 12, seed=5, mode="vanish"))
    gone = result.changes["users"].removed
    assert len(gone) >= 12 and not (gone & set(district.collections["users"]))
    assert not any(e["user"]["sourcedId"] in gone for e in district.collections["enrollments"].values())
    assert not any(
        a["sourcedId"] in gone for u in district.collections["users"].values() for a in u.get("agents", [])
    )


def test_guardians_lose_removed_children_and_go_when_none_is_left() -> None:
    district = generate_district("small", seed=11)
    users = district.collections["users"]
    guardians = {u["sourcedId"] for u in users.values() if u["role"] == "guardian"}
    siblings = {g for g in guardians if len(users[g]["agents"]) == 2}
    # Remove a third of the students: some guardians keep a child (updated), some lose all (retired).
    result = run(
        district, lambda d: mutations.remove_students(d, len(students(d)) // 3, seed=1, mode="vanish")
    )
    gone = result.changes["users"].removed
    assert guardians & gone
    assert result.changes["users"].updated and result.changes["users"].updated <= siblings
    for guardian_id in guardians - gone:
        assert users[guardian_id]["agents"] and not any(
            a["sourcedId"] in gone for a in users[guardian_id]["agents"]
        )


# ---------------------------------------------------------------------------------------------- classes
def test_move_students_updates_one_enrollment_each(district: SimulatedDistrict) -> None:
    before = snapshot(district)
    result = run(district, lambda d: mutations.move_students(d, 15, seed=6))
    moved = result.changes["enrollments"].updated
    assert len(moved) == 15
    assert all(result.changes[n].is_empty() for n in BASE_COLLECTIONS if n != "enrollments")
    enrollments = district.collections["enrollments"]
    assert len({enrollments[e]["user"]["sourcedId"] for e in moved}) == 15
    for enrollment_id in moved:
        old, new = old_record(before, "enrollments", enrollment_id), enrollments[enrollment_id]
        assert old["class"]["sourcedId"] != new["class"]["sourcedId"]
        assert new["school"] == old["school"]
        assert district.collections["classes"][new["class"]["sourcedId"]]["school"] == new["school"]
    pairs = Counter(
        (e["user"]["sourcedId"], e["class"]["sourcedId"])
        for e in enrollments.values()
        if e["status"] == "active"
    )
    assert max(pairs.values()) == 1


def test_move_students_rejects_more_than_possible() -> None:
    district = generate_district("tiny")
    with pytest.raises(ValueError, match="move_students: invalid 'count'"):
        mutations.move_students(district, 10_000, seed=1)
    assert district.version == 0


# ----------------------------------------------------------------------------------------------- school
def school_ids(district: SimulatedDistrict) -> list[str]:
    return sorted(
        o
        for o, r in district.collections["orgs"].items()
        if r["type"] == "school" and r["status"] == "active"
    )


def test_delete_school_vanish_leaves_no_trace(district: SimulatedDistrict) -> None:
    school = school_ids(district)[1]
    result = run(district, lambda d: mutations.delete_school(d, school, mode="vanish"))
    assert result.changes["orgs"].removed == {school} and len(result.changes["orgs"].updated) == 1
    assert len(result.changes["classes"].removed) == 100
    assert result.changes["users"].removed and result.changes["enrollments"].removed
    assert f'"{school}"'.encode() not in orjson.dumps(district.collections)
    assert broken_references(district, active_only=False) == []


def test_delete_school_tobedeleted_marks_its_data(district: SimulatedDistrict) -> None:
    school = school_ids(district)[0]
    result = run(district, lambda d: mutations.delete_school(d, mode="tobedeleted"))
    assert result.details["school_id"] == school
    assert result.changes["orgs"].tobedeleted == {school}
    classes = [c for c in district.collections["classes"].values() if c["school"]["sourcedId"] == school]
    assert classes and all(c["status"] == "tobedeleted" for c in classes)
    multi_org_users = result.changes["users"].updated
    assert all(
        school not in {o["sourcedId"] for o in district.collections["users"][u]["orgs"]}
        for u in multi_org_users
    )


def test_delete_school_rejects_unknown_school(district: SimulatedDistrict) -> None:
    with pytest.raises(ValueError, match="delete_school: invalid 'school_id'"):
        mutations.delete_school(district, "not-a-school")
    assert district.version == 0


def test_wipe_enrollments_removes_most_and_nothing_else(district: SimulatedDistrict) -> None:
    total = district.count("enrollments")
    result = run(district, lambda d: mutations.wipe_enrollments(d, 90, seed=7))
    assert len(result.changes["enrollments"].removed) == round(total * 0.9)
    assert all(result.changes[n].is_empty() for n in BASE_COLLECTIONS if n != "enrollments")


# ------------------------------------------------------------------------------------------------ year
@pytest.mark.parametrize("old", ["tobedeleted", "gone"])
def test_advance_school_year(district: SimulatedDistrict, old: str) -> None:
    grades_before = {s: district.collections["users"][s]["grades"][0] for s in students(district)}
    old_year_ids = {
        name: set(district.collections[name])
        for name in ("academicSessions", "courses", "classes", "enrollments")
    }
    active_before = {
        name: {i for i in ids if district.collections[name][i]["status"] == "active"}
        for name, ids in old_year_ids.items()
    }
    result = run(district, lambda d: mutations.advance_school_year(d, old=old, seed=8))  # type: ignore[arg-type]
    assert district.school_year == 2028
    sessions = district.collections["academicSessions"]
    active_years = [s for s in sessions.values() if s["type"] == "schoolYear" and s["status"] == "active"]
    assert [s["schoolYear"] for s in active_years] == ["2028"]
    assert all(s["schoolYear"] == "2028" for s in sessions.values() if s["status"] == "active")
    for name, ids in old_year_ids.items():
        retired = result.changes[name].tobedeleted if old == "tobedeleted" else result.changes[name].removed
        expected = ids if old == "gone" else active_before[name]
        assert retired == expected and result.changes[name].added
        assert not any(district.collections[name].get(i, {}).get("status") == "active" for i in ids)
    year_id = active_years[0]["sourcedId"]
    assert all(
        c["schoolYear"]["sourcedId"] == year_id
        for c in district.collections["courses"].values()
        if c["status"] == "active"
    )
    users = district.collections["users"]
    continuing = students(district)
    assert continuing < set(grades_before)
    order = ["KG", *[f"{g:02d}" for g in range(1, 13)]]
    for student_id in continuing:
        assert order.index(users[student_id]["grades"][0]) == order.index(grades_before[student_id]) + 1
    assert not any(grades_before[s] == "12" for s in continuing)
    assert result.details["graduated"] == sum(1 for g in grades_before.values() if g == "12")
    assert all(5 <= n <= 8 for n in active_student_enrollment_counts(district).values())
    teacher_enrollments = [
        e
        for e in district.collections["enrollments"].values()
        if e["status"] == "active" and e["role"] == "teacher"
    ]
    assert teacher_enrollments


def test_stamp_is_later_than_everything_even_with_an_early_now() -> None:
    district = generate_district("tiny", school_year=2040)
    latest = max(r["dateLastModified"] for c in district.collections.values() for r in c.values())
    assert latest.startswith("2039-08-0") and latest.endswith(":00:00.000Z")
    result = mutations.change_users(district, 50, seed=1, now=datetime(2020, 1, 1, tzinfo=UTC))
    assert result.timestamp == latest.replace(".000Z", ".001Z")
    later = mutations.change_users(district, 50, seed=1, now=datetime(2045, 1, 1, 8, 30, tzinfo=UTC))
    assert later.timestamp == "2045-01-01T08:30:00.000Z"


def test_untouched_records_keep_their_stamp(district: SimulatedDistrict) -> None:
    before = snapshot(district)
    result = mutations.move_students(district, 3, seed=1)
    for name in BASE_COLLECTIONS:
        for sourced_id, record in district.collections[name].items():
            if sourced_id not in result.touched(name):
                assert record["dateLastModified"] == old_record(before, name, sourced_id)["dateLastModified"]


# ----------------------------------------------------------------------------------------------- admin
def test_every_mutation_is_dispatched_and_described() -> None:
    assert (
        set(MUTATIONS)
        == set(DESCRIPTIONS)
        == {
            "change_users",
            "add_students",
            "remove_students",
            "move_students",
            "delete_school",
            "wipe_enrollments",
            "advance_school_year",
        }
    )


def test_apply_mutation_returns_the_summary(district: SimulatedDistrict) -> None:
    summary = apply_mutation(
        district, "remove_students", {"count": 2, "mode": "vanish", "now": "2030-01-01T00:00:00Z"}
    )
    assert summary["kind"] == "remove_students" and summary["version"] == 1
    assert summary["timestamp"] == "2030-01-01T00:00:00.000Z"
    assert summary["changes"]["demographics"]["removed"] == 2


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("explode", {}, "unknown mutation 'explode'"),
        ("remove_students", {}, "remove_students: missing required parameter 'count'"),
        ("remove_students", {"count": 1, "cout": 2}, "remove_students: unknown parameter 'cout'"),
        ("remove_students", {"count": "3"}, "remove_students: parameter 'count' must be int"),
        ("remove_students", {"count": True}, "remove_students: parameter 'count' must be int"),
        ("remove_students", {"count": 1, "mode": "shred"}, "remove_students: invalid 'mode'"),
        ("remove_students", {"count": 10**6}, "remove_students: invalid 'count'"),
        ("change_users", {"percent": 0}, "change_users: invalid 'percent'"),
        ("change_users", {"percent": 5, "now": "soon"}, "change_users: parameter 'now'"),
        ("advance_school_year", {"old": "archive"}, "advance_school_year: invalid 'mode'"),
        ("wipe_enrollments", {"percent": 150}, "wipe_enrollments: invalid 'percent'"),
        ("delete_school", {"school_id": 5}, "delete_school: parameter 'school_id' must be str"),
    ],
)
def test_apply_mutation_errors_name_the_mutation_and_parameter(
    kind: str, params: dict[str, Any], message: str
) -> None:
    district = generate_district("tiny")
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        apply_mutation(district, kind, params)
    assert district.version == 0
