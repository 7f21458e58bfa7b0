"""OneRoster 1.2 → 1.1 record mapping (``roster_pipeline.oneroster.v1p2``), one collection at a time, and
how an unmappable record reaches the quarantine: as an issue naming the check and field, never dropped."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from roster_pipeline.oneroster import ClientConfig, ImsxStatus, v1p2
from roster_pipeline.registry.districts import District
from roster_pipeline.sources.factory import client_config_for
from roster_pipeline.validation import issue_rejects, validate_batch

STAMP = "2026-08-01T12:00:00.000Z"


def org_ref(sourced_id: str) -> dict[str, str]:
    return {"href": f"https://sis.example.org/orgs/{sourced_id}", "sourcedId": sourced_id, "type": "org"}


def role(role_name: str, org: str, role_type: str = "primary", **extra: Any) -> dict[str, Any]:
    return {"roleType": role_type, "role": role_name, "org": org_ref(org), **extra}


def user_v1p2(*roles: dict[str, Any], **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "sourcedId": "u1",
        "status": "active",
        "dateLastModified": STAMP,
        "username": "ada.lovelace",
        "enabledUser": "true",
        "givenName": "Ada",
        "familyName": "Lovelace",
        "roles": list(roles),
    }
    record.update(fields)
    return record


def make_district(**overrides: Any) -> District:
    settings: dict[str, Any] = {
        "id": "springfield",
        "name": "Springfield",
        "sis": "generic",
        "token_url": "https://sis.example.org/oauth/token",
        "base_url": "https://sis.example.org/ims/oneroster/rostering/v1p2",
        "client_id_env": "SPRINGFIELD_ID",
        "client_secret_env": "SPRINGFIELD_SECRET",
        "import_method": "oneroster_v1p2_rest",
    }
    settings.update(overrides)
    return District(**settings)


# ------------------------------------------------------------------------------------------ users


def test_user_role_comes_from_the_primary_role_and_orgs_from_every_role() -> None:
    served = user_v1p2(
        role("parent", "school-2", "secondary"),
        role("teacher", "school-1"),
        role("teacher", "school-2", "secondary"),
        role("aide", "school-3", "secondary", beginDate="2026-08-01"),
    )
    kept = copy.deepcopy(served)
    mapped = v1p2.map_user(served)
    assert mapped["role"] == "teacher"
    assert [org["sourcedId"] for org in mapped["orgs"]] == [
        "school-2",
        "school-1",
        "school-3",
    ]  # roles order, once each
    assert mapped["orgs"][0] == org_ref("school-2")
    assert mapped["roles"] == served["roles"]  # what 1.2 said is kept for the raw record
    assert served == kept  # pure: the served record is untouched


@pytest.mark.parametrize(
    ("served_role", "expected"),
    [
        ("districtAdministrator", "administrator"),
        ("siteAdministrator", "administrator"),
        ("systemAdministrator", "administrator"),
        ("principal", "administrator"),
        ("counselor", "administrator"),
        ("teacher", "teacher"),
        ("student", "student"),
        ("guardian", "guardian"),
        ("aide", "aide"),
        ("proctor", "proctor"),
        ("relative", "relative"),
        ("parent", "parent"),
        ("ext:librarian", "ext:librarian"),
    ],
)
def test_user_roles_map_onto_the_1p1_vocabulary(served_role: str, expected: str) -> None:
    assert v1p2.map_user(user_v1p2(role(served_role, "school-1")))["role"] == expected


def test_an_extension_role_reaches_validation_and_is_quarantined_with_the_field_named() -> None:
    mapped = v1p2.map_user(user_v1p2(role("ext:librarian", "school-1")))
    result = validate_batch(make_district(), "users", [mapped])
    assert result.valid == []
    (reject,) = result.rejects
    assert (reject.field, reject.check, reject.value) == ("role", "enum", "ext:librarian")
    assert "district 'springfield'" in reject.message and "'u1'" in reject.message


def test_user_1p2_fields_are_kept_and_secrets_removed() -> None:
    served = user_v1p2(
        role("student", "school-1"),
        userMasterIdentifier="M-42",
        preferredFirstName="Addie",
        preferredLastName="King",
        pronouns="she/her",
        password="hunter2",
        userProfiles=[
            {
                "profileId": "https://apps.example.org/p/1",
                "profileType": "device",
                "vendorId": "chromebooks",
                "credentials": [{"type": "password", "username": "ada.l", "password": "s3cret"}],
            }
        ],
    )
    mapped = v1p2.map_user(served)
    assert mapped["userMasterIdentifier"] == "M-42" and mapped["preferredFirstName"] == "Addie"
    assert mapped["pronouns"] == "she/her" and mapped["preferredLastName"] == "King"
    assert "password" not in mapped
    assert mapped["userProfiles"][0]["credentials"] == [{"type": "password", "username": "ada.l"}]
    assert "s3cret" not in repr(mapped) and "hunter2" not in repr(mapped)
    assert served["userProfiles"][0]["credentials"][0]["password"] == "s3cret"  # the input is not edited
    # 1.1 validation accepts the mapped record as it is
    assert validate_batch(make_district(), "users", [mapped]).rejects == []


def test_a_missing_username_comes_from_profiles_only_when_they_agree_on_one() -> None:
    def profile(*usernames: str) -> dict[str, Any]:
        return {
            "profileId": "https://apps.example.org/p",
            "profileType": "lms",
            "vendorId": "v",
            "credentials": [{"type": "username", "username": name} for name in usernames],
        }

    agreed = user_v1p2(role("student", "s"), userProfiles=[profile("ada.l"), profile("ada.l")])
    del agreed["username"]
    assert v1p2.map_user(agreed)["username"] == "ada.l"

    disagreeing = user_v1p2(role("student", "s"), userProfiles=[profile("ada.l", "alovelace")])
    del disagreeing["username"]
    mapped = v1p2.map_user(disagreeing)
    assert "username" not in mapped
    (reject,) = validate_batch(make_district(), "users", [mapped]).rejects  # quarantined, not guessed
    assert (reject.field, reject.check) == ("username", "required")


@pytest.mark.parametrize(
    ("roles", "check", "reason"),
    [
        ([], v1p2.PRIMARY_ROLE, "no role with roleType 'primary'"),
        ([role("teacher", "school-1", "secondary")], v1p2.PRIMARY_ROLE, "no role with roleType 'primary'"),
        ([role("teacher", "school-1"), role("parent", "school-2")], v1p2.PRIMARY_ROLE, "teacher, parent"),
        ([{"roleType": "primary", "role": "teacher", "org": {"href": "x"}}], v1p2.ROLE_ORG, "names an org"),
    ],
    ids=["no-roles", "only-secondary", "disagreeing-primaries", "no-org"],
)
def test_users_without_a_1p1_shape_raise_naming_check_and_field(
    roles: list[dict[str, Any]], check: str, reason: str
) -> None:
    with pytest.raises(v1p2.UnmappableRecord) as raised:
        v1p2.map_user(user_v1p2(*roles))
    assert raised.value.check == check and raised.value.field == "roles"
    assert reason in raised.value.detail


def test_several_primaries_of_one_1p1_role_map() -> None:
    mapped = v1p2.map_user(user_v1p2(role("principal", "school-1"), role("siteAdministrator", "school-2")))
    assert mapped["role"] == "administrator"
    assert [org["sourcedId"] for org in mapped["orgs"]] == ["school-1", "school-2"]


def test_roles_that_are_not_a_list_are_unmappable() -> None:
    record = user_v1p2()
    record["roles"] = "teacher"
    with pytest.raises(v1p2.UnmappableRecord) as raised:
        v1p2.map_user(record)
    assert raised.value.value == "teacher"


# ------------------------------------------------------------------------------------------ other collections


def test_status_inactive_is_read_as_tobedeleted_and_other_statuses_pass() -> None:
    org = {"sourcedId": "o1", "status": "inactive", "dateLastModified": STAMP, "name": "X", "type": "school"}
    assert v1p2.map_org(org)["status"] == "tobedeleted"
    assert org["status"] == "inactive"
    for status in ("active", "tobedeleted", "bogus"):
        same = {**org, "status": status}
        assert v1p2.map_org(same) is same  # unchanged records are not copied


def test_collections_without_differences_are_returned_as_they_are() -> None:
    enrollment = {
        "sourcedId": "e1",
        "status": "active",
        "dateLastModified": STAMP,
        "user": {"sourcedId": "u1"},
        "class": {"sourcedId": "c1"},
        "school": {"sourcedId": "s1"},
        "role": "teacher",
        "primary": "true",
    }
    course = {
        "sourcedId": "k1",
        "status": "active",
        "dateLastModified": STAMP,
        "title": "Math",
        "courseCode": "M",
    }
    assert v1p2.map_enrollment(enrollment) is enrollment
    assert v1p2.map_course(course) is course


def test_class_periods_list_becomes_the_1p1_comma_separated_text() -> None:
    klass = {
        "sourcedId": "c1",
        "status": "active",
        "dateLastModified": STAMP,
        "periods": ["1", "2"],
        "grades": ["09"],
    }
    assert v1p2.map_class(klass)["periods"] == "1,2"
    assert v1p2.map_class({**klass, "periods": ["3"]})["periods"] == "3"
    assert "periods" not in v1p2.map_class({**klass, "periods": []})
    assert klass["periods"] == ["1", "2"]
    as_text = {**klass, "periods": "4"}
    assert v1p2.map_class(as_text) is as_text


def test_session_school_year_sent_as_a_number_becomes_its_digits() -> None:
    session = {
        "sourcedId": "y",
        "status": "active",
        "dateLastModified": STAMP,
        "schoolYear": 2027,
        "type": "schoolYear",
    }
    assert v1p2.map_academic_session(session)["schoolYear"] == "2027"
    text = {**session, "schoolYear": "2027"}
    assert v1p2.map_academic_session(text) is text


@pytest.mark.parametrize("sex", ["other", "unspecified"])
def test_demographics_sex_values_1p1_cannot_hold_leave_the_field_and_stay_in_metadata(sex: str) -> None:
    served = {
        "sourcedId": "u1",
        "status": "active",
        "dateLastModified": STAMP,
        "sex": sex,
        "metadata": {"x": 1},
    }
    mapped = v1p2.map_demographics(served)
    assert "sex" not in mapped
    assert mapped["metadata"] == {"x": 1, "v1p2": {"sex": sex}}
    assert served["sex"] == sex and served["metadata"] == {"x": 1}
    assert validate_batch(make_district(), "demographics", [mapped]).rejects == []


def test_demographics_1p1_sexes_and_extension_values_pass_through() -> None:
    female = {"sourcedId": "u1", "status": "active", "dateLastModified": STAMP, "sex": "female"}
    assert v1p2.map_demographics(female) is female
    extension = {**female, "sex": "ext:x"}
    (reject,) = validate_batch(make_district(), "demographics", [v1p2.map_demographics(extension)]).rejects
    assert (reject.field, reject.check) == ("sex", "enum")


# ------------------------------------------------------------------------------------------ pages and the quarantine


def test_map_page_keeps_order_and_turns_unmappable_records_into_issues() -> None:
    good = user_v1p2(role("teacher", "school-1"))
    bad = user_v1p2(role("teacher", "school-1", "secondary"), sourcedId="u2", password="hunter2")
    later = user_v1p2(role("student", "school-1"), sourcedId="u3")
    records, issues = v1p2.map_page("users", [good, bad, later])
    assert [r["sourcedId"] for r in records] == ["u1", "u3"]
    (issue,) = issues
    assert (issue.sourced_id, issue.check, issue.field) == ("u2", v1p2.PRIMARY_ROLE, "roles")
    assert issue.value == "teacher@school-1 (secondary)"
    assert "password" not in issue.record and issue.record["roles"] == bad["roles"]

    (reject,) = issue_rejects("springfield", "users", issues)
    assert (reject.resource, reject.sourced_id, reject.field, reject.check) == (
        "users",
        "u2",
        "roles",
        v1p2.PRIMARY_ROLE,
    )
    assert reject.message.startswith(
        "district 'springfield', users 'u2': field 'roles' has no role with roleType"
    )
    assert reject.raw is not None and "hunter2" not in repr(reject.raw)


def test_every_collection_has_a_mapping() -> None:
    for envelope in (
        "orgs",
        "academicSessions",
        "courses",
        "classes",
        "users",
        "enrollments",
        "demographics",
    ):
        assert callable(v1p2.mapper_for(envelope))
    with pytest.raises(KeyError, match="lineItems"):
        v1p2.mapper_for("lineItems")


# ------------------------------------------------------------------------------------------ config, errors, registry


def test_client_config_refuses_a_base_url_of_the_other_version() -> None:
    common = {
        "district_id": "springfield",
        "token_url": "https://sis.example.org/token",
        "client_id": "id",
        "client_secret": "very-secret-value",
    }
    ClientConfig(
        **common, base_url="https://sis.example.org/ims/oneroster/rostering/v1p2", oneroster_version="1.2"
    )
    ClientConfig(**common, base_url="https://sis.example.org/ims/oneroster/v1p1")
    with pytest.raises(ValidationError) as v1p1_base:
        ClientConfig(
            **common, base_url="https://sis.example.org/ims/oneroster/v1p1/", oneroster_version="1.2"
        )
    assert "district 'springfield'" in str(v1p1_base.value) and "rostering/v1p2" in str(v1p1_base.value)
    with pytest.raises(ValidationError) as v1p2_base:
        ClientConfig(**common, base_url="https://sis.example.org/ims/oneroster/rostering/v1p2")
    assert "OneRoster 1.2 API" in str(v1p2_base.value)
    assert "very-secret-value" not in str(v1p1_base.value) + str(v1p2_base.value)


def test_the_1p2_import_method_makes_a_1p2_client_config() -> None:
    environ = {"SPRINGFIELD_ID": "id", "SPRINGFIELD_SECRET": "secret"}
    assert client_config_for(make_district(), environ).oneroster_version == "1.2"
    rest = make_district(
        import_method="oneroster_rest", base_url="https://sis.example.org/ims/oneroster/v1p1"
    )
    assert client_config_for(rest, environ).oneroster_version == "1.1"


def test_the_1p2_error_body_is_read() -> None:
    body = {
        "imsx_codeMajor": "failure",
        "imsx_severity": "error",
        "imsx_description": "unknown filter field",
        "imsx_CodeMinor": {
            "imsx_codeMinorField": [
                {
                    "imsx_codeMinorFieldName": "TargetEndSystem",
                    "imsx_codeMinorFieldValue": "invalid_filter_field",
                }
            ]
        },
    }
    status = ImsxStatus.from_body(body)
    assert status == ImsxStatus("failure", "error", "invalid_filter_field", "unknown filter field")
