"""Changes to a simulated district, each reporting exactly what it changed.

Sync tests assert that the pipeline's added / updated / deleted counts equal what the SIS changed, so
every mutation returns a :class:`MutationResult` listing each touched sourcedId once per base
collection, in exactly one category, side effects included (the enrollments of a removed student, a
guardian whose child left, the district whose school list shrank).

Rules every mutation follows:

- runs under ``district.lock``, bumps ``district.version`` exactly once;
- every added or changed record gets the same ``dateLastModified`` stamp, strictly later than any
  stamp already in the district (so a delta sync since the last pull sees it), see :func:`_stamp_for`;
- a record changed and then retired counts once, as retired; a record marked ``tobedeleted`` and then
  removed counts once, as removed; marking an already-``tobedeleted`` record changes nothing;
- active records never reference missing records afterwards;
- nested values (references, lists) may be shared between records: assign new ones, never edit in place;
- mutations draw from ``random.Random(f"{kind}:{seed}:{version}")``: the same seed on the same district
  state gives the same change, and repeating a call with the same seed changes other records.
"""

from __future__ import annotations

import gc
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from . import names
from .district import BASE_COLLECTIONS, Record, SimulatedDistrict
from .records import (
    ACTIVE,
    FALSE,
    GRADE_LISTS,
    GRADES,
    TOBEDELETED,
    UsernameAllocator,
    birth_date_for,
    build_calendar,
    class_ref,
    course_ref,
    demographics_record,
    enrollment_record,
    format_timestamp,
    next_grade,
    org_ref,
    session_ref,
    student_email_domain,
    student_record,
    unused_sourced_id,
    user_ref,
)

RetireMode = Literal["tobedeleted", "vanish"]


# --------------------------------------------------------------------------------------------------
# What changed
# --------------------------------------------------------------------------------------------------
@dataclass
class CollectionChanges:
    """The sourcedIds of one base collection a mutation changed; an id is in at most one set.

    ``tobedeleted``: was active, now served with status tobedeleted.  ``removed``: no longer served at
    all (whatever its status was).
    """

    added: set[str] = field(default_factory=set)
    updated: set[str] = field(default_factory=set)
    tobedeleted: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "tobedeleted": len(self.tobedeleted),
            "removed": len(self.removed),
        }

    def is_empty(self) -> bool:
        return not (self.added or self.updated or self.tobedeleted or self.removed)


