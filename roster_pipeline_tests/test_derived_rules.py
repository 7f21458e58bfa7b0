"""The derived tables' rules without a database: the teacher order (accents, particles, apostrophes,
ties), the primary flag and class findings, student logins under each ``student_devices`` setting, and
the registry's ``class_teachers`` setting."""

from __future__ import annotations

from typing import Any

import pytest

from roster_pipeline.derived.class_teachers import (
    NO_PRIMARY,
    NO_TEACHER,
    SEVERAL_PRIMARIES,
    TeacherEnrollment,
    is_primary,
    order_class,
)
from roster_pipeline.derived.name_order import name_key, person_sort_key
from roster_pipeline.derived.student_logins import NO_EMAIL, NO_USERNAME, StudentLogin, login_for
from roster_pipeline.registry.districts import RegistryError, parse_registry


def ordered(people: list[tuple[str | None, str | None, str]]) -> list[str]:
    return [p[2] for p in sorted(people, key=lambda p: person_sort_key(*p))]


# -- name order ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("de la Cruz", "delacruz"),
        ("Ångström", "angstrom"),
        ("O'Neil", "oneil"),
        ("Oneil", "oneil"),
        ("Smith-Jones", "smithjones"),
        ("ÉMILE", "emile"),
        ("Straße", "strasse"),
        ("Øster", "oster"),
        ("Łukasz", "lukasz"),
        ("Æsir", "aesir"),
        ("  ", ""),
        (None, ""),
    ],
)
def test_name_key_ignores_case_accents_spaces_and_punctuation(name: str | None, key: str) -> None:
    assert name_key(name) == key


def test_teachers_sort_as_a_person_expects_not_by_code_point() -> None:
    people = [
        ("Zimmer", "Anna", "t-zimmer"),
        ("de la Cruz", "Maria", "t-cruz"),  # with the D's: particles are part of the name
        ("Ångström", "Lars", "t-angstrom"),  # with the A's, before "Baker" (code points put Å after z)
        ("Baker", "Ann", "t-baker"),
        ("O'Neil", "Sean", "t-oneil-apostrophe"),  # apostrophe ignored: next to Oneil, ordered by given name
        ("Oneil", "Patrick", "t-oneil"),
        ("davis", "Bea", "t-davis"),  # lower case does not sort after Z
        ("Nuñez", "Rosa", "t-nunez"),
        ("Nunez", "Carl", "t-nunez2"),
    ]
    assert ordered(people) == [
        "t-angstrom",
        "t-baker",
        "t-davis",
        "t-cruz",
        "t-nunez2",
        "t-nunez",
        "t-oneil",
        "t-oneil-apostrophe",
        "t-zimmer",
    ]
    assert sorted(p[0] for p in people)[-1] == "Ångström"  # what a plain sort would have done


def test_equal_names_are_ordered_by_sourced_id_and_missing_names_go_last() -> None:
    people = [
        ("Lee", "Kim", "t-2"),
        ("LEE", "kim", "t-10"),
        ("Lée", "Kim", "t-1"),
        (None, None, "t-0"),
        ("Lee", None, "t-3"),
    ]
    # Equal names: sourcedId decides (exact string order: "t-1" < "t-10" < "t-2"); a missing given name
    # after the present ones of the same family; no name at all last.
    assert ordered(people) == ["t-1", "t-10", "t-2", "t-3", "t-0"]


# -- class teachers -----------------------------------------------------------------------------------


def teacher(
    sourced_id: str,
    family: str,
    given: str = "Pat",
    primary: str | None = "false",
    role: str = "teacher",
    class_id: str = "cls-1",
) -> TeacherEnrollment:
    return TeacherEnrollment(class_id, 2027, sourced_id, role, primary, family, given)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("false", False),
        (None, False),
        ("TRUE", True),
        (" true ", True),
        ("yes", False),
        ("", False),
    ],
)
def test_primary_is_the_string_true_and_absent_means_false(value: str | None, expected: bool) -> None:
    assert is_primary(value) is expected


def test_a_class_lists_every_teacher_alphabetically_with_the_primary_flag_kept() -> None:
    rows, findings = order_class(
        "cls-1",
        [
            teacher("t-3", "Young", primary="true"),
            teacher("t-1", "Ångström"),
            teacher("t-2", "de la Cruz", primary=None),
        ],
    )
    assert [(r.teacher_sourced_id, r.display_order, r.is_primary) for r in rows] == [
        ("t-1", 1, False),
        ("t-2", 2, False),
        ("t-3", 3, True),
    ]
    assert findings.counts() == {SEVERAL_PRIMARIES: 0, NO_PRIMARY: 0, NO_TEACHER: 0}


