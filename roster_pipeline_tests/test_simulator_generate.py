"""The synthetic district generator: determinism, sizes, OneRoster relationships and formats."""

from __future__ import annotations

import re
import resource
import time
from collections import Counter, defaultdict

import orjson
import pytest

from roster_pipeline.simulator.district import BASE_COLLECTIONS, SimulatedDistrict
from roster_pipeline.simulator.generate import generate_district

from .simulator_checks import active_student_enrollment_counts, broken_references, references

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture(scope="module")
def tiny() -> SimulatedDistrict:
    return generate_district("tiny")


@pytest.fixture(scope="module")
def small() -> SimulatedDistrict:
    return generate_district("small", seed=7)


def as_bytes(district: SimulatedDistrict) -> bytes:
    return orjson.dumps(district.collections)


def active(records: dict) -> list[dict]:
    return [r for r in records.values() if r["status"] == "active"]


def test_same_inputs_give_identical_bytes() -> None:
    assert as_bytes(generate_district("small", 3)) == as_bytes(generate_district("small", 3))
    assert as_bytes(generate_district("tiny", 3, name="X District", school_year=2030)) == as_bytes(
        generate_district("tiny", 3, name="X District", school_year=2030)
    )


def test_different_seed_gives_different_district() -> None:
    assert as_bytes(generate_district("tiny", 1)) != as_bytes(generate_district("tiny", 2))


def test_name_and_school_year_are_honoured() -> None:
    district = generate_district("tiny", name="Example Valley School District", school_year=2031)
    assert district.name == "Example Valley School District"
    assert district.school_year == 2031
    orgs = district.collections["orgs"].values()
    assert [o["name"] for o in orgs if o["type"] == "district"] == ["Example Valley School District"]
    sessions = district.collections["academicSessions"].values()
    assert {s["schoolYear"] for s in sessions} == {"2031"}
    assert all(
        r["dateLastModified"].startswith("2030-08-0")
        for c in district.collections.values()
        for r in c.values()
    )


def test_unknown_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="huge"):
        generate_district("huge")  # type: ignore[arg-type]


def test_tiny_sizes(tiny: SimulatedDistrict) -> None:
    counts = {name: tiny.count(name) for name in BASE_COLLECTIONS}
    assert counts["orgs"] == 2
    assert 25 <= counts["users"] <= 40
    assert 5 <= counts["classes"] <= 15
    assert 100 <= counts["enrollments"] <= 250


def test_small_sizes(small: SimulatedDistrict) -> None:
    schools = [o for o in small.collections["orgs"].values() if o["type"] == "school"]
    assert len(schools) == 5
    assert 1_800 <= small.count("users") <= 2_200
    assert 400 <= small.count("classes") <= 600
    # 5-8 enrollments per student bounds the ratio: ~1,800 students -> 12-13k enrollments.
    assert 10_000 <= small.count("enrollments") <= 25_000
    roles = Counter(u["role"] for u in small.collections["users"].values())
    assert roles["student"] > 1_500 and roles["teacher"] > 80 and roles["guardian"] > 10
    assert roles["administrator"] >= 1 and roles["aide"] >= 1


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_every_reference_points_at_an_existing_record_of_the_right_type(size: str) -> None:
    assert broken_references(generate_district(size, seed=5), active_only=False) == []


def test_sourced_ids_are_uuids_unique_across_the_district(small: SimulatedDistrict) -> None:
    ids: list[str] = []
    for name, records in small.collections.items():
        for key, record in records.items():
            assert key == record["sourcedId"] and UUID.match(key)
            if name != "demographics":  # demographics share the student's sourcedId, as OneRoster does
                ids.append(key)
    assert len(ids) == len(set(ids))


def test_hrefs_are_relative_and_only_in_references(small: SimulatedDistrict) -> None:
    reference_count = sum(
        1 for records in small.collections.values() for r in records.values() for _ in references(r)
    )
    assert as_bytes(small).count(b'"href":"/') == reference_count
    assert as_bytes(small).count(b'"href"') == reference_count