@dataclass
class MutationResult:
    """Exactly what one mutation changed, per base collection."""

    kind: str
    version: int  # district.version after the mutation
    timestamp: str  # the dateLastModified every added/changed record now carries
    changes: dict[str, CollectionChanges] = field(
        default_factory=lambda: {name: CollectionChanges() for name in BASE_COLLECTIONS}
    )
    details: dict[str, Any] = field(default_factory=dict)  # mutation-specific facts (school id, year ...)

    def touched(self, collection: str) -> set[str]:
        """Ids whose records now carry ``timestamp`` (added, updated, or marked tobedeleted)."""
        change = self.changes[collection]
        return change.added | change.updated | change.tobedeleted

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts (ids are left out: a rollover touches millions)."""
        return {
            "kind": self.kind,
            "version": self.version,
            "timestamp": self.timestamp,
            "changes": {name: change.counts() for name, change in self.changes.items()},
            "details": self.details,
        }


class _Edit:
    """Applies record changes and files each sourcedId in the right category of the result."""

    def __init__(self, district: SimulatedDistrict, result: MutationResult) -> None:
        self.district = district
        self.result = result
        self.stamp = result.timestamp

    def add(self, collection: str, record: Record) -> None:
        record["dateLastModified"] = self.stamp
        sourced_id = record["sourcedId"]
        self.district.collections[collection][sourced_id] = record
        self.result.changes[collection].added.add(sourced_id)

    def update(self, collection: str, sourced_id: str, **fields: Any) -> bool:
        """Set fields (``_DROP`` deletes one); does nothing and returns False when nothing differs."""
        record = self.district.collections[collection][sourced_id]
        changed = False
        for key, value in fields.items():
            if value is _DROP:
                if key in record:
                    del record[key]
                    changed = True
            elif record.get(key, _DROP) != value:
                record[key] = value
                changed = True
        if changed:
            record["dateLastModified"] = self.stamp
            change = self.result.changes[collection]
            if sourced_id not in change.added and sourced_id not in change.tobedeleted:
                change.updated.add(sourced_id)
        return changed

    def mark_tobedeleted(self, collection: str, sourced_id: str) -> None:
        record = self.district.collections[collection].get(sourced_id)
        if record is None or record["status"] != ACTIVE:
            return
        record["status"] = TOBEDELETED
        record["dateLastModified"] = self.stamp
        change = self.result.changes[collection]
        change.updated.discard(sourced_id)
        if sourced_id not in change.added:
            change.tobedeleted.add(sourced_id)

    def remove(self, collection: str, sourced_id: str) -> None:
        if self.district.collections[collection].pop(sourced_id, None) is None:
            return
        change = self.result.changes[collection]
        change.updated.discard(sourced_id)
        change.tobedeleted.discard(sourced_id)
        if sourced_id in change.added:
            change.added.discard(sourced_id)  # never served: nothing happened from the outside
        else:
            change.removed.add(sourced_id)

    def retire(self, collection: str, sourced_id: str, mode: RetireMode) -> None:
        if mode == "vanish":
            self.remove(collection, sourced_id)
        else:
            self.mark_tobedeleted(collection, sourced_id)


class _Drop:
    def __repr__(self) -> str:
        return "<drop field>"


_DROP: Any = _Drop()


def _stamp_for(district: SimulatedDistrict, now: datetime | None) -> str:
    """``now`` (default: the wall clock), pushed 1 ms past the district's latest stamp if not later.

    A mutation that carried an older stamp than records it did not touch would be invisible to a
    delta sync; generated districts may be dated after today's date (a future school year).
    """
    moment = datetime.now(UTC) if now is None else now
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    latest = max(
        (
            record["dateLastModified"]
            for records in district.collections.values()
            for record in records.values()
        ),
        default=None,
    )
    if latest is not None:
        floor = datetime.strptime(latest, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) + timedelta(
            milliseconds=1
        )
        moment = max(moment.astimezone(UTC), floor)
    return format_timestamp(moment)


class _Mutation:
    """Context manager: lock, stamp, RNG and result for one mutation; bumps the version on success."""

    def __init__(self, district: SimulatedDistrict, kind: str, seed: int, now: datetime | None) -> None:
        self.district = district
        self.kind = kind
        self.seed = seed
        self.now = now

    def __enter__(self) -> tuple[_Edit, random.Random]:
        self.district.lock.acquire()
        # With a million records alive, every full GC pass costs about a second and frees nothing
        # here; a rollover would trigger dozens of them.
        self.collector_was_enabled = gc.isenabled()
        gc.disable()
        try:
            self.result = MutationResult(
                self.kind, self.district.version, _stamp_for(self.district, self.now)
            )
            rng = random.Random(f"{self.kind}:{self.seed}:{self.district.version}")
        except BaseException:
            self._release()
            raise
        return _Edit(self.district, self.result), rng

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            changed = any(not change.is_empty() for change in self.result.changes.values())
            if exc_type is None or changed:  # a rejected call (nothing done) leaves the version alone
                self.district.bump()
            self.result.version = self.district.version
        finally:
            self._release()

    def _release(self) -> None:
        if self.collector_was_enabled:
            gc.enable()
        self.district.lock.release()


def _invalid(kind: str, parameter: str, message: str) -> ValueError:
    return ValueError(f"{kind}: invalid {parameter!r}: {message}")


def _check_percent(kind: str, percent: float) -> None:
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 < percent <= 100:
        raise _invalid(kind, "percent", f"must be a number in (0, 100], got {percent!r}")


def _check_count(kind: str, count: int, available: int, what: str) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise _invalid(kind, "count", f"must be a positive integer, got {count!r}")
    if count > available:
        raise _invalid(kind, "count", f"{count} requested but only {available} {what}")


def _check_mode(kind: str, mode: str, allowed: tuple[str, ...]) -> None:
    if mode not in allowed:
        raise _invalid(kind, "mode", f"must be one of {', '.join(allowed)}, got {mode!r}")


# --------------------------------------------------------------------------------------------------
# Views over the district the mutations need (rebuilt per call: mutations are rare, serving is not)
# --------------------------------------------------------------------------------------------------
def _active_ids(records: dict[str, Record], **criteria: str) -> list[str]:
    """Sorted ids of active records matching ``field == value`` criteria (sorted: stable RNG picks)."""
    return sorted(
        sourced_id
        for sourced_id, record in records.items()
        if record["status"] == ACTIVE and all(record.get(k) == v for k, v in criteria.items())
    )


def _enrollments_by_user(district: SimulatedDistrict) -> dict[str, list[str]]:
    index: dict[str, list[str]] = defaultdict(list)
    for sourced_id, enrollment in district.collections["enrollments"].items():
        index[enrollment["user"]["sourcedId"]].append(sourced_id)
    return index


def _class_dates(district: SimulatedDistrict, klass: Record) -> tuple[str, str]:
    """Enrollment begin/end for a class: the span of its terms."""
    sessions = district.collections["academicSessions"]
    terms = [sessions[t["sourcedId"]] for t in klass.get("terms", []) if t["sourcedId"] in sessions]
    if not terms:
        year = _current_year_session(district)
        return year["startDate"], year["endDate"]
    return min(t["startDate"] for t in terms), max(t["endDate"] for t in terms)


def _current_year_session(district: SimulatedDistrict) -> Record:
    year = str(district.school_year)
    for record in district.collections["academicSessions"].values():
        if record["type"] == "schoolYear" and record["schoolYear"] == year and record["status"] == ACTIVE:
            return record
    raise ValueError(f"district has no active schoolYear session for {year}")


@dataclass
class _SchoolClasses:
    """A school's active classes, by grade, with the enrollment dates each implies."""

    by_grade: dict[str, list[tuple[str, str, str]]] = field(default_factory=lambda: defaultdict(list))
    all: list[tuple[str, str, str]] = field(default_factory=list)

    def pool_for(self, grade: str) -> list[tuple[str, str, str]]:
        """Classes of the grade when there are enough to fill a schedule, else any class of the school."""
        pool = self.by_grade.get(grade, [])
        return pool if len(pool) >= 5 else self.all


