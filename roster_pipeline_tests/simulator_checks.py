"""Invariants of a simulated district, shared by the generator and mutation tests, and the ids the
OpenAPI conformance tests (1.1 and 1.2) put into path templates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from roster_pipeline.simulator.district import Record, SimulatedDistrict

# href collection -> (base collection, allowed ref types)
REF_TARGETS: dict[str, tuple[str, set[str]]] = {
    "orgs": ("orgs", {"org"}),
    "academicSessions": ("academicSessions", {"academicSession", "term", "gradingPeriod"}),
    "courses": ("courses", {"course"}),
    "classes": ("classes", {"class"}),
    "users": ("users", {"user", "student", "teacher"}),
}

# The collection a field's references must point into.
FIELD_TARGETS: dict[str, str] = {
    "parent": "",  # orgs -> orgs, academicSessions -> academicSessions (same collection)
    "children": "",
    "schoolYear": "academicSessions",
    "terms": "academicSessions",
    "org": "orgs",
    "orgs": "orgs",
    "school": "orgs",
    "course": "courses",
    "class": "classes",
    "user": "users",
    "agents": "users",
}


def references(record: Record) -> Iterator[tuple[str, dict[str, Any]]]:
    """(field, reference) for every GUIDRef in the record."""
    for key, value in record.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict) and "href" in item:
                yield key, item


def broken_references(district: SimulatedDistrict, *, active_only: bool) -> list[str]:
    """Every reference that does not point at an existing record of the right collection and type."""
    problems: list[str] = []
    for collection, records in district.collections.items():
        for sourced_id, record in records.items():
            if active_only and record["status"] != "active":
                continue
            for key, ref in references(record):
                expected = FIELD_TARGETS.get(key)
                if expected is None:
                    problems.append(f"{collection}/{sourced_id}: unexpected reference field {key}")
                    continue
                target_collection = expected or collection
                target, types = REF_TARGETS[target_collection]
                if ref["href"] != f"/{target_collection}/{ref['sourcedId']}":
                    problems.append(f"{collection}/{sourced_id}.{key}: href {ref['href']}")
                if ref["type"] not in types:
                    problems.append(f"{collection}/{sourced_id}.{key}: type {ref['type']}")
                if ref["sourcedId"] not in district.collections[target]:
                    problems.append(f"{collection}/{sourced_id}.{key}: missing {target}/{ref['sourcedId']}")
    return problems


def active_student_enrollment_counts(district: SimulatedDistrict) -> dict[str, int]:
    counts = {
        u["sourcedId"]: 0
        for u in district.collections["users"].values()
        if u["role"] == "student" and u["status"] == "active"
    }
    for enrollment in district.collections["enrollments"].values():
        if enrollment["status"] == "active" and enrollment["role"] == "student":
            user_id = enrollment["user"]["sourcedId"]
            if user_id in counts:
                counts[user_id] += 1
    return counts


def first_record(district: SimulatedDistrict, collection: str, **where: str) -> dict[str, Any]:
    """The first stored record of ``collection`` whose fields equal ``where``."""
    return next(
        r for r in district.collections[collection].values() if all(r.get(k) == v for k, v in where.items())
    )


def path_values(district: SimulatedDistrict) -> dict[str, str]:
    """Ids for the OpenAPI path templates' parameters: a school with a class, a student, a teacher..."""
    school = first_record(district, "orgs", type="school")
    klass = next(
        c for c in district.collections["classes"].values() if c["school"]["sourcedId"] == school["sourcedId"]
    )
    student = first_record(district, "users", role="student")
    return {
        "schoolSourcedId": school["sourcedId"],
        "classSourcedId": klass["sourcedId"],
        "studentSourcedId": student["sourcedId"],
        "teacherSourcedId": first_record(district, "users", role="teacher")["sourcedId"],
        "userSourcedId": student["sourcedId"],
        "termSourcedId": klass["terms"][0]["sourcedId"],
        "courseSourcedId": klass["course"]["sourcedId"],
        "lineItemSourcedId": "no-such-lineitem",
    }


#: For each single-read endpoint (``/schools/{sourcedId}``...), the stored collection and what its record must be.
SINGLE_READS: dict[str, tuple[str, dict[str, str]]] = {
    "orgs": ("orgs", {}),
    "schools": ("orgs", {"type": "school"}),
    "academicSessions": ("academicSessions", {}),
    "terms": ("academicSessions", {"type": "term"}),
    "gradingPeriods": ("academicSessions", {"type": "gradingPeriod"}),
    "courses": ("courses", {}),
    "classes": ("classes", {}),
    "users": ("users", {}),
    "students": ("users", {"role": "student"}),
    "teachers": ("users", {"role": "teacher"}),
    "enrollments": ("enrollments", {}),
    "demographics": ("demographics", {}),
}


def single_read_id(district: SimulatedDistrict, endpoint: str) -> str | None:
    """A sourcedId the single-read ``endpoint`` serves (None: the simulator holds no such records)."""
    if endpoint not in SINGLE_READS:
        return None  # gradebook/resources: the simulator holds none
    base, where = SINGLE_READS[endpoint]
    found = [r for r in district.collections[base].values() if all(r.get(k) == v for k, v in where.items())]
    return found[0]["sourcedId"] if found else None
