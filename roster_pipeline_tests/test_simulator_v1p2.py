"""The simulator's 1.2 rendering of its stored 1.1 records (``roster_pipeline.simulator.v1p2``); the
rendered pages are validated against the 1.2 OpenAPI file in ``test_simulator_conformance_v1p2``."""

from __future__ import annotations

import copy

from roster_pipeline.oneroster import v1p2 as client_mapping
from roster_pipeline.simulator import generate_district, v1p2


def test_users_get_one_primary_role_per_first_org_and_administrators_a_1p2_name() -> None:
    district = generate_district("small", seed=2)
    stored = copy.deepcopy(district.collections["users"])
    orgs = district.collections["orgs"]
    rendered = v1p2.render_page("users", list(district.collections["users"].values()), orgs)
    assert district.collections["users"] == stored  # the district is never edited by rendering
    for user, served in zip(district.collections["users"].values(), rendered, strict=True):
        assert "role" not in served and "orgs" not in served
        assert [role["org"] for role in served["roles"]] == user["orgs"]
        assert [role["roleType"] for role in served["roles"]] == ["primary"] + ["secondary"] * (
            len(user["orgs"]) - 1
        )
        if user["role"] == "administrator":
            org_type = orgs[user["orgs"][0]["sourcedId"]]["type"]
            expected = "districtAdministrator" if org_type == "district" else "siteAdministrator"
            assert {role["role"] for role in served["roles"]} == {expected}
        else:
            assert {role["role"] for role in served["roles"]} == {user["role"]}
        assert client_mapping.map_user(served) == {**user, "roles": served["roles"]}  # and back again


def test_class_periods_are_served_as_a_list() -> None:
    klass = {"sourcedId": "c", "periods": "1, 2"}
    assert v1p2.render_class(klass) == {"sourcedId": "c", "periods": ["1", "2"]}
    assert v1p2.render_page("orgs", [klass], {})[0] is klass  # collections 1.2 serves as stored


def test_1p2_users_select_roles_not_role() -> None:
    assert {"roles", "userProfiles", "preferredFirstName"} <= v1p2.FIELDS["users"]
    assert not {"role", "orgs"} & v1p2.FIELDS["users"]