def _classes_by_school(district: SimulatedDistrict) -> dict[str, _SchoolClasses]:
    schools: dict[str, _SchoolClasses] = defaultdict(_SchoolClasses)
    for class_id in sorted(district.collections["classes"]):
        klass = district.collections["classes"][class_id]
        if klass["status"] != ACTIVE:
            continue
        begin, end = _class_dates(district, klass)
        entry = (class_id, begin, end)
        school = schools[klass["school"]["sourcedId"]]
        school.all.append(entry)
        for grade in klass.get("grades", []):
            school.by_grade[grade].append(entry)
    return schools


def _active_school_ids(district: SimulatedDistrict) -> list[str]:
    return _active_ids(district.collections["orgs"], type="school")


def _retire_users(edit: _Edit, user_ids: Iterable[str], mode: RetireMode) -> None:
    """Retire users with everything that hangs off them.

    Their enrollments (the active ones when marking, all when vanishing), their demographics, and their
    place in guardians' ``agents``: a guardian left with no children is retired the same way.
    """
    district = edit.district
    users = district.collections["users"]
    leaving = {user_id for user_id in user_ids if user_id in users}
    if not leaving:
        return
    theirs = [
        e_id for e_id, e in district.collections["enrollments"].items() if e["user"]["sourcedId"] in leaving
    ]
    for enrollment_id in theirs:
        edit.retire("enrollments", enrollment_id, mode)
    orphaned_guardians: list[str] = []
    for guardian_id in sorted(users):
        agents = users[guardian_id].get("agents")
        if guardian_id in leaving or not agents or not any(a["sourcedId"] in leaving for a in agents):
            continue
        remaining = [a for a in agents if a["sourcedId"] not in leaving]
        if remaining:
            edit.update("users", guardian_id, agents=remaining)
        else:
            orphaned_guardians.append(guardian_id)
    for user_id in sorted(leaving):
        edit.retire("demographics", user_id, mode)
        edit.retire("users", user_id, mode)
    if orphaned_guardians:
        _retire_users(edit, orphaned_guardians, mode)


