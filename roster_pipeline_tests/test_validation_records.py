"""Per-batch pandera validation: each check fails on crafted bad data with the right record, field,
check and value, and generated (valid) districts pass with zero errors."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from roster_pipeline.records.catalogue import RESOURCES, resource
from roster_pipeline.registry.districts import District
from roster_pipeline.simulator.generate import generate_district
from roster_pipeline.validation import CHECKS, STUDENT_WITHOUT_EMAIL, validate_batch


def make_district(devices: str = "mixed") -> District:
    return District(
        id="springfield",
        name="Springfield",
        client_id_env="SPRINGFIELD_ID",
        client_secret_env="SPRINGFIELD_SECRET",
        api_host="sis.example.org",
        app_name="app",
        student_devices=devices,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def tiny() -> Any:
    return generate_district("tiny", 7)


@pytest.fixture(scope="module")
def small() -> Any:
    return generate_district("small", 3)


def batch_of(district: Any, collection: str) -> list[dict[str, Any]]:
    return copy.deepcopy(list(district.collections[collection].values()))


def first(district: Any, collection: str, **where: str) -> dict[str, Any]:
    for record in district.collections[collection].values():
        if all(record.get(k) == v for k, v in where.items()):
            return copy.deepcopy(record)
    raise AssertionError(f"no {collection} record with {where}")


@pytest.mark.parametrize("size,seed", [("tiny", 1), ("tiny", 7), ("small", 3)])
def test_generated_districts_have_no_errors(size: str, seed: int) -> None:
    district = generate_district(size, seed)
    for res in RESOURCES:
        records = batch_of(district, res.collection)
        assert records, res.name
        result = validate_batch(make_district("chromebooks_only"), res.name, records)
        assert result.rejects == [], result.rejects[:3]
        assert result.rejected == 0
        assert result.valid == records


def _set(record: dict[str, Any], path: str, value: Any) -> None:
    if value is _DELETE:
        record.pop(path, None)
    else:
        record[path] = value


_DELETE = object()

# (collection, base record filter, field to change, new value, reported field, check, reported value)
CASES: list[tuple[str, dict[str, str], str, Any, str, str, str | None]] = [
    # required (missing, empty, blank, malformed references, empty reference lists)
    ("orgs", {}, "name", _DELETE, "name", "required", None),
    ("orgs", {}, "name", "   ", "name", "required", None),
    ("orgs", {}, "dateLastModified", _DELETE, "dateLastModified", "required", None),
    ("orgs", {}, "status", "", "status", "required", None),
    ("academicSessions", {}, "title", _DELETE, "title", "required", None),
    ("academicSessions", {}, "startDate", _DELETE, "startDate", "required", None),
    ("academicSessions", {}, "schoolYear", _DELETE, "schoolYear", "required", None),
    ("courses", {}, "title", "", "title", "required", None),
    ("courses", {}, "org", _DELETE, "org.sourcedId", "required", None),
    (
        "classes",
        {},
        "course",
        {"href": "/courses/x", "type": "course"},
        "course.sourcedId",
        "required",
        '{"href":"/courses/x","type":"course"}',
    ),
    ("classes", {}, "school", "school-1", "school.sourcedId", "required", "school-1"),
    ("classes", {}, "terms", [], "terms", "required", "[]"),
    ("classes", {}, "terms", _DELETE, "terms", "required", None),
    ("classes", {}, "classType", _DELETE, "classType", "required", None),
    ("users", {}, "username", _DELETE, "username", "required", None),
    ("users", {}, "givenName", "", "givenName", "required", None),
    ("users", {}, "familyName", _DELETE, "familyName", "required", None),
    ("users", {}, "enabledUser", _DELETE, "enabledUser", "required", None),
    ("users", {}, "orgs", [{"href": "/orgs/x"}], "orgs", "required", '[{"href":"/orgs/x"}]'),
    ("enrollments", {}, "user", _DELETE, "user.sourcedId", "required", None),
    ("enrollments", {}, "class", {"sourcedId": ""}, "class.sourcedId", "required", '{"sourcedId":""}'),
    ("enrollments", {}, "school", _DELETE, "school.sourcedId", "required", None),
    ("enrollments", {}, "role", _DELETE, "role", "required", None),
    # enumerations
    ("orgs", {}, "status", "deleted", "status", "enum", "deleted"),
    ("orgs", {}, "type", "campus", "type", "enum", "campus"),
    ("academicSessions", {}, "type", "quarter", "type", "enum", "quarter"),
    ("classes", {}, "classType", "Scheduled", "classType", "enum", "Scheduled"),
    ("users", {}, "role", "pupil", "role", "enum", "pupil"),
    ("enrollments", {}, "role", "Student", "role", "enum", "Student"),
    ("demographics", {}, "sex", "M", "sex", "enum", "M"),
    # "true"/"false" strings
    ("enrollments", {}, "primary", "yes", "primary", "boolean_string", "yes"),
    ("users", {}, "enabledUser", "TRUE", "enabledUser", "boolean_string", "TRUE"),
    ("demographics", {}, "white", "1", "white", "boolean_string", "1"),
    (
        "demographics",
        {},
        "hispanicOrLatinoEthnicity",
        "Y",
        "hispanicOrLatinoEthnicity",
        "boolean_string",
        "Y",
    ),
    # formats
    ("academicSessions", {}, "startDate", "2026/08/17", "startDate", "date_format", "2026/08/17"),
    ("academicSessions", {}, "endDate", "2027-02-30", "endDate", "date_format", "2027-02-30"),
    ("enrollments", {}, "beginDate", "08-17-2026", "beginDate", "date_format", "08-17-2026"),
    ("enrollments", {}, "endDate", "2026-13-01", "endDate", "date_format", "2026-13-01"),
    ("demographics", {}, "birthDate", "2014-3-24", "birthDate", "date_format", "2014-3-24"),
    (
        "users",
        {},
        "dateLastModified",
        "2026-08-01T12:00:00+02:00",
        "dateLastModified",
        "datetime_format",
        "2026-08-01T12:00:00+02:00",
    ),
    ("classes", {}, "dateLastModified", "2026-08-01", "dateLastModified", "datetime_format", "2026-08-01"),
    (
        "courses",
        {},
        "dateLastModified",
        "2026-08-01T25:00:00Z",
        "dateLastModified",
        "datetime_format",
        "2026-08-01T25:00:00Z",
    ),
    ("academicSessions", {}, "schoolYear", "26-27", "schoolYear", "school_year_format", "26-27"),
    ("academicSessions", {}, "schoolYear", "202", "schoolYear", "school_year_format", "202"),
    ("users", {}, "email", "jane.doe@", "email", "email_format", "jane.doe@"),
    ("users", {}, "email", "jane doe@example.org", "email", "email_format", "jane doe@example.org"),
    # order of dates
    ("academicSessions", {}, "startDate", "2027-07-01", "endDate", "date_order", None),
    ("enrollments", {}, "beginDate", "2027-09-01", "endDate", "date_order", None),
]


@pytest.mark.parametrize("collection,where,field,new,reported,check,value", CASES)
def test_each_check_rejects_the_right_record(
    tiny: Any,
    collection: str,
    where: dict[str, str],
    field: str,
    new: Any,
    reported: str,
    check: str,
    value: str | None,
) -> None:
    records = batch_of(tiny, collection)
    target = records[1]
    _set(target, field, new)
    name = resource(collection).name

    result = validate_batch(make_district(), collection, records)

    assert len(result.rejects) == 1, [(r.sourced_id, r.field, r.check) for r in result.rejects]
    reject = result.rejects[0]
    assert (reject.resource, reject.sourced_id, reject.field, reject.check) == (
        name,
        target["sourcedId"],
        reported,
        check,
    )
    if check == "date_order":
        assert reject.value == target["endDate"]
    else:
        assert reject.value == value
    assert reject.severity == "error" and reject.raw == target
    assert check in CHECKS
    # The message names district, resource, record and field.
    assert reject.message.startswith(f"district 'springfield', {name} '{target['sourcedId']}': ")
    assert repr(reported) in reject.message
    # The failing record is held back; every other one passes.
    assert target not in result.valid
    assert len(result.valid) == len(records) - 1 and result.rejected == 1


def test_message_reads_as_documented(tiny: Any) -> None:
    record = first(tiny, "enrollments")
    record["sourcedId"], record["primary"] = "enr-9", "yes"
    (reject,) = validate_batch(make_district(), "enrollments", [record]).rejects
    assert reject.message == (
        "district 'springfield', enrollments 'enr-9': field 'primary' must be \"true\" or \"false\", got 'yes'"
    )


def test_enum_message_lists_allowed_values(tiny: Any) -> None:
    record = first(tiny, "users")
    record["role"] = "pupil"
    (reject,) = validate_batch(make_district(), "users", [record]).rejects
    assert "administrator, aide, guardian, parent, proctor, relative, student, teacher" in reject.message
    assert "got 'pupil'" in reject.message


def test_duplicate_sourced_ids_reject_every_copy(tiny: Any) -> None:
    records = batch_of(tiny, "users")
    twin = copy.deepcopy(records[0])
    twin["givenName"] = "Other"
    result = validate_batch(make_district(), "users", [*records, twin])
    assert [(r.sourced_id, r.field, r.check, r.value) for r in result.rejects] == [
        (records[0]["sourcedId"], "sourcedId", "unique", records[0]["sourcedId"])
    ] * 2
    assert result.rejected == 2 and len(result.valid) == len(records) - 1


def test_missing_sourced_id_is_rejected_not_dropped(tiny: Any) -> None:
    records = batch_of(tiny, "courses")
    del records[2]["sourcedId"]
    result = validate_batch(make_district(), "courses", records)
    (reject,) = result.rejects
    assert (reject.sourced_id, reject.field, reject.check) == (None, "sourcedId", "required")
    assert "record #3 of the batch without a sourcedId" in reject.message
    assert len(result.valid) == len(records) - 1


def test_one_record_failing_several_checks_gives_one_reject_each(tiny: Any) -> None:
    record = first(tiny, "enrollments")
    record.update(role="Student", primary="no", beginDate="tomorrow")
    del record["school"]
    result = validate_batch(make_district(), "enrollments", [record])
    assert sorted((r.field, r.check) for r in result.rejects) == [
        ("beginDate", "date_format"),
        ("primary", "boolean_string"),
        ("role", "enum"),
        ("school.sourcedId", "required"),
    ]
    assert result.valid == [] and result.rejected == 1


def test_optional_fields_may_be_absent(tiny: Any) -> None:
    record = first(tiny, "enrollments")
    for optional in ("primary", "beginDate", "endDate"):
        record.pop(optional, None)
    demographics = {"sourcedId": "d-1", "status": "active", "dateLastModified": "2026-08-01T00:00:00Z"}
    assert validate_batch(make_district(), "enrollments", [record]).rejects == []
    assert validate_batch(make_district(), "demographics", [demographics]).rejects == []


def test_lenient_where_the_warehouse_is(tiny: Any) -> None:
    """JSON booleans and a far-future 9999-12-31 end date are accepted (SIS quirks, not data errors)."""
    record = first(tiny, "enrollments")
    record.update(primary=True, endDate="9999-12-31")
    assert validate_batch(make_district(), "enrollments", [record]).rejects == []


def test_every_input_is_valid_or_rejected(small: Any) -> None:
    records = batch_of(small, "enrollments")[:2000]
    for index in range(0, len(records), 7):
        records[index]["role"] = "nobody"
    for index in range(0, len(records), 11):
        records[index]["beginDate"] = "2026-02-30"
    result = validate_batch(make_district(), "enrollments", records)
    rejected_ids = {r.sourced_id for r in result.rejects}
    valid_ids = {r["sourcedId"] for r in result.valid}
    assert valid_ids.isdisjoint(rejected_ids)
    assert valid_ids | rejected_ids == {r["sourcedId"] for r in records}
    expected = {records[i]["sourcedId"] for i in range(0, len(records), 7)} | {
        records[i]["sourcedId"] for i in range(0, len(records), 11)
    }
    assert rejected_ids == expected and result.rejected == len(expected)


def test_accepts_collection_names_and_empty_batches(tiny: Any) -> None:
    assert (
        validate_batch(make_district(), "academicSessions", batch_of(tiny, "academicSessions")).rejects == []
    )
    empty = validate_batch(make_district(), "users", [])
    assert (empty.valid, empty.rejects, empty.warnings, empty.rejected) == ([], [], [], 0)


# -- warnings ---------------------------------------------------------------------------------------


def _students_without_email(district: Any) -> list[dict[str, Any]]:
    return [
        r
        for r in district.collections["users"].values()
        if r["role"] == "student" and r["status"] == "active" and not r.get("email")
    ]


def test_student_without_email_warns_in_chromebook_district(small: Any) -> None:
    records = batch_of(small, "users")
    expected = {r["sourcedId"] for r in _students_without_email(small)}
    assert expected  # the generator leaves some students without email
    result = validate_batch(make_district("chromebooks_only"), "users", records)
    assert result.rejects == [] and len(result.valid) == len(records)  # warnings never hold a record back
    assert {w.sourced_id for w in result.warnings} == expected
    warning = result.warnings[0]
    assert (warning.severity, warning.check, warning.field, warning.resource) == (
        "warning",
        STUDENT_WITHOUT_EMAIL,
        "email",
        "users",
    )
    assert warning.message.startswith("district 'springfield', users '") and "'email'" in warning.message


def test_no_email_warning_elsewhere_or_for_tobedeleted(small: Any) -> None:
    records = batch_of(small, "users")
    assert validate_batch(make_district("mixed"), "users", records).warnings == []
    assert validate_batch(make_district("no_chromebooks"), "users", records).warnings == []
    student = copy.deepcopy(_students_without_email(small)[0])
    teacher = first(small, "users", role="teacher")
    del teacher["email"]
    blank = dict(student, sourcedId="blank-email", email="")
    gone = dict(student, sourcedId="gone", status="tobedeleted")
    result = validate_batch(make_district("chromebooks_only"), "users", [student, teacher, blank, gone])
    assert sorted(w.sourced_id for w in result.warnings) == sorted([student["sourcedId"], "blank-email"])


def test_rejected_records_get_no_warning(small: Any) -> None:
    student = copy.deepcopy(_students_without_email(small)[0])
    student["enabledUser"] = "yes"
    result = validate_batch(make_district("chromebooks_only"), "users", [student])
    assert [r.check for r in result.rejects] == ["boolean_string"] and result.warnings == []


def test_throughput_of_a_50k_enrollment_batch(small: Any) -> None:
    """Records the rows/s figure (printed with -s); guards against a per-row regression (>20k rows/s)."""
    base = list(small.collections["enrollments"].values())
    batch = [dict(r, sourcedId=f"{r['sourcedId']}-{i}") for i in range(5) for r in base][:50_000]
    validate_batch(make_district(), "enrollments", batch[:1000])  # warm-up (imports, schema build)
    started = time.perf_counter()
    result = validate_batch(make_district(), "enrollments", batch)
    seconds = time.perf_counter() - started
    assert result.rejected == 0 and len(result.valid) == len(batch)
    print(f"validate_batch: {len(batch)} enrollments in {seconds:.3f}s = {len(batch) / seconds:,.0f} rows/s")
    assert len(batch) / seconds > 20_000


# ------------------------------------------------------------------------ values no warehouse can store


def test_a_nul_character_quarantines_its_record_with_the_field_named(tiny: Any) -> None:
    batch = batch_of(tiny, "users")
    batch[2]["givenName"] = "Ann\x00e"
    batch[5]["orgs"] = [dict(batch[5]["orgs"][0], sourcedId=batch[5]["orgs"][0]["sourcedId"] + "\x00")]
    batch[7]["userIds"] = [{"type": "LDAP", "identifier": "\x00"}]  # a field no schema column reads
    result = validate_batch(make_district(), "users", batch)
    found = {(r.sourced_id, r.field, r.check, r.value) for r in result.rejects if r.check == "nul_character"}
    assert found == {
        (batch[2]["sourcedId"], "givenName", "nul_character", "Ann\\x00e"),
        (
            batch[5]["sourcedId"],
            "orgs[0].sourcedId",
            "nul_character",
            batch[5]["orgs"][0]["sourcedId"][:-1] + "\\x00",
        ),
        (batch[7]["sourcedId"], "userIds[0].identifier", "nul_character", "\\x00"),
    }
    assert result.rejected == 3 and len(result.valid) == len(batch) - 3
    reject = next(r for r in result.rejects if r.field == "givenName")
    assert "springfield" in reject.message and "'givenName'" in reject.message and "NUL" in reject.message
    assert reject.raw == batch[2]
    assert all("\x00" not in str(r) for r in result.valid)


def test_undecodable_text_and_huge_numbers_are_quarantined_too(tiny: Any) -> None:
    batch = batch_of(tiny, "users")
    batch[1]["familyName"] = "Jos\udce9"  # byte 0xE9 as the client's lenient decoding leaves it
    batch[3]["middleName"] = "\ud800"  # a lone surrogate escape
    batch[4]["identifier"] = 10**30  # only a leniently parsed body can carry one
    batch[6]["x\x00"] = "key"
    result = validate_batch(make_district(), "users", batch)
    found = sorted((r.field, r.check, r.value) for r in result.rejects)
    assert found == [
        ("familyName", "invalid_utf8", "Jos\\xe9"),
        ("identifier", "number_out_of_range", str(10**30)),
        ("middleName", "invalid_utf8", "\\ud800"),
        ("x\\x00", "nul_character", "x\\x00"),
    ]
    assert result.rejected == 4 and len(result.valid) == len(batch) - 4


def test_a_bad_sourced_id_is_shown_visibly_on_every_reject_of_its_record(tiny: Any) -> None:
    record = first(tiny, "users", role="teacher")
    record["sourcedId"] = "t\x00-1"
    record["role"] = "wizard"
    result = validate_batch(make_district(), "users", [record])
    assert {(r.sourced_id, r.check) for r in result.rejects} == {
        ("t\\x00-1", "nul_character"),
        ("t\\x00-1", "enum"),
    }


def test_an_absent_geopandas_is_looked_for_once_not_on_every_batch(
    tiny: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pandera imports geopandas for every column it validates; where it is not installed, the failed
    search must not run again for every batch (see validation/geopandas_probe.py)."""
    import importlib.util
    import sys
    import types

    from roster_pipeline.validation.geopandas_probe import remember_that_geopandas_is_absent

    if sys.modules.get("geopandas", None) is not None:
        pytest.skip("geopandas is installed here: nothing to remember")
    assert "geopandas" in sys.modules and sys.modules["geopandas"] is None  # done when validation is imported
    searched: list[str] = []
    real_find_spec = importlib.machinery.PathFinder.find_spec

    def counting_find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        searched.append(name)
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.machinery.PathFinder, "find_spec", counting_find_spec)
    result = validate_batch(make_district(), "users", list(tiny.collections["users"].values())[:20])
    assert result.valid and not [name for name in searched if name.startswith("geopandas")]

    # Installed: nothing changes.
    monkeypatch.setitem(sys.modules, "geopandas", types.ModuleType("geopandas"))
    assert remember_that_geopandas_is_absent() is False
    assert sys.modules["geopandas"] is not None
