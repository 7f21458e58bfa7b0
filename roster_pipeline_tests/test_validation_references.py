"""Referential checks over staged imports, on SQLite and Postgres: each broken reference is reported on
the right record (and field and missing id), cascades are caught in one pass, deltas resolve targets
against the published roster, and a generated district passes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.simulator.generate import generate_district
from roster_pipeline.warehouse import Warehouse
from roster_pipeline.warehouse.references import (
    CLASS_WITHOUT_TEACHER,
    find_reference_failures,
    find_reference_warnings,
)

DISTRICT = "springfield"
YEAR = 2027

Records = dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def generated() -> Any:
    return generate_district("tiny", 5)


@pytest.fixture()
def records(generated: Any) -> Records:
    """A fresh deep copy of the tiny district, by collection, for a test to break."""
    return {c: copy.deepcopy(list(recs.values())) for c, recs in generated.collections.items()}


def stage(wh: Warehouse, records: Records, mode: str = "full") -> int:
    import_id = wh.begin_import(DISTRICT, "run", YEAR, mode)
    for res in RESOURCES:
        wh.stage(import_id, res.name, records.get(res.collection, []))
    return import_id


def failures(wh: Warehouse, import_id: int, mode: str = "full") -> list[Any]:
    with wh.engine.begin() as conn:
        return find_reference_failures(conn, import_id, DISTRICT, mode)


def summary(rejects: list[Any]) -> set[tuple[str, str | None, str, str | None]]:
    return {(r.resource, r.sourced_id, r.field, r.value) for r in rejects}


def ref(kind: str, sourced_id: str) -> dict[str, str]:
    return {"href": f"/{kind}s/{sourced_id}", "sourcedId": sourced_id, "type": kind}


def active(records: Records, collection: str, **where: str) -> list[dict[str, Any]]:
    return [
        r
        for r in records[collection]
        if r["status"] == "active" and all(r.get(k) == v for k, v in where.items())
    ]


def enrollments_of(records: Records, class_id: str) -> list[dict[str, Any]]:
    return [e for e in active(records, "enrollments") if e["class"]["sourcedId"] == class_id]


def test_generated_district_passes(wh: Warehouse, records: Records) -> None:
    assert failures(wh, stage(wh, records)) == []


def test_enrollment_references(wh: Warehouse, records: Records) -> None:
    a, b, c = active(records, "enrollments")[:3]
    a["user"] = ref("user", "ghost-user")
    b["class"] = ref("class", "ghost-class")
    c["school"] = ref("org", "ghost-school")
    found = failures(wh, stage(wh, records))
    assert summary(found) == {
        ("enrollments", a["sourcedId"], "user.sourcedId", "ghost-user"),
        ("enrollments", b["sourcedId"], "class.sourcedId", "ghost-class"),
        ("enrollments", c["sourcedId"], "school.sourcedId", "ghost-school"),
    }
    reject = next(r for r in found if r.sourced_id == a["sourcedId"])
    assert (reject.check, reject.severity, reject.raw) == ("reference", "error", a)
    assert reject.message == (
        f"district 'springfield', enrollments '{a['sourcedId']}': field 'user.sourcedId' references users "
        "'ghost-user', which is not an active record in this import"
    )


def test_class_course_school_and_every_term(wh: Warehouse, records: Records) -> None:
    x, y, z = active(records, "classes")[:3]
    x["course"] = ref("course", "ghost-course")
    y["school"] = ref("org", "ghost-school")
    z["terms"] = [*z["terms"], ref("academicSession", "ghost-term")]  # one bad term among good ones
    for klass in (x, y, z):  # their enrollments cascade; keep this test about classes
        records["enrollments"] = [
            e for e in records["enrollments"] if e["class"]["sourcedId"] != klass["sourcedId"]
        ]
    found = failures(wh, stage(wh, records))
    assert summary(found) == {
        ("classes", x["sourcedId"], "course.sourcedId", "ghost-course"),
        ("classes", y["sourcedId"], "school.sourcedId", "ghost-school"),
        ("classes", z["sourcedId"], "terms.sourcedId", "ghost-term"),
    }
    assert next(r for r in found if r.sourced_id == z["sourcedId"]).raw == z


def test_user_orgs_course_org_and_demographics(wh: Warehouse, records: Records) -> None:
    teacher = active(records, "users", role="teacher")[0]
    teacher["orgs"] = [*teacher["orgs"], ref("org", "ghost-org")]
    course = active(records, "courses")[0]
    course["org"] = ref("org", "ghost-district")
    for klass in [k for k in records["classes"] if k["course"]["sourcedId"] == course["sourcedId"]]:
        records["classes"].remove(klass)
        records["enrollments"] = [
            e for e in records["enrollments"] if e["class"]["sourcedId"] != klass["sourcedId"]
        ]
    records["enrollments"] = [
        e for e in records["enrollments"] if e["user"]["sourcedId"] != teacher["sourcedId"]
    ]
    orphan = dict(records["demographics"][0], sourcedId="ghost-student")
    records["demographics"].append(orphan)
    found = failures(wh, stage(wh, records))
    assert summary(found) == {
        ("users", teacher["sourcedId"], "orgs.sourcedId", "ghost-org"),
        ("courses", course["sourcedId"], "org.sourcedId", "ghost-district"),
        ("demographics", "ghost-student", "sourcedId", "ghost-student"),
    }


def test_sessions_need_a_parent_chain_to_a_school_year(wh: Warehouse, records: Records) -> None:
    sessions = records["academicSessions"]
    year = next(s for s in sessions if s["type"] == "schoolYear")
    term = next(s for s in sessions if s["type"] == "term")
    periods = [
        s for s in sessions if s["type"] == "gradingPeriod" and s["parent"]["sourcedId"] == term["sourcedId"]
    ]
    assert periods
    period = periods[0]
    orphan = dict(copy.deepcopy(term), sourcedId="orphan-term")
    del orphan["parent"]
    loop_a = dict(copy.deepcopy(term), sourcedId="loop-a", parent=ref("academicSession", "loop-b"))
    loop_b = dict(copy.deepcopy(term), sourcedId="loop-b", parent=ref("academicSession", "loop-a"))
    term["parent"] = ref("academicSession", "ghost-year")
    sessions.extend([orphan, loop_a, loop_b])
    found = failures(wh, stage(wh, records))
    session_rejects = {r for r in summary(found) if r[0] == "academic_sessions"}
    assert session_rejects == {
        ("academic_sessions", term["sourcedId"], "parent.sourcedId", "ghost-year"),
        *(
            ("academic_sessions", p["sourcedId"], "parent.sourcedId", term["sourcedId"]) for p in periods
        ),  # cascade
        ("academic_sessions", "orphan-term", "parent.sourcedId", None),
        ("academic_sessions", "loop-a", "parent.sourcedId", "loop-b"),
        ("academic_sessions", "loop-b", "parent.sourcedId", "loop-a"),
    }
    assert year["sourcedId"] not in {r.sourced_id for r in found}
    period_reject = next(r for r in found if r.sourced_id == period["sourcedId"])
    assert "no schoolYear session is reachable" in period_reject.message
    # ... and the cascade continues: classes taught in the broken term, then their enrollments.
    broken_terms = {term["sourcedId"], *(p["sourcedId"] for p in periods)}
    classes = {
        k["sourcedId"]
        for k in active(records, "classes")
        if {t["sourcedId"] for t in k["terms"]} & broken_terms
    }
    assert classes and classes == {r.sourced_id for r in found if r.resource == "classes"}


def test_cascade_course_to_classes_to_enrollments(wh: Warehouse, records: Records) -> None:
    course = active(records, "courses")[0]
    records["courses"].remove(course)
    classes = [k for k in active(records, "classes") if k["course"]["sourcedId"] == course["sourcedId"]]
    enrollments = [e for k in classes for e in enrollments_of(records, k["sourcedId"])]
    assert classes and enrollments
    found = failures(wh, stage(wh, records))
    assert summary(found) == {
        ("classes", k["sourcedId"], "course.sourcedId", course["sourcedId"]) for k in classes
    } | {("enrollments", e["sourcedId"], "class.sourcedId", e["class"]["sourcedId"]) for e in enrollments}
    cascaded = next(r for r in found if r.resource == "enrollments")
    assert "which was itself rejected in this import" in cascaded.message


def test_only_active_records_are_checked_and_tobedeleted_targets_are_missing(
    wh: Warehouse, records: Records
) -> None:
    first = active(records, "enrollments")[0]
    first.update(status="tobedeleted", user=ref("user", "long-gone"))  # may point at anything
    student = active(records, "users", role="student")[0]
    student["status"] = "tobedeleted"
    still_active = [
        e for e in active(records, "enrollments") if e["user"]["sourcedId"] == student["sourcedId"]
    ]
    demographics = [d for d in records["demographics"] if d["sourcedId"] == student["sourcedId"]]
    for d in demographics:
        d["status"] = "tobedeleted"
    found = failures(wh, stage(wh, records))
    assert summary(found) == {
        ("enrollments", e["sourcedId"], "user.sourcedId", student["sourcedId"]) for e in still_active
    }
    assert still_active and first["sourcedId"] not in {r.sourced_id for r in found}


def test_delta_resolves_unchanged_targets_against_the_published_roster(
    wh: Warehouse, records: Records
) -> None:
    wh.publish(stage(wh, records))
    enrollment = copy.deepcopy(active(records, "enrollments")[0])
    enrollment["role"] = "aide"  # an update; its user, class and school are not re-sent
    ghost = dict(copy.deepcopy(enrollment), sourcedId="new-enr", user=ref("user", "ghost-user"))
    klass = copy.deepcopy(
        next(k for k in active(records, "classes") if k["sourcedId"] != enrollment["class"]["sourcedId"])
    )
    klass["status"] = "tobedeleted"
    moved = dict(
        copy.deepcopy(enrollment), sourcedId="moved-enr", **{"class": ref("class", klass["sourcedId"])}
    )
    delta: Records = {"enrollments": [enrollment, ghost, moved], "classes": [klass]}

    delta_id = stage(wh, delta, mode="delta")
    found = failures(wh, delta_id, "delta")
    assert summary(found) == {
        ("enrollments", "new-enr", "user.sourcedId", "ghost-user"),
        ("enrollments", "moved-enr", "class.sourcedId", klass["sourcedId"]),  # re-sent as tobedeleted
    }
    assert "nor the published roster" in found[0].message

    # The same records as a FULL import: nothing else is staged, so every target is missing.
    full_id = stage(wh, delta, mode="full")
    full = summary(failures(wh, full_id, "full"))
    assert ("enrollments", enrollment["sourcedId"], "user.sourcedId", enrollment["user"]["sourcedId"]) in full


def test_delta_sessions_use_published_parents(wh: Warehouse, records: Records) -> None:
    wh.publish(stage(wh, records))
    period = copy.deepcopy(next(s for s in records["academicSessions"] if s["type"] == "gradingPeriod"))
    period["title"] = "Renamed"
    delta_id = stage(wh, {"academicSessions": [period]}, mode="delta")
    assert failures(wh, delta_id, "delta") == []
    assert {r.sourced_id for r in failures(wh, stage(wh, {"academicSessions": [period]}), "full")} == {
        period["sourcedId"]
    }


def test_other_imports_and_districts_are_ignored(wh: Warehouse, records: Records) -> None:
    broken = copy.deepcopy(records)
    broken["enrollments"][0]["user"] = ref("user", "ghost")
    broken_id = stage(wh, broken)
    good_id = stage(wh, records)
    assert failures(wh, good_id) == []
    assert len(failures(wh, broken_id)) == 1


# -- warnings -------------------------------------------------------------------------------------------


def _classes_without_teacher(records: Records) -> set[str]:
    taught = {e["class"]["sourcedId"] for e in active(records, "enrollments", role="teacher")}
    return {k["sourcedId"] for k in active(records, "classes", classType="scheduled")} - taught


def warnings(wh: Warehouse, import_id: int) -> list[Any]:
    with wh.engine.begin() as conn:
        return find_reference_warnings(conn, import_id, DISTRICT)


def test_scheduled_class_without_teacher_warns(wh: Warehouse, records: Records) -> None:
    klass = active(records, "classes", classType="scheduled")[0]
    for e in enrollments_of(records, klass["sourcedId"]):
        if e["role"] == "teacher":
            e["role"] = "aide"
    homeroom = active(records, "classes", classType="homeroom")[0]
    records["enrollments"] = [
        e
        for e in records["enrollments"]
        if not (e["class"]["sourcedId"] == homeroom["sourcedId"] and e["role"] == "teacher")
    ]
    expected = _classes_without_teacher(records)
    assert klass["sourcedId"] in expected and homeroom["sourcedId"] not in expected
    found = warnings(wh, stage(wh, records))
    assert {w.sourced_id for w in found} == expected
    warning = next(w for w in found if w.sourced_id == klass["sourcedId"])
    assert (warning.resource, warning.check, warning.severity, warning.field) == (
        "classes",
        CLASS_WITHOUT_TEACHER,
        "warning",
        "*",
    )
    assert warning.message.startswith(f"district 'springfield', classes '{klass['sourcedId']}': ")


def test_teacher_enrollment_must_be_active(wh: Warehouse, records: Records) -> None:
    klass = active(records, "classes", classType="scheduled")[0]
    for e in enrollments_of(records, klass["sourcedId"]):
        if e["role"] == "teacher":
            e["status"] = "tobedeleted"
    assert klass["sourcedId"] in {w.sourced_id for w in warnings(wh, stage(wh, records))}


def test_delta_counts_published_teachers(wh: Warehouse, records: Records) -> None:
    klass = copy.deepcopy(active(records, "classes", classType="scheduled")[0])
    teachers = [e for e in enrollments_of(records, klass["sourcedId"]) if e["role"] == "teacher"]
    assert teachers
    wh.publish(stage(wh, records))
    klass["title"] = "Renamed"
    assert warnings(wh, stage(wh, {"classes": [klass]}, mode="delta")) == []
    dropped = [dict(copy.deepcopy(e), status="tobedeleted") for e in teachers]
    found = warnings(wh, stage(wh, {"classes": [klass], "enrollments": dropped}, mode="delta"))
    assert [w.sourced_id for w in found] == [klass["sourcedId"]]