def _new_student(
    edit: _Edit,
    rng: random.Random,
    usernames: UsernameAllocator,
    identifier: str,
    school_id: str,
    grade: str,
    classes: list[tuple[str, str, str]],
) -> str:
    """Add one student with email, demographics and 5-8 enrollments (all of ``classes`` if fewer)."""
    district = edit.district
    given, family = rng.choice(names.GIVEN_NAMES), rng.choice(names.FAMILY_NAMES)
    student_id = unused_sourced_id(rng, district)
    username = usernames.take(given, family)
    school = org_ref(school_id)
    record = student_record(
        rng,
        student_id,
        ACTIVE,
        edit.stamp,
        username=username,
        given=given,
        family=family,
        identifier=identifier,
        orgs=[school],
        grade=grade,
    )
    record["email"] = f"{username}@{student_email_domain(district.name)}"
    edit.add("users", record)
    edit.add(
        "demographics",
        demographics_record(
            rng,
            student_id,
            ACTIVE,
            edit.stamp,
            birth_date_for(rng, grade, district.school_year, {}),
            rng.choice(names.CITIES_OF_BIRTH),
        ),
    )
    student = user_ref(student_id)
    for class_id, begin, end in rng.sample(classes, min(len(classes), rng.randint(5, 8))):
        enrollment_id = unused_sourced_id(rng, district)
        edit.add(
            "enrollments",
            enrollment_record(
                enrollment_id,
                ACTIVE,
                edit.stamp,
                student,
                class_ref(class_id),
                school,
                "student",
                FALSE,
                begin,
                end,
            ),
        )
    return student_id


def _next_student_number(district: SimulatedDistrict) -> int:
    numbers = [
        int(u["identifier"])
        for u in district.collections["users"].values()
        if u["role"] == "student" and str(u.get("identifier", "")).isdigit()
    ]
    return max(numbers, default=1_000_000) + 1


# --------------------------------------------------------------------------------------------------
# The mutations
# --------------------------------------------------------------------------------------------------
def change_users(
    district: SimulatedDistrict, percent: float, *, seed: int = 1, now: datetime | None = None
) -> MutationResult:
    """Edit one field of ``percent``% of active users (at least one): familyName, email, phone,
    middleName, or (students) grades — always to a value different from the old one; new emails
    stay unique."""
    kind = "change_users"
    _check_percent(kind, percent)
    with _Mutation(district, kind, seed, now) as (edit, rng):
        users = district.collections["users"]
        candidates = _active_ids(users)
        chosen = rng.sample(candidates, min(len(candidates), max(1, round(len(candidates) * percent / 100))))
        emails = {u["email"] for u in users.values() if "email" in u}
        for user_id in chosen:
            user = users[user_id]
            options = ["familyName", "phone", "middleName"]
            if "email" in user:
                options.append("email")
            if user["role"] == "student" and user.get("grades"):
                options.append("grades")
            field_name = rng.choice(options)
            if field_name == "familyName":
                family = rng.choice([n for n in names.FAMILY_NAMES if n != user["familyName"]])
                edit.update("users", user_id, familyName=family)
            elif field_name == "middleName":
                middle = rng.choice([n for n in names.GIVEN_NAMES if n != user.get("middleName")])
                edit.update("users", user_id, middleName=middle)
            elif field_name == "phone":
                old = user.get("phone")
                phone = old
                while phone == old:
                    phone = f"555-{rng.randrange(200, 1000):03d}-{rng.randrange(10_000):04d}"
                edit.update("users", user_id, phone=phone)
            elif field_name == "email":
                local, domain = user["email"].split("@", 1)
                suffix = 2
                while f"{local}.{suffix}@{domain}" in emails:
                    suffix += 1
                email = f"{local}.{suffix}@{domain}"
                emails.add(email)
                edit.update("users", user_id, email=email)
            else:
                index = GRADES.index(user["grades"][0])
                neighbours = [GRADES[i] for i in (index - 1, index + 1) if 0 <= i < len(GRADES)]
                edit.update("users", user_id, grades=GRADE_LISTS[rng.choice(neighbours)])
        edit.result.details["users"] = len(chosen)
        return edit.result