def test_orgs_form_district_with_schools(small: SimulatedDistrict) -> None:
    orgs = small.collections["orgs"]
    (district,) = [o for o in orgs.values() if o["type"] == "district"]
    schools = {o["sourcedId"] for o in orgs.values() if o["type"] == "school"}
    assert {c["sourcedId"] for c in district["children"]} == schools
    assert all(orgs[s]["parent"]["sourcedId"] == district["sourcedId"] for s in schools)
    assert all(o["name"] and o["identifier"] for o in orgs.values())


def test_calendar_has_year_semesters_and_grading_periods(small: SimulatedDistrict) -> None:
    sessions = small.collections["academicSessions"]
    by_type = defaultdict(list)
    for session in sessions.values():
        assert {"title", "startDate", "endDate", "type", "schoolYear"} <= session.keys()
        assert DATE.match(session["startDate"]) and DATE.match(session["endDate"])
        assert session["startDate"] < session["endDate"]
        assert session["schoolYear"] == "2027"
        by_type[session["type"]].append(session)
    (year,) = by_type["schoolYear"]
    assert len(by_type["term"]) == 2 and len(by_type["gradingPeriod"]) == 4
    assert all(s["parent"]["sourcedId"] == year["sourcedId"] for s in by_type["term"])
    semester_ids = {s["sourcedId"] for s in by_type["term"]}
    assert all(g["parent"]["sourcedId"] in semester_ids for g in by_type["gradingPeriod"])


def test_courses_and_classes_carry_their_fields(small: SimulatedDistrict) -> None:
    for course in small.collections["courses"].values():
        assert course["title"] and course["courseCode"] and course["grades"] and course["subjects"]
        assert course["schoolYear"]["type"] == "academicSession"
    class_types = Counter()
    for klass in small.collections["classes"].values():
        assert klass["title"] and klass["classCode"] and klass["location"] and klass["periods"]
        assert 1 <= len(klass["terms"]) <= 2 and klass["grades"] and klass["subjects"]
        class_types[klass["classType"]] += 1
    assert class_types["scheduled"] > class_types["homeroom"] > 0
    course_orgs = Counter(
        small.collections["orgs"][c["org"]["sourcedId"]]["type"]
        for c in small.collections["courses"].values()
    )
    assert course_orgs["school"] > 0 and course_orgs["district"] > 0


def test_class_teachers_one_primary_some_co_teachers_a_few_without(small: SimulatedDistrict) -> None:
    flags: dict[str, list[str]] = {class_id: [] for class_id in small.collections["classes"]}
    for enrollment in active(small.collections["enrollments"]):
        if enrollment["role"] == "teacher":
            flags[enrollment["class"]["sourcedId"]].append(enrollment["primary"])
    sizes = Counter(len(f) for f in flags.values())
    assert set(sizes) <= {0, 1, 2, 3}
    assert sizes[2] + sizes[3] > 0, "some classes have co-teachers"
    assert 0 < sizes[0] < len(flags) * 0.05, "a few classes have no teacher"
    assert all(f.count("true") == 1 and f.count("false") == len(f) - 1 for f in flags.values() if f)


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_each_active_student_has_five_to_eight_active_enrollments(size: str) -> None:
    counts = active_student_enrollment_counts(generate_district(size))
    assert counts and all(5 <= n <= 8 for n in counts.values())


def test_students_enrol_only_at_their_school(small: SimulatedDistrict) -> None:
    users, classes = small.collections["users"], small.collections["classes"]
    for enrollment in small.collections["enrollments"].values():
        klass = classes[enrollment["class"]["sourcedId"]]
        assert enrollment["school"]["sourcedId"] == klass["school"]["sourcedId"]
        user_orgs = {o["sourcedId"] for o in users[enrollment["user"]["sourcedId"]]["orgs"]}
        assert enrollment["school"]["sourcedId"] in user_orgs


