"""Which records an endpoint serves: derived collections, nested reads, and their cached indexes.

The district holds only base collections; ``/schools``, ``/students``, ``/classes/{id}/teachers``
and friends are views over them. Computing a view is O(district), so it happens once per
(endpoint, parent ids, filter, sort, district.version) and lands in a small LRU. A page request
after that is a list slice: O(page). Relation indexes (enrollments by class, classes by school ...)
are likewise built once per district version, lazily, only for the relations actually asked for.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from roster_pipeline.simulator.district import SimulatedDistrict
from roster_pipeline.simulator.query import Query, Record, apply


@dataclass(frozen=True)
class Collection:
    """A top-level endpoint: which base collection it reads, its envelopes, and its subset."""

    base: str
    envelope: str
    singular: str
    where: tuple[str, str] | None = None  # (field, value) the record must have, e.g. ("role", "student")

    def admits(self, record: Record) -> bool:
        return self.where is None or record.get(self.where[0]) == self.where[1]


COLLECTIONS: dict[str, Collection] = {
    "orgs": Collection("orgs", "orgs", "org"),
    "schools": Collection("orgs", "orgs", "org", ("type", "school")),
    "academicSessions": Collection("academicSessions", "academicSessions", "academicSession"),
    "terms": Collection("academicSessions", "academicSessions", "academicSession", ("type", "term")),
    "gradingPeriods": Collection(
        "academicSessions", "academicSessions", "academicSession", ("type", "gradingPeriod")
    ),
    "courses": Collection("courses", "courses", "course"),
    "classes": Collection("classes", "classes", "class"),
    "users": Collection("users", "users", "user"),
    "students": Collection("users", "users", "user", ("role", "student")),
    "teachers": Collection("users", "users", "user", ("role", "teacher")),
    "enrollments": Collection("enrollments", "enrollments", "enrollment"),
    "demographics": Collection("demographics", "demographics", "demographics"),
}

# Gradebook and resources services: the simulator has no gradebook data, but consumers (SDS) probe
# these endpoints, so they answer with the right envelope and an empty list (unknown id -> 404).
EMPTY_COLLECTIONS: dict[str, Collection] = {
    "lineItems": Collection("lineItems", "lineItems", "lineItem"),
    "categories": Collection("categories", "categories", "category"),
    "results": Collection("results", "results", "result"),
    "resources": Collection("resources", "resources", "resource"),
}


def _ref_id(record: Record, key: str) -> str | None:
    ref = record.get(key)
    return ref.get("sourcedId") if isinstance(ref, dict) else None


def _ref_ids(record: Record, key: str) -> list[str]:
    refs = record.get(key)
    if not isinstance(refs, list):
        return []
    return [r["sourcedId"] for r in refs if isinstance(r, dict) and "sourcedId" in r]


# relation name -> (base collection, function giving the parent ids a record belongs to)
_RELATIONS: dict[str, tuple[str, Callable[[Record], list[str]]]] = {
    "enrollments_by_class": ("enrollments", lambda r: [i for i in [_ref_id(r, "class")] if i]),
    "enrollments_by_user": ("enrollments", lambda r: [i for i in [_ref_id(r, "user")] if i]),
    "enrollments_by_school": ("enrollments", lambda r: [i for i in [_ref_id(r, "school")] if i]),
    "classes_by_school": ("classes", lambda r: [i for i in [_ref_id(r, "school")] if i]),
    "classes_by_course": ("classes", lambda r: [i for i in [_ref_id(r, "course")] if i]),
    "classes_by_term": ("classes", lambda r: _ref_ids(r, "terms")),
    "courses_by_org": ("courses", lambda r: [i for i in [_ref_id(r, "org")] if i]),
    "users_by_org": ("users", lambda r: _ref_ids(r, "orgs")),
    "sessions_by_parent": ("academicSessions", lambda r: [i for i in [_ref_id(r, "parent")] if i]),
}


class DistrictIndex:
    """Relation indexes for one district version; dropped wholesale when the version moves on."""

    def __init__(self, district: SimulatedDistrict, version: int) -> None:
        self.district = district
        self.version = version
        self._relations: dict[str, dict[str, list[Record]]] = {}
        self._lock = threading.Lock()

    def relation(self, name: str) -> dict[str, list[Record]]:
        with self._lock:
            found = self._relations.get(name)
            if found is not None:
                return found
            base, parents_of = _RELATIONS[name]
            grouped: dict[str, list[Record]] = {}
            with self.district.lock:
                for record in self.district.collections[base].values():
                    for parent in parents_of(record):
                        grouped.setdefault(parent, []).append(record)
            self._relations[name] = grouped
            return grouped

    def users_via_enrollments(self, relation: str, parent_id: str, role: str) -> list[Record]:
        """Distinct users holding an enrollment with ``role`` in the parent (class), in user order."""
        users = self.district.collections["users"]
        seen: set[str] = set()
        out: list[Record] = []
        for enrollment in self.relation(relation).get(parent_id, ()):
            uid = _ref_id(enrollment, "user")
            if enrollment.get("role") == role and uid and uid not in seen and uid in users:
                seen.add(uid)
                out.append(users[uid])
        return out

    def classes_of_user(self, user_id: str) -> list[Record]:
        classes = self.district.collections["classes"]
        seen: set[str] = set()
        out: list[Record] = []
        for enrollment in self.relation("enrollments_by_user").get(user_id, ()):
            cid = _ref_id(enrollment, "class")
            if cid and cid not in seen and cid in classes:
                seen.add(cid)
                out.append(classes[cid])
        return out


@dataclass(frozen=True)
class Listing:
    """What a list endpoint resolved to: the collection shape plus how to produce its base records."""

    shape: Collection
    key: tuple[Any, ...]
    source: Callable[[DistrictIndex], list[Record]]


def top_level(name: str) -> Listing:
    shape = COLLECTIONS[name]

    def source(index: DistrictIndex) -> list[Record]:
        with index.district.lock:
            values = index.district.collections[shape.base].values()
            return [r for r in values if shape.admits(r)] if shape.where else list(values)

    return Listing(shape, ("top", name), source)


def empty(name: str) -> Listing:
    return Listing(EMPTY_COLLECTIONS[name], ("empty", name), lambda index: [])


def nested(segments: list[str]) -> Listing | None:
    """Resolve ``/parent/{id}/child[/...]`` to a listing, or None when the path is not an endpoint."""
    n = len(segments)
    if n == 3:
        parent, pid, child = segments
        return _NESTED.get((parent, child), lambda _pid: None)(pid)
    if n == 5 and segments[0] == "schools" and segments[2] == "classes":
        sid, cid, child = segments[1], segments[3], segments[4]
        if child == "enrollments":
            return _school_class(sid, cid, None, "enrollments")
        if child in ("students", "teachers"):
            return _school_class(sid, cid, child[:-1], "users")
        return None
    if (
        n == 5
        and segments[0] == "classes"
        and segments[4] == "results"
        and segments[2] in ("lineItems", "students")
    ):
        return empty("results")
    return None


def _school_class(sid: str, cid: str, role: str | None, envelope: str) -> Listing:
    shape = COLLECTIONS["enrollments"] if role is None else COLLECTIONS["users"]

    def source(index: DistrictIndex) -> list[Record]:
        if role is None:
            return [
                e for e in index.relation("enrollments_by_class").get(cid, ()) if _ref_id(e, "school") == sid
            ]
        classes = index.district.collections["classes"]
        if cid not in classes or _ref_id(classes[cid], "school") != sid:
            return []
        return index.users_via_enrollments("enrollments_by_class", cid, role)

    return Listing(shape, ("school-class", sid, cid, role), source)


def _by_relation(
    shape_name: str, relation: str, where: tuple[str, str] | None = None
) -> Callable[[str], Listing]:
    shape = COLLECTIONS[shape_name]

    def make(pid: str) -> Listing:
        def source(index: DistrictIndex) -> list[Record]:
            records = index.relation(relation).get(pid, [])
            if where is None:
                return list(records)
            return [r for r in records if r.get(where[0]) == where[1]]

        return Listing(shape, ("rel", relation, pid, where), source)

    return make


def _users_in_class(role: str) -> Callable[[str], Listing]:
    def make(cid: str) -> Listing:
        return Listing(
            COLLECTIONS["users"],
            ("class-users", cid, role),
            lambda index: index.users_via_enrollments("enrollments_by_class", cid, role),
        )

    return make


def _classes_of_user(role: str | None) -> Callable[[str], Listing]:
    def make(uid: str) -> Listing:
        def source(index: DistrictIndex) -> list[Record]:
            user = index.district.collections["users"].get(uid)
            if user is None or (role is not None and user.get("role") != role):
                return []
            return index.classes_of_user(uid)

        return Listing(COLLECTIONS["classes"], ("user-classes", uid, role), source)

    return make


def _all_terms(_sid: str) -> Listing:
    # 1.1 academic sessions carry no org reference: every term of the district applies to each school.
    return top_level("terms")


_NESTED: dict[tuple[str, str], Callable[[str], Listing | None]] = {
    ("schools", "classes"): _by_relation("classes", "classes_by_school"),
    ("schools", "courses"): _by_relation("courses", "courses_by_org"),
    ("schools", "enrollments"): _by_relation("enrollments", "enrollments_by_school"),
    ("schools", "students"): _by_relation("users", "users_by_org", ("role", "student")),
    ("schools", "teachers"): _by_relation("users", "users_by_org", ("role", "teacher")),
    ("schools", "terms"): _all_terms,
    ("classes", "students"): _users_in_class("student"),
    ("classes", "teachers"): _users_in_class("teacher"),
    ("classes", "lineItems"): lambda _cid: empty("lineItems"),
    ("classes", "results"): lambda _cid: empty("results"),
    ("classes", "resources"): lambda _cid: empty("resources"),
    ("courses", "classes"): _by_relation("classes", "classes_by_course"),
    ("courses", "resources"): lambda _cid: empty("resources"),
    ("terms", "classes"): _by_relation("classes", "classes_by_term"),
    ("terms", "gradingPeriods"): _by_relation(
        "academicSessions", "sessions_by_parent", ("type", "gradingPeriod")
    ),
    ("students", "classes"): _classes_of_user("student"),
    ("teachers", "classes"): _classes_of_user("teacher"),
    ("users", "classes"): _classes_of_user(None),
}


class IndexCache:
    """A small thread-safe LRU of filtered+sorted record lists, keyed on the district version.

    Concurrent requests for the same key wait for one build instead of each sorting a million
    records (a sync client typically opens several connections at once on the first page).
    """

    def __init__(self, max_entries: int = 48) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[Any, ...], list[Record]] = OrderedDict()
        self._building: dict[tuple[Any, ...], threading.Lock] = {}
        self._lock = threading.Lock()
        self._indexes: dict[int, DistrictIndex] = {}  # id(district) -> index of its current version
        self.builds = 0  # how many lists were computed (tests assert caching works)

    def district_index(self, district: SimulatedDistrict) -> DistrictIndex:
        with self._lock:
            index = self._indexes.get(id(district))
            if index is None or index.version != district.version:
                index = DistrictIndex(district, district.version)
                self._indexes[id(district)] = index
            return index

    def records(self, district: SimulatedDistrict, listing: Listing, query: Query) -> list[Record]:
        index = self.district_index(district)
        key = (id(district), index.version, listing.key, query.index_key())
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found
            build_lock = self._building.setdefault(key, threading.Lock())
        with build_lock:
            with self._lock:
                found = self._entries.get(key)
                if found is not None:
                    return found
            result = apply(listing.source(index), query)
            with self._lock:
                self.builds += 1
                self._entries[key] = result
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
                self._building.pop(key, None)
            return result

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._indexes.clear()
