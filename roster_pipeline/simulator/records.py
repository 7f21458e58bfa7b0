"""Building blocks for OneRoster 1.1 records, shared by the generator and the mutations.

Both must produce records the same way (same id format, same reference shape, same email rules), or
a mutation would create records the generator never could and the sync tests would test the wrong
thing.

Memory note: the generator shares nested values between records (one reference dict per target
record, one ``grades`` list per grade).  Nested values are therefore immutable by convention: to
change a reference or a list, assign a new object, never edit the old one in place.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from .district import Record, SimulatedDistrict

# CEDS grade codes as OneRoster uses them, youngest first.
GRADES: tuple[str, ...] = ("KG", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12")
GRADE_LISTS: dict[str, list[str]] = {grade: [grade] for grade in GRADES}

# (subject, course code prefix).  "Homeroom" is handled apart: one homeroom class per grade.
SUBJECTS: tuple[tuple[str, str], ...] = (
    ("Mathematics", "MATH"),
    ("English Language Arts", "ELA"),
    ("Science", "SCI"),
    ("Social Studies", "SS"),
    ("Physical Education", "PE"),
    ("Art", "ART"),
    ("Music", "MUS"),
    ("World Languages", "WL"),
    ("Computer Science", "CS"),
    ("Health", "HLTH"),
)
SUBJECT_LISTS: dict[str, list[str]] = {subject: [subject] for subject, _ in SUBJECTS}
SUBJECT_LISTS["Homeroom"] = ["Homeroom"]

ACTIVE = "active"
TOBEDELETED = "tobedeleted"
TRUE = "true"
FALSE = "false"


def grade_label(grade: str) -> str:
    return "Kindergarten" if grade == "KG" else f"Grade {int(grade)}"


def next_grade(grade: str) -> str | None:
    """The grade a student moves up to at rollover; None after grade 12 (graduation)."""
    index = GRADES.index(grade)
    return GRADES[index + 1] if index + 1 < len(GRADES) else None


def format_timestamp(moment: datetime) -> str:
    """OneRoster dateLastModified: UTC, milliseconds, 'Z' (what IC serves and the delta filter compares)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def generated_timestamps(school_year: int) -> list[str]:
    """The fixed instants generated records carry: hourly over three days from 1 August before the year.

    Fixed (not the wall clock) so that generation is reproducible byte for byte; three days so a delta
    filter on dateLastModified has something to cut through.
    """
    base = datetime(school_year - 1, 8, 1, 12, 0, 0, tzinfo=UTC)
    return [format_timestamp(base + timedelta(hours=hour)) for hour in range(72)]


def new_sourced_id(rng: random.Random) -> str:
    """A UUID-shaped id from the given RNG: same text as ``str(uuid.UUID(int=...))``, built faster."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def unused_sourced_id(rng: random.Random, district: SimulatedDistrict) -> str:
    """A new id that no record of the district uses yet (mutations may reuse a seed, ids must not repeat)."""
    while True:
        candidate = new_sourced_id(rng)
        if not any(candidate in records for records in district.collections.values()):
            return candidate


def reference(collection: str, ref_type: str, sourced_id: str) -> Record:
    """A OneRoster GUIDRef; href is relative to the API base (the server makes it absolute)."""
    return {"href": f"/{collection}/{sourced_id}", "sourcedId": sourced_id, "type": ref_type}


def org_ref(sourced_id: str) -> Record:
    return reference("orgs", "org", sourced_id)


def session_ref(sourced_id: str) -> Record:
    return reference("academicSessions", "academicSession", sourced_id)


def course_ref(sourced_id: str) -> Record:
    return reference("courses", "course", sourced_id)


def class_ref(sourced_id: str) -> Record:
    return reference("classes", "class", sourced_id)


def user_ref(sourced_id: str) -> Record:
    return reference("users", "user", sourced_id)


def email_domain(district_name: str) -> str:
    """The district's mail domain, derived from its name so mutations can rebuild it from the district."""
    words = [w for w in re.findall(r"[a-z0-9]+", district_name.lower()) if w not in {"school", "district"}]
    slug = "".join(words[:3]) or "district"
    return f"{slug}.example.org"


def student_email_domain(district_name: str) -> str:
    return f"students.{email_domain(district_name)}"