def add_students(
    district: SimulatedDistrict,
    count: int,
    *,
    seed: int = 1,
    school_id: str | None = None,
    now: datetime | None = None,
) -> MutationResult:
    """Add ``count`` students (email, username, demographics) to ``school_id`` or random schools,
    each enrolled in 5-8 active classes of their school and grade."""
    kind = "add_students"
    _check_count(kind, count, 10**6, "may be added at once")
    with _Mutation(district, kind, seed, now) as (edit, rng):
        classes = _classes_by_school(district)
        schools = [s for s in _active_school_ids(district) if classes.get(s) and classes[s].all]
        if school_id is not None:
            if school_id not in schools:
                raise _invalid(kind, "school_id", f"{school_id!r} is not an active school with classes")
            schools = [school_id]
        if not schools:
            raise _invalid(kind, "district", "no active school has active classes")
        usernames = UsernameAllocator(u["username"] for u in district.collections["users"].values())
        number = _next_student_number(district)
        for offset in range(count):
            school = rng.choice(schools)
            grade = rng.choice(sorted(classes[school].by_grade) or ["KG"])
            _new_student(
                edit, rng, usernames, str(number + offset), school, grade, classes[school].pool_for(grade)
            )
        return edit.result


def remove_students(
    district: SimulatedDistrict,
    count: int,
    *,
    seed: int = 1,
    mode: RetireMode = "tobedeleted",
    now: datetime | None = None,
) -> MutationResult:
    """Withdraw ``count`` active students: with mode "tobedeleted" the student, their active
    enrollments and demographics are marked tobedeleted; with "vanish" they (and all their
    enrollments) disappear.  Guardians lose the child from ``agents``; a guardian left with no child
    goes the same way."""
    kind = "remove_students"
    _check_mode(kind, mode, ("tobedeleted", "vanish"))
    users = district.collections["users"]
    with _Mutation(district, kind, seed, now) as (edit, rng):
        candidates = _active_ids(users, role="student")
        _check_count(kind, count, len(candidates), "active students")
        _retire_users(edit, rng.sample(candidates, count), mode)
        return edit.result


def move_students(
    district: SimulatedDistrict, count: int, *, seed: int = 1, now: datetime | None = None
) -> MutationResult:
    """Move ``count`` students each from one class to another (a schedule change).

    The enrollment keeps its sourcedId and gets the new class reference (and the new class's dates):
    ``count`` enrollments updated, nothing added or removed.  The target class is an active class of
    the same school the student is not in, another section of the same course when there is one,
    else one of the same grade, else any.
    """
    kind = "move_students"
    _check_count(kind, count, 10**9, "")
    with _Mutation(district, kind, seed, now) as (edit, rng):
        users = district.collections["users"]
        enrollments = district.collections["enrollments"]
        classes = district.collections["classes"]
        by_user = _enrollments_by_user(district)
        school_classes = _classes_by_school(district)
        candidates = _active_ids(users, role="student")
        rng.shuffle(candidates)
        moves: list[tuple[str, str, str, str]] = []  # (enrollment, new class, begin, end)
        for student_id in candidates:
            if len(moves) == count:
                break
            mine = sorted(e for e in by_user.get(student_id, []) if enrollments[e]["status"] == ACTIVE)
            current = {enrollments[e]["class"]["sourcedId"] for e in mine}
            rng.shuffle(mine)
            for enrollment_id in mine:
                old_class = classes.get(enrollments[enrollment_id]["class"]["sourcedId"])
                if old_class is None or old_class["status"] != ACTIVE:
                    continue
                school = school_classes.get(old_class["school"]["sourcedId"])
                options = [c for c in (school.all if school else []) if c[0] not in current]
                same_course = [
                    c
                    for c in options
                    if classes[c[0]]["course"]["sourcedId"] == old_class["course"]["sourcedId"]
                ]
                same_grade = [c for c in options if classes[c[0]].get("grades") == old_class.get("grades")]
                pick_from = same_course or same_grade or options
                if pick_from:
                    moves.append((enrollment_id, *rng.choice(pick_from)))
                    break
        _check_count(kind, count, len(moves), "students can move to a class they are not in")
        for enrollment_id, class_id, begin, end in moves:
            edit.update(
                "enrollments",
                enrollment_id,
                **{"class": class_ref(class_id), "beginDate": begin, "endDate": end},
            )
        return edit.result