def test_users_fields_and_unique_logins(small: SimulatedDistrict) -> None:
    users = list(small.collections["users"].values())
    for user in users:
        assert user["username"] and user["givenName"] and user["familyName"] and user["identifier"]
        assert user["enabledUser"] == "true" and user["orgs"] and user["userIds"]
        assert all(uid["type"] and uid["identifier"] for uid in user["userIds"])
    assert len({u["username"] for u in users}) == len(users)
    emails = [u["email"] for u in users if "email" in u]
    assert len(set(emails)) == len(emails)
    assert all("email" in u for u in users if u["role"] == "teacher")
    students = [u for u in users if u["role"] == "student"]
    without_email = [s for s in students if "email" not in s]
    assert 0 < len(without_email) < len(students) / 2
    assert all(len(s["grades"]) == 1 for s in students)


def test_guardians_link_to_students(small: SimulatedDistrict) -> None:
    users = small.collections["users"]
    guardians = [u for u in users.values() if u["role"] == "guardian"]
    assert guardians
    for guardian in guardians:
        assert 1 <= len(guardian["agents"]) <= 2
        assert all(users[a["sourcedId"]]["role"] == "student" for a in guardian["agents"])


def test_one_demographics_record_per_student(small: SimulatedDistrict) -> None:
    students = {u["sourcedId"] for u in small.collections["users"].values() if u["role"] == "student"}
    demographics = small.collections["demographics"]
    assert set(demographics) == students
    flags = (
        "americanIndianOrAlaskaNative",
        "asian",
        "blackOrAfricanAmerican",
        "nativeHawaiianOrOtherPacificIslander",
        "white",
        "demographicRaceTwoOrMoreRaces",
        "hispanicOrLatinoEthnicity",
    )
    for record in demographics.values():
        assert DATE.match(record["birthDate"]) and record["sex"] in {"male", "female"}
        assert all(record[flag] in {"true", "false"} for flag in flags)
        assert record["status"] == small.collections["users"][record["sourcedId"]]["status"]


def test_some_records_are_tobedeleted_consistently(small: SimulatedDistrict) -> None:
    users, enrollments = small.collections["users"], small.collections["enrollments"]
    withdrawn = {u["sourcedId"] for u in users.values() if u["status"] == "tobedeleted"}
    assert 0 < len(withdrawn) < 20
    tobedeleted_enrollments = [e for e in enrollments.values() if e["status"] == "tobedeleted"]
    assert len(tobedeleted_enrollments) > len(withdrawn)  # withdrawn students' plus dropped classes
    assert all(
        e["status"] == "tobedeleted" for e in enrollments.values() if e["user"]["sourcedId"] in withdrawn
    )
    statuses = {r["status"] for records in small.collections.values() for r in records.values()}
    assert statuses == {"active", "tobedeleted"}


def test_formats(small: SimulatedDistrict) -> None:
    for records in small.collections.values():
        for record in records.values():
            assert STAMP.match(record["dateLastModified"])
            assert "2026-08-01" <= record["dateLastModified"] < "2026-08-05"
    for enrollment in small.collections["enrollments"].values():
        assert enrollment["primary"] in {"true", "false"}
        assert enrollment["role"] in {"student", "teacher"}
        assert DATE.match(enrollment["beginDate"]) and DATE.match(enrollment["endDate"])
        assert enrollment["primary"] == "false" or enrollment["role"] == "teacher"


@pytest.mark.benchmark
@pytest.mark.parametrize("size", ["tiny", "small", "large"])
def test_generation_time_and_memory(size: str) -> None:
    """Prints the figures; peak RSS is the process's, so run one size per process for clean numbers."""
    started, cpu_started = time.perf_counter(), time.process_time()
    district = generate_district(size)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts = {name: district.count(name) for name in BASE_COLLECTIONS}
    print(f"\n{size}: generated in {elapsed:.2f}s wall ({cpu:.2f}s CPU), peak RSS {peak_mb:.0f} MB, {counts}")
    if size == "large":
        assert elapsed < 60
        assert 900_000 <= counts["enrollments"] <= 1_100_000 and 140_000 <= counts["users"] <= 160_000
