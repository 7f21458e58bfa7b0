"""Conformance of the simulator's 1.2 mode: every GET path of the official 1EdTech OneRoster 1.2 rostering
OpenAPI file (``../shared/oneroster-reference/oneroster-v1p2-rostering.openapi.json``) answers with a body
its schema accepts (``additionalProperties: false`` everywhere, so a 1.1 field left in a 1.2 record fails),
and so do the error bodies.  Formats (``date``, ``date-time``) are checked too.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district
from roster_pipeline.simulator.district import SimulatedDistrict
from roster_pipeline_tests.simulator_checks import path_values, single_read_id

pytestmark = pytest.mark.shared

OPENAPI = "oneroster-v1p2-rostering.openapi.json"
CID, SECRET = "v1p2-conformance-client", "v1p2-conformance-secret"
ERROR_SCHEMA = "#/components/schemas/imsx_StatusInfoDType"


@pytest.fixture(scope="module")
def openapi(shared_reference: Path) -> dict[str, Any]:
    return json.loads((shared_reference / OPENAPI).read_text())


@pytest.fixture(scope="module")
def district() -> SimulatedDistrict:
    return generate_district("small", seed=1)


@pytest.fixture(scope="module")
def server(district: SimulatedDistrict) -> Iterator[SimulatorServer]:
    with SimulatorServer([Tenant("sds", CID, SECRET, district)], oneroster_version="1.2") as srv:
        yield srv


@pytest.fixture(scope="module")
def headers(server: SimulatorServer) -> dict[str, str]:
    token = httpx.post(server.token_url("sds"), data={"grant_type": "client_credentials"}, auth=(CID, SECRET))
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def validator(doc: dict[str, Any], ref: str) -> jsonschema.protocols.Validator:
    schema = {"$ref": ref, "components": copy.deepcopy(doc["components"])}
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())


def test_every_1p2_get_path_validates_against_the_openapi_schemas(
    openapi: dict[str, Any], server: SimulatorServer, district: SimulatedDistrict, headers: dict[str, str]
) -> None:
    values = path_values(district)
    checked: dict[str, int] = {}
    with httpx.Client(base_url=server.base_url("sds"), headers=headers, timeout=60) as api:
        for template, item in openapi["paths"].items():
            path = template
            for name, value in values.items():
                path = path.replace("{" + name + "}", value)
            if "{sourcedId}" in path:
                sid = single_read_id(district, template.strip("/").split("/")[0])
                assert sid is not None, template
                path = path.replace("{sourcedId}", sid)
            ok_ref = item["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
            is_list = template.split("/")[-1] != "{sourcedId}"
            response = api.get(path, params={"limit": "100000"} if is_list else None)
            assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
            body = response.json()
            errors = sorted(validator(openapi, ok_ref).iter_errors(body), key=lambda e: list(e.absolute_path))
            assert not errors, f"{template} ({ok_ref}): " + "; ".join(
                f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]
            )
            records = next(iter(body.values()))
            checked[template] = len(records) if isinstance(records, list) else 1
    assert len(checked) == len(openapi["paths"]) == 41
    # Every collection was validated with records in it, not as an empty list that any schema accepts.
    assert all(count > 0 for count in checked.values()), {t: c for t, c in checked.items() if not c}
    assert checked["/users"] == len(district.collections["users"])
    assert checked["/enrollments"] == len(district.collections["enrollments"])


def test_1p2_users_carry_roles_and_every_1p2_user_role_is_primary_once(
    server: SimulatorServer, district: SimulatedDistrict, headers: dict[str, str]
) -> None:
    users = httpx.get(server.base_url("sds") + "/users", params={"limit": "100000"}, headers=headers).json()[
        "users"
    ]
    assert {role["role"] for user in users for role in user["roles"]} >= {
        "student",
        "teacher",
        "aide",
        "guardian",
        "districtAdministrator",
        "siteAdministrator",
    }
    assert all([role["roleType"] for role in user["roles"]].count("primary") == 1 for user in users)
    itinerant = [user for user in users if len(user["roles"]) > 1]
    assert itinerant and all(
        role["roleType"] == "secondary" for user in itinerant for role in user["roles"][1:]
    )


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/users", {"filter": "bogus='x'"}, 400),
        ("/users", {"sort": "bogus"}, 400),
        ("/users", {"fields": "role"}, 400),  # a 1.1 field: 1.2 users have roles instead
        ("/users", {"fields": ""}, 400),
        ("/users", {"limit": "x"}, 400),
        ("/users/no-such-user", None, 404),
        ("/lineItems", None, 404),  # the gradebook has its own 1.2 base
        ("/nope", None, 404),
    ],
)
def test_1p2_error_bodies_validate(
    openapi: dict[str, Any],
    server: SimulatorServer,
    headers: dict[str, str],
    path: str,
    params: dict[str, str] | None,
    status: int,
) -> None:
    response = httpx.get(server.base_url("sds") + path, params=params, headers=headers)
    assert response.status_code == status
    validator(openapi, ERROR_SCHEMA).validate(response.json())


def test_1p2_fields_selects_1p2_names(server: SimulatorServer, headers: dict[str, str]) -> None:
    response = httpx.get(
        server.base_url("sds") + "/users", params={"fields": "sourcedId,roles", "limit": "3"}, headers=headers
    )
    assert response.status_code == 200
    assert all(set(user) == {"sourcedId", "roles"} for user in response.json()["users"])


def test_1p2_auth_and_fault_error_bodies_validate(openapi: dict[str, Any], server: SimulatorServer) -> None:
    check = validator(openapi, ERROR_SCHEMA)
    unauthorised = httpx.get(server.base_url("sds") + "/users", headers={"Authorization": "Bearer nope"})
    assert unauthorised.status_code == 401
    check.validate(unauthorised.json())
    server.faults.add(status=429, retry_after=1, times=1, path_contains="/orgs")
    busy = httpx.get(server.base_url("sds") + "/orgs")
    assert busy.status_code == 429
    check.validate(busy.json())