def delete_school(
    district: SimulatedDistrict,
    school_id: str | None = None,
    *,
    mode: RetireMode = "vanish",
    now: datetime | None = None,
) -> MutationResult:
    """Take one school out of the SIS (default: the active school whose sourcedId sorts first).

    Retired ("vanish": removed; "tobedeleted": marked) are the school org, its classes, the courses
    it owns, every enrollment at the school or in its classes, and the users whose only org is the
    school (with their enrollments and demographics; guardians as in :func:`remove_students`).
    Users who also belong to another org lose the school from ``orgs`` (updated); the district org
    loses it from ``children`` (updated).
    """
    kind = "delete_school"
    _check_mode(kind, mode, ("tobedeleted", "vanish"))
    with _Mutation(district, kind, 0, now) as (edit, _rng):
        orgs = district.collections["orgs"]
        if school_id is None:
            active = _active_school_ids(district)
            if not active:
                raise _invalid(kind, "school_id", "the district has no active school")
            school_id = active[0]
        school = orgs.get(school_id)
        if school is None or school["type"] != "school":
            raise _invalid(kind, "school_id", f"{school_id!r} is not a school of this district")
        edit.result.details["school_id"] = school_id

        doomed_classes = {
            cid for cid, c in district.collections["classes"].items() if c["school"]["sourcedId"] == school_id
        }
        doomed_enrollments = [
            enrollment_id
            for enrollment_id, enrollment in district.collections["enrollments"].items()
            if enrollment["school"]["sourcedId"] == school_id
            or enrollment["class"]["sourcedId"] in doomed_classes
        ]
        for enrollment_id in doomed_enrollments:
            edit.retire("enrollments", enrollment_id, mode)
        for class_id in sorted(doomed_classes):
            edit.retire("classes", class_id, mode)
        doomed_courses = [
            course_id
            for course_id, course in district.collections["courses"].items()
            if course.get("org", {}).get("sourcedId") == school_id
        ]
        for course_id in doomed_courses:
            edit.retire("courses", course_id, mode)

        leaving: list[str] = []
        for user_id, user in district.collections["users"].items():
            org_ids = [o["sourcedId"] for o in user["orgs"]]
            if school_id not in org_ids:
                continue
            if all(o == school_id for o in org_ids):
                leaving.append(user_id)
            else:
                edit.update("users", user_id, orgs=[o for o in user["orgs"] if o["sourcedId"] != school_id])
        _retire_users(edit, leaving, mode)

        for org_id, org in orgs.items():
            children = org.get("children")
            if children and any(c["sourcedId"] == school_id for c in children):
                edit.update("orgs", org_id, children=[c for c in children if c["sourcedId"] != school_id])
        edit.retire("orgs", school_id, mode)
        return edit.result


def wipe_enrollments(
    district: SimulatedDistrict, percent: float = 90, *, seed: int = 1, now: datetime | None = None
) -> MutationResult:
    """The SIS lost its schedules: ``percent``% of all enrollments (any status) vanish; nothing else
    changes."""
    kind = "wipe_enrollments"
    _check_percent(kind, percent)
    with _Mutation(district, kind, seed, now) as (edit, rng):
        ids = sorted(district.collections["enrollments"])
        for enrollment_id in rng.sample(ids, round(len(ids) * percent / 100)):
            edit.remove("enrollments", enrollment_id)
        return edit.result


