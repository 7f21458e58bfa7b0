"""Synthetic OneRoster 1.1 districts, reproducible byte for byte from (size, seed, name, school_year).

Why the care over determinism: sync tests compare what the pipeline loaded with what the simulator
holds, and benchmarks compare runs; both need the same district every time.  Every random draw comes
from one ``random.Random(seed)`` (never the global RNG, never the clock), in a fixed order.

Why the care over memory: the large district holds ~1M enrollments in one process next to the HTTP
server.  Reference dicts are built once per target record and shared, repeated strings are one
object each, and records are built straight into the district's collections.
"""

from __future__ import annotations

import gc
import random
from dataclasses import dataclass
from typing import Literal

from . import names
from .district import Record, SimulatedDistrict
from .records import (
    ACTIVE,
    FALSE,
    GRADE_LISTS,
    GRADES,
    SUBJECT_LISTS,
    SUBJECTS,
    TOBEDELETED,
    TRUE,
    SchoolCalendar,
    UsernameAllocator,
    birth_date_for,
    build_calendar,
    class_ref,
    course_ref,
    demographics_record,
    email_domain,
    enrollment_record,
    generated_timestamps,
    grade_label,
    new_sourced_id,
    org_ref,
    session_ref,
    student_email_domain,
    student_record,
    user_ref,
)

Size = Literal["tiny", "small", "large"]
DEFAULT_SCHOOL_YEAR = 2027


@dataclass(frozen=True)
class SizeProfile:
    """How big each school is; the district is ``schools`` copies of it with different grade bands."""

    schools: int
    students_per_school: int
    teachers_per_school: int
    classes_per_school: int
    aides_per_school: int
    guardian_share: float  # guardians per student


SIZES: dict[str, SizeProfile] = {
    # ~30 users: 22 students, 4 teachers, principal + aide, 2 guardians, 1 district administrator.
    "tiny": SizeProfile(1, 22, 4, 8, 1, 0.1),
    # ~2,000 users, ~500 classes, ~12,000 enrollments (5-8 per student bounds the ratio).
    "small": SizeProfile(5, 360, 24, 100, 2, 0.03),
    # ~155,000 users, 40,000 classes, ~1,000,000 enrollments.
    "large": SizeProfile(50, 2_850, 180, 800, 9, 0.02),
}

# Chance that a class has 0, 1, 2 or 3 teachers.
TEACHER_COUNT_WEIGHTS = (2, 60, 28, 10)
STUDENT_EMAIL_SHARE = {"elementary": 0.7, "middle": 0.93, "high": 0.97}
WITHDRAWN_STUDENT_SHARE = 0.003  # students already marked tobedeleted (at least one per school)
DROPPED_ENROLLMENT_SHARE = 0.01  # students with an extra tobedeleted enrollment (at least one per school)
ITINERANT_TEACHER_SHARE = 0.05  # teachers who also work at a second school


@dataclass(frozen=True)
class SchoolPlan:
    level: Literal["elementary", "middle", "high"]
    grades: tuple[str, ...]


