"""Who teaches each class, in the order Infinite Campus shows them (pure rules, no database).

Infinite Campus: "uses the 'primary' field to identify the Primary Teacher of a Class. When multiple
Teachers are listed for a class, all will be assigned to the class and displayed in alphabetical order."
So every teacher enrollment of a class is kept, ``is_primary`` comes from the enrollment's ``primary``
(OneRoster 1.1 JSON sends the strings "true"/"false"; absent means false), and ``display_order`` is
alphabetical over all of the class's teachers (``name_order``), primary or not: a consumer that wants
the primary first sorts by ``is_primary`` then ``display_order``.

A class with several primaries, with none, or with no teacher at all is published anyway and reported
as a warning (``ClassFindings``): the SIS is the source of truth, the admin decides whether to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .name_order import person_sort_key

#: Enrollment roles a district may list as a class's teachers (registry ``class_teachers.include_roles``),
#: in the order that wins when one person is enrolled in a class twice under different roles.
TEACHING_ROLES: tuple[str, ...] = ("teacher", "administrator", "aide", "proctor")

SEVERAL_PRIMARIES = "several_primary_teachers"
NO_PRIMARY = "no_primary_teacher"
NO_TEACHER = "no_teacher"
FINDING_TEXT: dict[str, str] = {
    SEVERAL_PRIMARIES: "classes with more than one primary teacher",
    NO_PRIMARY: "classes with teachers but no primary teacher",
    NO_TEACHER: "classes with no teacher at all",
}


def is_primary(value: str | None) -> bool:
    """The enrollment's ``primary`` as stored ("true"/"false", a JSON boolean already turned into one of
    those by the loader); absent or anything else is false."""
    return value is not None and value.strip().lower() == "true"


@dataclass(frozen=True)
class TeacherEnrollment:
    """One published enrollment of a teaching role in a current class, with the person's names."""

    class_sourced_id: str
    school_year: int
    teacher_sourced_id: str
    role: str
    primary: str | None
    family_name: str | None
    given_name: str | None


@dataclass(frozen=True)
class ClassTeacher:
    """One row of the ``class_teachers`` table."""

    class_sourced_id: str
    school_year: int
    teacher_sourced_id: str
    family_name: str | None
    given_name: str | None
    role: str
    is_primary: bool
    display_order: int  # 1, 2, ... within the class


@dataclass
class ClassFindings:
    """Classes worth an admin's look, by finding (SEVERAL_PRIMARIES, NO_PRIMARY, NO_TEACHER)."""

    classes: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in FINDING_TEXT})

    def add(self, finding: str, class_sourced_id: str) -> None:
        self.classes[finding].append(class_sourced_id)

    def counts(self) -> dict[str, int]:
        return {finding: len(ids) for finding, ids in self.classes.items()}

    def merge(self, other: ClassFindings) -> None:
        for finding, ids in other.classes.items():
            self.classes[finding].extend(ids)


def _merge_duplicates(enrollments: Iterable[TeacherEnrollment]) -> list[TeacherEnrollment]:
    """One entry per person: two enrollments of one teacher in one class (two roles, or the SIS sending
    a duplicate under another sourcedId) are one teacher, primary if either says so."""
    by_person: dict[str, TeacherEnrollment] = {}
    for e in enrollments:
        seen = by_person.get(e.teacher_sourced_id)
        if seen is None:
            by_person[e.teacher_sourced_id] = e
            continue
        role = min(
            seen.role,
            e.role,
            key=lambda r: TEACHING_ROLES.index(r) if r in TEACHING_ROLES else len(TEACHING_ROLES),
        )
        primary = "true" if is_primary(seen.primary) or is_primary(e.primary) else seen.primary
        by_person[e.teacher_sourced_id] = TeacherEnrollment(
            e.class_sourced_id,
            e.school_year,
            e.teacher_sourced_id,
            role,
            primary,
            seen.family_name or e.family_name,
            seen.given_name or e.given_name,
        )
    return list(by_person.values())


def order_class(
    class_sourced_id: str, enrollments: Iterable[TeacherEnrollment]
) -> tuple[list[ClassTeacher], ClassFindings]:
    """The rows of one class, in display order, and what is odd about it (an empty list: no teacher)."""
    findings = ClassFindings()
    teachers = sorted(
        _merge_duplicates(enrollments),
        key=lambda e: person_sort_key(e.family_name, e.given_name, e.teacher_sourced_id),
    )
    rows = [
        ClassTeacher(
            e.class_sourced_id,
            e.school_year,
            e.teacher_sourced_id,
            e.family_name,
            e.given_name,
            e.role,
            is_primary(e.primary),
            position,
        )
        for position, e in enumerate(teachers, start=1)
    ]
    primaries = sum(row.is_primary for row in rows)
    if not rows:
        findings.add(NO_TEACHER, class_sourced_id)
    elif primaries == 0:
        findings.add(NO_PRIMARY, class_sourced_id)
    elif primaries > 1:
        findings.add(SEVERAL_PRIMARIES, class_sourced_id)
    return rows, findings