@pytest.mark.parametrize(
    ("enrollments", "finding"),
    [
        ([teacher("t-1", "A", primary="true"), teacher("t-2", "B", primary="true")], SEVERAL_PRIMARIES),
        ([teacher("t-1", "A"), teacher("t-2", "B", primary=None)], NO_PRIMARY),
        ([], NO_TEACHER),
    ],
)
def test_odd_classes_are_findings_not_errors(enrollments: list[TeacherEnrollment], finding: str) -> None:
    rows, findings = order_class("cls-1", enrollments)
    assert len(rows) == len(enrollments)
    assert findings.classes[finding] == ["cls-1"]
    assert sum(findings.counts().values()) == 1


def test_one_person_enrolled_twice_in_a_class_is_one_teacher_primary_if_either_says_so() -> None:
    rows, findings = order_class(
        "cls-1",
        [
            teacher("t-1", "Kay", role="aide"),
            teacher("t-1", "Kay", role="teacher", primary="true"),
            teacher("t-2", "Lu"),
        ],
    )
    assert [(r.teacher_sourced_id, r.role, r.is_primary, r.display_order) for r in rows] == [
        ("t-1", "teacher", True, 1),
        ("t-2", "teacher", False, 2),
    ]
    assert findings.counts()[SEVERAL_PRIMARIES] == 0


# -- student logins -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("devices", "email", "username", "expected"),
    [
        ("chromebooks_only", "a@x.org", "a1", StudentLogin("a@x.org", None, None)),
        ("chromebooks_only", None, "a1", StudentLogin(None, None, NO_EMAIL)),
        ("chromebooks_only", "  ", "a1", StudentLogin(None, None, NO_EMAIL)),  # blank is missing
        ("chromebooks_only", "a@x.org", None, StudentLogin("a@x.org", None, None)),  # username not needed
        ("no_chromebooks", "a@x.org", "a1", StudentLogin(None, "a1", None)),
        ("no_chromebooks", "a@x.org", None, StudentLogin(None, None, NO_USERNAME)),
        ("no_chromebooks", None, "a1", StudentLogin(None, "a1", None)),  # email not needed
        ("mixed", "a@x.org", "a1", StudentLogin("a@x.org", "a1", None)),
        ("mixed", None, "a1", StudentLogin(None, "a1", None)),  # mixed: a missing email is no problem
        ("mixed", "a@x.org", "", StudentLogin("a@x.org", None, NO_USERNAME)),
        ("mixed", None, None, StudentLogin(None, None, NO_USERNAME)),
    ],
)
def test_login_rules_per_device_setting(
    devices: Any, email: str | None, username: str | None, expected: StudentLogin
) -> None:
    assert login_for(devices, email, username) == expected


def test_an_unknown_device_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown student_devices 'ipads'"):
        login_for("ipads", "a@x.org", "a1")  # type: ignore[arg-type]


# -- the registry setting ---------------------------------------------------------------------------


def district(**fields: Any) -> dict[str, Any]:
    return {
        "id": "north",
        "name": "North",
        "api_host": "sis.example.org",
        "app_name": "north",
        "client_id_env": "NORTH_ID",
        "client_secret_env": "NORTH_SECRET",
        **fields,
    }


def test_class_teachers_lists_teachers_only_unless_the_district_opts_in() -> None:
    registry = parse_registry(
        {
            "districts": [
                district(),
                district(id="south", class_teachers={"include_roles": ["teacher", "aide", "administrator"]}),
            ]
        }
    )
    assert registry.get("north").class_teachers.include_roles == ["teacher"]
    assert registry.get("south").class_teachers.include_roles == ["teacher", "aide", "administrator"]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"include_roles": ["teacher", "janitor"]}, "field 'class_teachers.include_roles.1'"),
        ({"include_roles": ["aide"]}, "field 'class_teachers.include_roles': must include 'teacher'"),
        ({"include_roles": ["teacher", "teacher"]}, "lists a role twice"),
        ({"roles": ["teacher"]}, "field 'class_teachers.roles': unknown field"),
    ],
)
def test_a_bad_class_teachers_setting_names_the_district_and_field(
    setting: dict[str, Any], message: str
) -> None:
    with pytest.raises(RegistryError, match="district 'north'") as caught:
        parse_registry({"districts": [district(class_teachers=setting)]})
    assert message in str(caught.value)
