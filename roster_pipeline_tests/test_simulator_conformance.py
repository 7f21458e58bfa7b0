"""Conformance: Microsoft SDS's OneRoster 1.1 Postman collection under newman, and the 1.1 OpenAPI
schemas, against the simulator serving a generated small district (5 schools: enough records for
every paging check of the collection, which reads offset=2).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district
from roster_pipeline.simulator.district import SimulatedDistrict
from roster_pipeline.simulator.query import parse_datetime
from roster_pipeline_tests.databases import IN_CI
from roster_pipeline_tests.simulator_checks import first_record, path_values, single_read_id

pytestmark = pytest.mark.shared

COLLECTION = "sds-oneroster-v1p1-oauth2.postman_collection.json"
OPENAPI = "oneroster-v1p1.openapi.json"
CID, SECRET = "sds-conformance-client", "sds-conformance-secret"


@pytest.fixture(scope="module")
def district() -> SimulatedDistrict:
    return generate_district("small", seed=1)


@pytest.fixture(scope="module")
def server(district: SimulatedDistrict) -> Iterator[SimulatorServer]:
    with SimulatorServer([Tenant("sds", CID, SECRET, district)]) as srv:
        yield srv


# ------------------------------------------------------------------------------------------ newman


def _explained_failures() -> dict[tuple[str, str], str]:
    """(request name, assertion name) -> why failing it is right for a OneRoster 1.1 provider.

    Only these may fail; every other assertion of the collection must pass.
    """
    explained = {
        ("Get Users - Student of Contact", "user (student) success response/ 200"): (
            "the request is GET /users/a1 with a hard-coded sourcedId 'a1' (its test script expects the student "
            "the previous request stored in student_id); no such user exists, and 1.1 requires 404 unknownobject "
            "for an unknown id"
        ),
    }
    return explained


def _environment(server: SimulatorServer, district: SimulatedDistrict) -> dict[str, str]:
    """Every variable the collection's requests and scripts read (its template environment is not public here)."""
    teacher = next(
        u for u in district.collections["users"].values() if u["role"] == "teacher" and u.get("email")
    )
    first_class = next(iter(district.collections["classes"].values()))
    earliest = min(
        parse_datetime(r["dateLastModified"]) for c in district.collections.values() for r in c.values()
    )
    delta = (earliest - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")  # type: ignore[operator]
    assert parse_datetime(delta) < datetime.now(parse_datetime(delta).tzinfo)  # type: ignore[operator, union-attr]
    base = server.base_url("sds")
    return {
        "Oauth2TokenAddress": server.token_url("sds"),
        "OneRosterHost": base[
            : -len("/ims/oneroster/v1p1")
        ],  # the collection appends /ims/oneroster/v1p1/...
        "OneRosterConsumerKey": CID,
        "OneRosterConsumerSecret": SECRET,
        "Scopes": "",
        "SchoolYear": str(district.school_year),
        "DeltaDateTime": delta,
        "teacher_email_address": teacher["email"],
        "TeacherEmailAddress": teacher["email"],
        "school_id": first_record(district, "orgs", type="school")["sourcedId"],
        "class_id": first_class["sourcedId"],
        "term_id": first_class["terms"][0]["sourcedId"],
        "student_id": first_record(district, "users", role="student")["sourcedId"],
        "teacher_id": teacher["sourcedId"],
        "user_id": first_record(district, "users", role="student")["sourcedId"],
        "lineitem_id": "no-such-lineitem",  # gradebook is served empty: results for it are an empty list
    }


def _newman() -> str:
    found = shutil.which("newman")
    if found:
        return found
    message = "newman is not on PATH (npm install --global newman@6)"
    if IN_CI:
        pytest.fail(f"CI=true but {message}")
    pytest.skip(message)


def test_sds_postman_collection_passes_under_newman(
    shared_reference: Path, server: SimulatorServer, district: SimulatedDistrict, tmp_path: Path
) -> None:
    newman = _newman()
    environment = tmp_path / "simulator.postman_environment.json"
    values = [
        {"key": k, "value": v, "type": "default", "enabled": True}
        for k, v in _environment(server, district).items()
    ]
    environment.write_text(json.dumps({"name": "roster-pipeline simulator", "values": values}))
    report = tmp_path / "newman.json"
    proc = subprocess.run(
        [
            newman,
            "run",
            str(shared_reference / COLLECTION),
            "--environment",
            str(environment),
            "--reporters",
            "cli,json",
            "--reporter-json-export",
            str(report),
            "--color",
            "off",
            "--disable-unicode",
            "--timeout-request",
            "60000",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert report.exists(), (
        f"newman wrote no report (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    )
    run = json.loads(report.read_text())["run"]

    explained = _explained_failures()
    failed: list[str] = []
    excused: list[str] = []
    total = passed = 0
    for execution in run["executions"]:
        request_name = execution["item"]["name"]
        if execution.get("requestError"):
            failed.append(f"{request_name}: request error {execution['requestError']}")
        for assertion in execution.get("assertions", []):
            total += 1
            name = assertion["assertion"]
            if not assertion.get("error"):
                passed += 1
            elif (request_name, name) in explained:
                excused.append(f"{request_name} / {name}: {explained[(request_name, name)]}")
            else:
                failed.append(f"{request_name} / {name}: {assertion['error'].get('message')}")
    print(
        f"\nSDS collection: {passed}/{total} assertions passed; {len(excused)} explained:\n  "
        + "\n  ".join(excused)
    )
    stats = run["stats"]
    assert stats["requests"]["total"] == 89 and stats["requests"]["failed"] == 0
    assert not failed, "SDS checks failed:\n" + "\n".join(failed)
    assert total > 1000 and passed + len(excused) == total
    # An explained check must be explained by data we actually serve, not silently unused.
    assert len(excused) == len(explained), (
        f"explained but not failing: {set(explained) - {tuple(e.split(' / ')[:2]) for e in excused}}"
    )


# ------------------------------------------------------------------------------------------ OpenAPI

# IMS 1.1's JSON binding writes Booleans as the strings "true"/"false" (the spec's own JSON examples,
# and every SIS we know, e.g. "primary": "false"). This file types them as JSON booleans; we hold the
# simulator to the IMS binding, so these properties are overridden to the two strings.
STRING_BOOLEANS = {
    "User_Type_allOf": ["enabledUser"],
    "Enrollment_Type_allOf": ["primary"],
    "Demographic_Type_allOf": [
        "americanIndianOrAlaskaNative",
        "asian",
        "blackOrAfricanAmerican",
        "nativeHawaiianOrOtherPacificIslander",
        "white",
        "demographicRaceTwoOrMoreRaces",
        "hispanicOrLatinoEthnicity",
    ],
}
# The 1.1 spec's status-code table (REST binding §3.3) lists these imsx_CodeMinor values; the file's
# enum omits them although the issue and the spec require them (invalid_filter_field for a bad
# filter, server_busy with 429, ...). Added, nothing removed.
EXTRA_CODE_MINORS = [
    "invalid_filter_field",
    "invalid_blank_selection_field",
    "forbidden",
    "server_busy",
    "internal_server_error",
]


@pytest.fixture(scope="module")
def openapi(shared_reference: Path) -> dict[str, Any]:
    doc = json.loads((shared_reference / OPENAPI).read_text())
    schemas = doc["components"]["schemas"]
    for schema_name, props in STRING_BOOLEANS.items():
        for prop in props:
            assert schemas[schema_name]["properties"][prop]["type"] == "boolean"  # the edit is still needed
            schemas[schema_name]["properties"][prop] = {"type": "string", "enum": ["true", "false"]}
    minor = schemas["imsx_CodeMinorField.Type"]["properties"]["imsx_codeMinorFieldValue"]
    minor["enum"] = minor["enum"] + [m for m in EXTRA_CODE_MINORS if m not in minor["enum"]]
    return doc


def _validator(doc: dict[str, Any], ref: str) -> jsonschema.protocols.Validator:
    schema = {"$ref": ref, "components": copy.deepcopy(doc["components"])}
    return jsonschema.Draft4Validator(schema)


def test_every_openapi_get_path_validates(
    openapi: dict[str, Any], server: SimulatorServer, district: SimulatedDistrict
) -> None:
    token = httpx.post(
        server.token_url("sds"), data={"grant_type": "client_credentials"}, auth=(CID, SECRET)
    ).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    values = path_values(district)
    error_validator = _validator(openapi, "#/components/schemas/imsx_StatusInfo.Type")
    checked: list[str] = []
    with httpx.Client(base_url=server.base_url("sds"), headers=headers, timeout=30) as api:
        for template, item in openapi["paths"].items():
            if "get" not in item:
                continue
            path = template
            for name, value in values.items():
                path = path.replace("{" + name + "}", value)
            collection = template.strip("/").split("/")[0]
            expect_404 = False
            if "{sourcedId}" in path:
                sid = single_read_id(district, collection)
                expect_404 = sid is None
                path = path.replace("{sourcedId}", sid or "no-such-id")
            responses = item["get"]["responses"]
            ok_ref = responses["200"]["content"]["application/json"]["schema"]["$ref"]
            response = api.get(path, params={"limit": 2000} if "{" not in template.split("/")[-1] else None)
            if expect_404:
                assert response.status_code == 404, f"{path}: {response.status_code}"
                error_validator.validate(response.json())
                checked.append(f"{template} -> 404")
                continue
            assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
            body = response.json()
            errors = sorted(
                _validator(openapi, ok_ref).iter_errors(body), key=lambda e: list(e.absolute_path)
            )
            assert not errors, f"{template} ({ok_ref}): " + "; ".join(
                f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]
            )
            checked.append(template)
    assert len(checked) == sum(1 for item in openapi["paths"].values() if "get" in item) == 55


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/users", {"filter": "bogus='x'"}, 400),
        ("/users", {"sort": "bogus"}, 400),
        ("/users", {"fields": "bogus"}, 400),
        ("/users", {"limit": "x"}, 400),
        ("/users/no-such-user", None, 404),
        ("/nope", None, 404),
    ],
)
def test_error_bodies_validate(
    openapi: dict[str, Any], server: SimulatorServer, path: str, params: dict[str, str] | None, status: int
) -> None:
    token = httpx.post(
        server.token_url("sds"), data={"grant_type": "client_credentials"}, auth=(CID, SECRET)
    ).json()
    r = httpx.get(
        server.base_url("sds") + path,
        params=params,
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    assert r.status_code == status
    _validator(openapi, "#/components/schemas/imsx_StatusInfo.Type").validate(r.json())


def test_auth_and_fault_error_bodies_validate(openapi: dict[str, Any], server: SimulatorServer) -> None:
    validator = _validator(openapi, "#/components/schemas/imsx_StatusInfo.Type")
    unauthorised = httpx.get(server.base_url("sds") + "/users", headers={"Authorization": "Bearer nope"})
    assert unauthorised.status_code == 401
    validator.validate(unauthorised.json())
    server.faults.add(status=429, retry_after=1, times=1, path_contains="/orgs")
    busy = httpx.get(server.base_url("sds") + "/orgs")
    assert busy.status_code == 429
    validator.validate(busy.json())