def school_levels(count: int) -> list[SchoolPlan]:
    """Grade bands: a fifth high schools, a fifth middle schools, the rest elementary; a lone school is a middle school."""
    elementary = SchoolPlan("elementary", GRADES[0:6])
    middle = SchoolPlan("middle", GRADES[6:9])
    high = SchoolPlan("high", GRADES[9:13])
    if count == 1:
        return [SchoolPlan("middle", GRADES[6:9])]
    if count == 2:
        return [elementary, SchoolPlan("high", GRADES[6:13])]
    n_high = max(1, count // 5)
    n_middle = max(1, count // 5)
    return [elementary] * (count - n_high - n_middle) + [middle] * n_middle + [high] * n_high


def default_district_name(seed: int) -> str:
    place = random.Random(f"district-name:{seed}").choice(names.DISTRICT_PLACES)
    return f"{place} Unified School District"


def generate_district(
    size: Size,
    seed: int = 1,
    *,
    name: str | None = None,
    school_year: int | None = None,
) -> SimulatedDistrict:
    """Build a district with realistic OneRoster 1.1 relationships (see the module doc for why)."""
    if size not in SIZES:
        raise ValueError(f"unknown district size {size!r}; choose one of {', '.join(SIZES)}")
    year = DEFAULT_SCHOOL_YEAR if school_year is None else school_year
    district = SimulatedDistrict(
        name=name or default_district_name(seed), seed=seed, size=size, school_year=year
    )
    collector_was_enabled = gc.isenabled()
    gc.disable()  # a million new dicts would trigger dozens of full collections that free nothing
    try:
        _Builder(district, SIZES[size], random.Random(seed)).build()
    finally:
        if collector_was_enabled:
            gc.enable()
    return district


class _Builder:
    """Fills one district; the order of RNG draws is part of the output, so keep steps in order."""

    def __init__(self, district: SimulatedDistrict, profile: SizeProfile, rng: random.Random) -> None:
        self.district = district
        self.profile = profile
        self.rng = rng
        self.stamps = generated_timestamps(district.school_year)
        self.counter = 0
        self.usernames = UsernameAllocator()
        self.domain = email_domain(district.name)
        self.student_domain = student_email_domain(district.name)
        self.orgs = district.collections["orgs"]
        self.sessions = district.collections["academicSessions"]
        self.courses = district.collections["courses"]
        self.classes = district.collections["classes"]
        self.users = district.collections["users"]
        self.enrollments = district.collections["enrollments"]
        self.demographics = district.collections["demographics"]
        self.birth_dates: dict[str, str] = {}

    def stamp(self) -> str:
        """Spread dateLastModified over the fixed instants without spending RNG draws."""
        self.counter += 1
        return self.stamps[(self.counter * 7) % len(self.stamps)]

    def build(self) -> None:
        rng = self.rng
        calendar = build_calendar(lambda: new_sourced_id(rng), self.district.school_year, self.stamps[0])
        for record in calendar.records:
            self.sessions[record["sourcedId"]] = record
        district_id, district_ref = self.build_district_org()
        plans = school_levels(self.profile.schools)
        school_ids = [new_sourced_id(rng) for _ in plans]
        self.build_school_orgs(district_id, school_ids, plans)
        self.add_district_administrator(district_ref)
        year_ref = session_ref(calendar.year_id)
        homeroom_courses = self.build_homeroom_courses(district_ref, year_ref, plans)
        teachers_by_school = self.build_teachers(school_ids)
        for number, (school_id, plan) in enumerate(zip(school_ids, plans, strict=True), start=1):
            self.build_school(
                number, school_id, plan, calendar, year_ref, homeroom_courses, teachers_by_school[school_id]
            )

    # -- orgs -------------------------------------------------------------------------------------
    def build_district_org(self) -> tuple[str, Record]:
        district_id = new_sourced_id(self.rng)
        self.orgs[district_id] = {
            "sourcedId": district_id,
            "status": ACTIVE,
            "dateLastModified": self.stamps[0],
            "name": self.district.name,
            "type": "district",
            "identifier": f"{self.rng.randrange(1_000_000, 9_999_999)}",
            "children": [],
        }
        return district_id, org_ref(district_id)

    def build_school_orgs(self, district_id: str, school_ids: list[str], plans: list[SchoolPlan]) -> None:
        district_ref = org_ref(district_id)
        used_names: set[str] = set()
        kinds = {"elementary": "Elementary School", "middle": "Middle School", "high": "High School"}
        for number, (school_id, plan) in enumerate(zip(school_ids, plans, strict=True), start=1):
            word = self.rng.choice(names.SCHOOL_NAME_WORDS)
            school_name = f"{word} {kinds[plan.level]}"
            if school_name in used_names:
                school_name = f"{word} {kinds[plan.level]} {number}"
            used_names.add(school_name)
            self.orgs[school_id] = {
                "sourcedId": school_id,
                "status": ACTIVE,
                "dateLastModified": self.stamps[0],
                "name": school_name,
                "type": "school",
                "identifier": f"{self.orgs[district_id]['identifier']}{number:03d}",
                "parent": district_ref,
            }
        self.orgs[district_id]["children"] = [org_ref(school_id) for school_id in school_ids]

    # -- users ------------------------------------------------------------------------------------
    def person(self) -> tuple[str, str]:
        return self.rng.choice(names.GIVEN_NAMES), self.rng.choice(names.FAMILY_NAMES)

    def phone(self) -> str:
        return f"555-{self.rng.randrange(200, 1000):03d}-{self.rng.randrange(10_000):04d}"

    def staff_user(self, role: str, org_refs: list[Record], staff_number: int) -> Record:
        given, family = self.person()
        user_id = new_sourced_id(self.rng)
        username = self.usernames.take(given, family)
        identifier = f"E{staff_number:06d}"
        record: Record = {
            "sourcedId": user_id,
            "status": ACTIVE,
            "dateLastModified": self.stamp(),
            "username": username,
            "userIds": [{"type": "staffNumber", "identifier": identifier}],
            "enabledUser": TRUE,
            "givenName": given,
            "familyName": family,
            "role": role,
            "identifier": identifier,
            "email": f"{username}@{self.domain}",
            "orgs": org_refs,
            "grades": [],
        }
        if self.rng.random() < 0.5:
            record["phone"] = self.phone()
        self.users[user_id] = record
        return record

    def add_district_administrator(self, district_ref: Record) -> None:
        self.staff_user("administrator", [district_ref], 1)

    def build_teachers(self, school_ids: list[str]) -> dict[str, list[Record]]:
        """Each school's teacher pool; a few itinerant teachers belong to (and teach at) two schools."""
        pools: dict[str, list[Record]] = {school_id: [] for school_id in school_ids}
        staff_number = 100
        for index, school_id in enumerate(school_ids):
            for _ in range(self.profile.teachers_per_school):
                staff_number += 1
                orgs = [org_ref(school_id)]
                second = None
                if len(school_ids) > 1 and self.rng.random() < ITINERANT_TEACHER_SHARE:
                    second = school_ids[
                        (index + 1 + self.rng.randrange(len(school_ids) - 1)) % len(school_ids)
                    ]
                    orgs.append(org_ref(second))
                teacher = self.staff_user("teacher", orgs, staff_number)
                pools[school_id].append(teacher)
                if second is not None:
                    pools[second].append(teacher)
        return pools

    # -- courses and classes ----------------------------------------------------------------------
    def build_homeroom_courses(
        self, district_ref: Record, year_ref: Record, plans: list[SchoolPlan]
    ) -> dict[str, str]:
        """Homeroom courses are district-wide (org = district), one per grade any school teaches."""
        grades = [grade for grade in GRADES if any(grade in plan.grades for plan in plans)]
        course_ids: dict[str, str] = {}
        for grade in grades:
            course_id = new_sourced_id(self.rng)
            course_ids[grade] = course_id
            self.courses[course_id] = {
                "sourcedId": course_id,
                "status": ACTIVE,
                "dateLastModified": self.stamps[1],
                "title": f"Homeroom {grade_label(grade)}",
                "schoolYear": year_ref,
                "courseCode": f"HR-{grade}",
                "grades": GRADE_LISTS[grade],
                "subjects": SUBJECT_LISTS["Homeroom"],
                "org": district_ref,
            }
        return course_ids

    def build_school(
        self,
        number: int,
        school_id: str,
        plan: SchoolPlan,
        calendar: SchoolCalendar,
        year_ref: Record,
        homeroom_courses: dict[str, str],
        teachers: list[Record],
    ) -> None:
        rng = self.rng
        school_ref = org_ref(school_id)
        school_refs = [school_ref]
        for aide_number in range(self.profile.aides_per_school + 1):
            role = "administrator" if aide_number == 0 else "aide"
            self.staff_user(role, school_refs, 10_000 + number * 100 + aide_number)

        # Courses: one per (grade, subject) the school has a class of, owned by the school; created on
        # first use so no course lacks classes.
        subject_courses: dict[tuple[str, str], str] = {}

        def subject_course(grade: str, subject: str, code: str) -> str:
            key = (grade, subject)
            if key not in subject_courses:
                course_id = subject_courses[key] = new_sourced_id(rng)
                self.courses[course_id] = {
                    "sourcedId": course_id,
                    "status": ACTIVE,
                    "dateLastModified": self.stamps[1],
                    "title": f"{subject} {grade_label(grade)}",
                    "schoolYear": year_ref,
                    "courseCode": f"{code}-{grade}",
                    "grades": GRADE_LISTS[grade],
                    "subjects": SUBJECT_LISTS[subject],
                    "org": school_ref,
                }
            return subject_courses[key]

        # Classes: a homeroom per grade, then sections spread round-robin over the subject courses.
        year_terms = [session_ref(term.sourced_id) for term in calendar.terms]
        one_term = [[session_ref(term.sourced_id)] for term in calendar.terms]
        classes_by_grade: dict[str, list[tuple[Record, str, str]]] = {grade: [] for grade in plan.grades}
        all_classes: list[tuple[Record, str, str]] = []
        sections: dict[str, int] = {}
        for index in range(self.profile.classes_per_school):
            if index < len(plan.grades):
                grade = plan.grades[index]
                course_id, subject, code, class_type = homeroom_courses[grade], "Homeroom", "HR", "homeroom"
                title = f"Homeroom {grade_label(grade)}"
            else:
                position = index - len(plan.grades)
                grade = plan.grades[position % len(plan.grades)]
                subject, code = SUBJECTS[(position // len(plan.grades)) % len(SUBJECTS)]
                course_id = subject_course(grade, subject, code)
                class_type = "scheduled"
                title = f"{subject} {grade_label(grade)}"
            section = sections[course_id] = sections.get(course_id, 0) + 1
            if class_type == "scheduled" and rng.random() < 0.3:
                term_index = rng.randrange(2)
                terms, begin, end = (
                    one_term[term_index],
                    calendar.terms[term_index].start,
                    calendar.terms[term_index].end,
                )
            else:
                terms, begin, end = year_terms, calendar.start, calendar.end
            class_id = new_sourced_id(rng)
            self.classes[class_id] = {
                "sourcedId": class_id,
                "status": ACTIVE,
                "dateLastModified": self.stamps[2],
                "title": f"{title} - Section {section}",
                "classCode": f"{code}-{grade}-{number:02d}{section:02d}",
                "classType": class_type,
                "location": f"Room {100 + index % 300}",
                "grades": GRADE_LISTS[grade],
                "subjects": SUBJECT_LISTS[subject],
                "course": course_ref(course_id),
                "school": school_ref,
                "terms": terms,
                "periods": str(1 + index % 8),
            }
            entry = (class_ref(class_id), begin, end)
            classes_by_grade[grade].append(entry)
            all_classes.append(entry)
            self.assign_teachers(index, entry, teachers, school_ref)

        self.build_students(number, school_ref, plan, classes_by_grade, all_classes)

    def assign_teachers(
        self, index: int, entry: tuple[Record, str, str], teachers: list[Record], school_ref: Record
    ) -> None:
        """0-3 teachers: exactly one primary (balanced round-robin) plus co-teachers drawn at random."""
        klass, begin, end = entry
        count = self.rng.choices((0, 1, 2, 3), TEACHER_COUNT_WEIGHTS)[0]
        if count == 0 or not teachers:
            return
        primary = teachers[index % len(teachers)]
        others = [t for t in self.rng.sample(teachers, min(len(teachers), count + 1)) if t is not primary]
        chosen = [primary, *others[: count - 1]]
        for position, teacher in enumerate(chosen):
            enrollment_id = new_sourced_id(self.rng)
            self.enrollments[enrollment_id] = enrollment_record(
                enrollment_id,
                ACTIVE,
                self.stamp(),
                user_ref(teacher["sourcedId"]),
                klass,
                school_ref,
                "teacher",
                TRUE if position == 0 else FALSE,
                begin,
                end,
            )

    # -- students, guardians, demographics --------------------------------------------------------
    def build_students(
        self,
        number: int,
        school_ref: Record,
        plan: SchoolPlan,
        classes_by_grade: dict[str, list[tuple[Record, str, str]]],
        all_classes: list[tuple[Record, str, str]],
    ) -> None:
        rng = self.rng
        count = self.profile.students_per_school
        school_refs = [school_ref]
        withdrawn = set(rng.sample(range(count), max(1, round(count * WITHDRAWN_STUDENT_SHARE))))
        forced_drop = rng.randrange(count)
        email_share = STUDENT_EMAIL_SHARE[plan.level]
        active_students: list[str] = []
        school_year = self.district.school_year
        for index in range(count):
            grade = plan.grades[index % len(plan.grades)]
            given, family = self.person()
            student_id = new_sourced_id(rng)
            username = self.usernames.take(given, family)
            identifier = f"{number:02d}{index + 1:05d}"
            status = TOBEDELETED if index in withdrawn else ACTIVE
            stamp = self.stamp()
            record = student_record(
                rng,
                student_id,
                status,
                stamp,
                username=username,
                given=given,
                family=family,
                identifier=identifier,
                orgs=school_refs,
                grade=grade,
            )
            if rng.random() < email_share:
                record["email"] = f"{username}@{self.student_domain}"
            if plan.level == "high" and rng.random() < 0.2:
                record["sms"] = self.phone()
            self.users[student_id] = record
            self.demographics[student_id] = demographics_record(
                rng,
                student_id,
                status,
                stamp,
                birth_date_for(rng, grade, school_year, self.birth_dates),
                rng.choice(names.CITIES_OF_BIRTH),
            )
            student = user_ref(student_id)
            pool = classes_by_grade[grade]
            if len(pool) < 8:
                pool = all_classes
            picked = rng.sample(pool, min(len(pool), rng.randint(5, 8)))
            for klass, begin, end in picked:
                enrollment_id = new_sourced_id(rng)
                self.enrollments[enrollment_id] = enrollment_record(
                    enrollment_id, status, stamp, student, klass, school_ref, "student", FALSE, begin, end
                )
            if status == ACTIVE and (index == forced_drop or rng.random() < DROPPED_ENROLLMENT_SHARE):
                # A class the student dropped: the SIS still serves it, marked tobedeleted.
                others = [entry for entry in pool if all(entry is not p for p in picked)]
                if others:
                    klass, begin, end = rng.choice(others)
                    enrollment_id = new_sourced_id(rng)
                    self.enrollments[enrollment_id] = enrollment_record(
                        enrollment_id,
                        TOBEDELETED,
                        stamp,
                        student,
                        klass,
                        school_ref,
                        "student",
                        FALSE,
                        begin,
                        end,
                    )
            if status == ACTIVE:
                active_students.append(student_id)
        self.build_guardians(school_refs, active_students)

    def build_guardians(self, school_refs: list[Record], students: list[str]) -> None:
        """Guardians link to one child or two siblings through ``agents`` (SDS queries role='guardian')."""
        rng = self.rng
        count = min(len(students), max(1, round(len(students) * self.profile.guardian_share)))
        children = rng.sample(students, min(len(students), count * 2))
        for index in range(count):
            given, family = self.person()
            mine = [children[index]]
            if count + index < len(children) and rng.random() < 0.3:
                mine.append(children[count + index])
            family = self.users[mine[0]]["familyName"]
            guardian_id = new_sourced_id(rng)
            username = self.usernames.take(given, family)
            phone = self.phone()
            identifier = f"G{rng.randrange(10**7, 10**8)}"
            self.users[guardian_id] = {
                "sourcedId": guardian_id,
                "status": ACTIVE,
                "dateLastModified": self.stamp(),
                "username": username,
                "userIds": [{"type": "guardianId", "identifier": identifier}],
                "enabledUser": TRUE,
                "givenName": given,
                "familyName": family,
                "role": "guardian",
                "identifier": identifier,
                "email": f"{username}@mail.example.net",
                "sms": phone,
                "phone": phone,
                "agents": [user_ref(child) for child in mine],
                "orgs": school_refs,
                "grades": [],
            }