class UsernameAllocator:
    """Hands out unique usernames ``given.family``, ``given.family2``, ... as real districts do."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self._taken: set[str] = set(taken)
        self._next_suffix: dict[str, int] = {}

    def take(self, given: str, family: str) -> str:
        base = re.sub(r"[^a-z0-9.]", "", f"{given}.{family}".lower())
        suffix = self._next_suffix.get(base, 1)
        candidate = base if suffix == 1 else f"{base}{suffix}"
        while candidate in self._taken:
            suffix += 1
            candidate = f"{base}{suffix}"
        self._next_suffix[base] = suffix + 1
        self._taken.add(candidate)
        return candidate


@dataclass(frozen=True)
class Term:
    """A semester of the calendar with the ids and dates classes and enrollments need."""

    sourced_id: str
    start: str
    end: str


@dataclass(frozen=True)
class SchoolCalendar:
    """One school year's sessions: the year, two semesters and four grading periods.

    The semesters are typed ``term``, as Infinite Campus serves them: SDS reads ``/terms/{class.terms[0]}``
    and a 1.1 provider serves only type ``term`` there.
    """

    school_year: int
    year_id: str
    start: str
    end: str
    terms: tuple[Term, Term]
    records: tuple[Record, ...]


def build_calendar(new_id: Callable[[], str], school_year: int, stamp: str) -> SchoolCalendar:
    """The academicSession records of one school year (schoolYear is the ENDING year, e.g. "2027").

    ``new_id`` hands out sourcedIds: the generator draws from its RNG, a rollover also avoids ids in use.
    """
    year_text = str(school_year)
    first, last = school_year - 1, school_year

    def day(y: int, m: int, d: int) -> str:
        return date(y, m, d).isoformat()

    spans = {
        "year": (day(first, 8, 17), day(last, 6, 11)),
        "fall": (day(first, 8, 17), day(first, 12, 18)),
        "spring": (day(last, 1, 5), day(last, 6, 11)),
        "q1": (day(first, 8, 17), day(first, 10, 16)),
        "q2": (day(first, 10, 19), day(first, 12, 18)),
        "q3": (day(last, 1, 5), day(last, 3, 19)),
        "q4": (day(last, 3, 22), day(last, 6, 11)),
    }
    ids = {key: new_id() for key in spans}
    label = f"{first}-{str(last)[2:]}"

    def session(key: str, title: str, session_type: str, parent: str | None, children: list[str]) -> Record:
        record: Record = {
            "sourcedId": ids[key],
            "status": ACTIVE,
            "dateLastModified": stamp,
            "title": title,
            "type": session_type,
            "startDate": spans[key][0],
            "endDate": spans[key][1],
            "schoolYear": year_text,
        }
        if parent is not None:
            record["parent"] = session_ref(ids[parent])
        if children:
            record["children"] = [session_ref(ids[child]) for child in children]
        return record

    records = (
        session("year", f"{label} School Year", "schoolYear", None, ["fall", "spring"]),
        session("fall", f"Fall Semester {label}", "term", "year", ["q1", "q2"]),
        session("spring", f"Spring Semester {label}", "term", "year", ["q3", "q4"]),
        session("q1", f"Quarter 1 {label}", "gradingPeriod", "fall", []),
        session("q2", f"Quarter 2 {label}", "gradingPeriod", "fall", []),
        session("q3", f"Quarter 3 {label}", "gradingPeriod", "spring", []),
        session("q4", f"Quarter 4 {label}", "gradingPeriod", "spring", []),
    )
    terms = (
        Term(ids["fall"], *spans["fall"]),
        Term(ids["spring"], *spans["spring"]),
    )
    return SchoolCalendar(school_year, ids["year"], *spans["year"], terms, records)


def enrollment_record(
    sourced_id: str,
    status: str,
    stamp: str,
    user: Record,
    klass: Record,
    school: Record,
    role: str,
    primary: str,
    begin: str,
    end: str,
) -> Record:
    return {
        "sourcedId": sourced_id,
        "status": status,
        "dateLastModified": stamp,
        "user": user,
        "class": klass,
        "school": school,
        "role": role,
        "primary": primary,
        "beginDate": begin,
        "endDate": end,
    }


_RACES = (
    "americanIndianOrAlaskaNative",
    "asian",
    "blackOrAfricanAmerican",
    "nativeHawaiianOrOtherPacificIslander",
    "white",
)
_RACE_WEIGHTS = (1, 5, 14, 1, 55)


def student_record(
    rng: random.Random,
    sourced_id: str,
    status: str,
    stamp: str,
    *,
    username: str,
    given: str,
    family: str,
    identifier: str,
    orgs: list[Record],
    grade: str,
) -> Record:
    """One student user as the 1.1 binding serves it (no email: whether a student has one is the caller's call).

    Shared by the generator and the add_students mutation so a student added later looks exactly like a
    generated one; ``orgs`` and the grades list may be shared objects, never edit them in place.
    """
    return {
        "sourcedId": sourced_id,
        "status": status,
        "dateLastModified": stamp,
        "username": username,
        "userIds": [
            {"type": "studentNumber", "identifier": identifier},
            {"type": "stateId", "identifier": f"{rng.randrange(10**9, 10**10)}"},
        ],
        "enabledUser": TRUE,
        "givenName": given,
        "familyName": family,
        "role": "student",
        "identifier": identifier,
        "orgs": orgs,
        "grades": GRADE_LISTS[grade],
    }


def demographics_record(
    rng: random.Random,
    sourced_id: str,
    status: str,
    stamp: str,
    birth_date: str,
    city: tuple[str, str],
) -> Record:
    """One student's demographics; booleans are the strings "true"/"false" as the 1.1 JSON binding has."""
    two_or_more = rng.random() < 0.08
    races = set(rng.sample(_RACES, 2)) if two_or_more else {rng.choices(_RACES, _RACE_WEIGHTS)[0]}
    record: Record = {
        "sourcedId": sourced_id,
        "status": status,
        "dateLastModified": stamp,
        "birthDate": birth_date,
        "sex": "female" if rng.random() < 0.49 else "male",
    }
    for race in _RACES:
        record[race] = TRUE if race in races else FALSE
    record["demographicRaceTwoOrMoreRaces"] = TRUE if two_or_more else FALSE
    record["hispanicOrLatinoEthnicity"] = TRUE if rng.random() < 0.25 else FALSE
    record["countryOfBirthCode"] = "US"
    record["stateOfBirthAbbreviation"] = city[1]
    record["cityOfBirth"] = city[0]
    record["publicSchoolResidenceStatus"] = "01652"
    return record


def birth_date_for(rng: random.Random, grade: str, school_year: int, cache: dict[str, str]) -> str:
    """A plausible birth date for a student in ``grade`` (6 years old on 1 September of kindergarten)."""
    grade_number = 0 if grade == "KG" else int(grade)
    year = school_year - 7 - grade_number + (1 if rng.random() < 0.67 else 0)
    text = date(year, 1, 1).fromordinal(date(year, 1, 1).toordinal() + rng.randrange(365)).isoformat()
    return cache.setdefault(text, text)