def advance_school_year(
    district: SimulatedDistrict,
    *,
    old: Literal["tobedeleted", "gone"] = "tobedeleted",
    seed: int = 1,
    leave_percent: float = 2.0,
    now: datetime | None = None,
) -> MutationResult:
    """Roll the district over to the next school year, as an SIS serving only the active year does.

    - ``school_year`` + 1; a new calendar (schoolYear, two semester terms, four grading periods) is added;
    - every active course and class is re-created for the new year with a new sourcedId (course
      ``schoolYear`` and class ``terms`` point at the new sessions); teachers keep their classes
      (new teacher enrollments, same primary flag);
    - active students move up a grade (users updated); one whose school does not teach the new grade
      moves to a school that does (orgs updated); grade-12 students graduate and ``leave_percent``%
      leave: they are retired like :func:`remove_students`; continuing students get 5-8 new enrollments;
    - guardians follow their children's schools (orgs updated when those change);
    - the old year's sessions, courses, classes and enrollments are marked tobedeleted
      (``old="tobedeleted"``) or disappear, whatever their status (``old="gone"``).
    """
    kind = "advance_school_year"
    _check_mode(kind, old, ("tobedeleted", "gone"))
    if (
        isinstance(leave_percent, bool)
        or not isinstance(leave_percent, int | float)
        or not 0 <= leave_percent <= 100
    ):
        raise _invalid(kind, "leave_percent", f"must be a number in [0, 100], got {leave_percent!r}")
    mode: RetireMode = "tobedeleted" if old == "tobedeleted" else "vanish"
    with _Mutation(district, kind, seed, now) as (edit, rng):
        collections = district.collections
        sessions, courses, classes = (
            collections["academicSessions"],
            collections["courses"],
            collections["classes"],
        )
        users, enrollments = collections["users"], collections["enrollments"]
        old_year = district.school_year
        old_semesters = sorted(
            (
                s
                for s in sessions.values()
                if s["status"] == ACTIVE
                and s["type"] in ("semester", "term")
                and s["schoolYear"] == str(old_year)
            ),
            key=lambda s: s["startDate"],
        )
        old_sessions = list(sessions)
        old_courses = list(courses)
        old_classes = list(classes)
        old_enrollments = list(enrollments)

        calendar = build_calendar(lambda: unused_sourced_id(rng, district), old_year + 1, edit.stamp)
        for record in calendar.records:
            edit.add("academicSessions", record)
        year_ref = session_ref(calendar.year_id)
        term_map = {
            old_term["sourcedId"]: calendar.terms[min(index, len(calendar.terms) - 1)]
            for index, old_term in enumerate(old_semesters)
        }

        new_course: dict[str, str] = {}
        for course_id in sorted(old_courses):
            course = courses[course_id]
            if course["status"] != ACTIVE:
                continue
            new_id = unused_sourced_id(rng, district)
            new_course[course_id] = new_id
            edit.add("courses", {**course, "sourcedId": new_id, "schoolYear": year_ref})

        new_class: dict[str, str] = {}
        new_class_dates: dict[str, tuple[str, str]] = {}
        school_classes: dict[str, _SchoolClasses] = defaultdict(_SchoolClasses)
        for class_id in sorted(old_classes):
            klass = classes[class_id]
            if klass["status"] != ACTIVE or klass["course"]["sourcedId"] not in new_course:
                continue
            terms = [term_map[t["sourcedId"]] for t in klass.get("terms", []) if t["sourcedId"] in term_map]
            terms = list(dict.fromkeys(terms)) or list(calendar.terms)
            new_id = unused_sourced_id(rng, district)
            new_class[class_id] = new_id
            edit.add(
                "classes",
                {
                    **klass,
                    "sourcedId": new_id,
                    "course": course_ref(new_course[klass["course"]["sourcedId"]]),
                    "terms": [session_ref(t.sourced_id) for t in terms],
                },
            )
            begin = min(t.start for t in terms) if len(terms) == 1 else calendar.start
            end = max(t.end for t in terms) if len(terms) == 1 else calendar.end
            entry = (new_id, begin, end)
            new_class_dates[new_id] = (begin, end)
            school = school_classes[klass["school"]["sourcedId"]]
            school.all.append(entry)
            for grade in klass.get("grades", []):
                school.by_grade[grade].append(entry)

        # Teachers keep their classes.
        for enrollment_id in old_enrollments:
            enrollment = enrollments[enrollment_id]
            if (
                enrollment["status"] != ACTIVE
                or enrollment["role"] != "teacher"
                or enrollment["class"]["sourcedId"] not in new_class
                or users.get(enrollment["user"]["sourcedId"], {}).get("status") != ACTIVE
            ):
                continue
            new_id = unused_sourced_id(rng, district)
            target_class = new_class[enrollment["class"]["sourcedId"]]
            begin, end = new_class_dates[target_class]
            edit.add(
                "enrollments",
                {
                    **enrollment,
                    "sourcedId": new_id,
                    "class": class_ref(target_class),
                    "beginDate": begin,
                    "endDate": end,
                },
            )

        # The old year goes.
        for enrollment_id in old_enrollments:
            edit.retire("enrollments", enrollment_id, mode)
        for class_id in old_classes:
            edit.retire("classes", class_id, mode)
        for course_id in old_courses:
            edit.retire("courses", course_id, mode)
        for session_id in old_sessions:
            edit.retire("academicSessions", session_id, mode)

        # Students move up, change school, graduate or leave.
        schools_by_grade: dict[str, list[str]] = defaultdict(list)
        for school_id in sorted(school_classes):
            for grade in school_classes[school_id].by_grade:
                schools_by_grade[grade].append(school_id)
        leaving: list[str] = []
        graduates = 0
        for student_id in _active_ids(users, role="student"):
            student = users[student_id]
            current = student.get("grades") or ["KG"]
            grade = next_grade(current[0]) if current[0] in GRADES else None
            if grade is None or rng.random() * 100 < leave_percent:
                if grade is None:
                    graduates += 1
                leaving.append(student_id)
                continue
            school_id = student["orgs"][0]["sourcedId"]
            if grade not in school_classes.get(school_id, _SchoolClasses()).by_grade:
                if not schools_by_grade.get(grade):
                    leaving.append(student_id)
                    continue
                school_id = rng.choice(schools_by_grade[grade])
                edit.update("users", student_id, grades=GRADE_LISTS[grade], orgs=[org_ref(school_id)])
            else:
                edit.update("users", student_id, grades=GRADE_LISTS[grade])
            pool = school_classes[school_id].pool_for(grade)
            student_ref = user_ref(student_id)
            school_ref = org_ref(school_id)
            for class_id, begin, end in rng.sample(pool, min(len(pool), rng.randint(5, 8))):
                enrollment_id = unused_sourced_id(rng, district)
                edit.add(
                    "enrollments",
                    enrollment_record(
                        enrollment_id,
                        ACTIVE,
                        edit.stamp,
                        student_ref,
                        class_ref(class_id),
                        school_ref,
                        "student",
                        FALSE,
                        begin,
                        end,
                    ),
                )
        _retire_users(edit, leaving, mode)

        # Guardians follow their children's schools.
        for guardian_id in sorted(users):
            guardian = users[guardian_id]
            if guardian["status"] != ACTIVE or not guardian.get("agents"):
                continue
            school_ids = list(
                dict.fromkeys(
                    o["sourcedId"]
                    for a in guardian["agents"]
                    if a["sourcedId"] in users
                    for o in users[a["sourcedId"]]["orgs"]
                )
            )
            if school_ids and school_ids != [o["sourcedId"] for o in guardian["orgs"]]:
                edit.update("users", guardian_id, orgs=[org_ref(s) for s in school_ids])

        district.school_year = old_year + 1
        edit.result.details.update(
            {"school_year": district.school_year, "graduated": graduates, "left": len(leaving) - graduates}
        )
        return edit.result
