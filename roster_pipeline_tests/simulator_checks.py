"""Invariants of a simulated district, shared by the generator and mutation tests."""

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
