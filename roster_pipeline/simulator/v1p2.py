"""The simulator's OneRoster 1.2 mode: the same district, served in the 1.2 rostering binding.

The district is held once, in 1.1 shape (generator, mutations and faults all work on that); in 1.2 mode
each page is rendered into 1.2 shape just before it is sent, so both modes serve the same people,
classes and enrollments, and a client syncing either must publish the same rows.  What changes:

- paths: ``/campus/api/oneroster/v1p2/{app}/ims/oneroster/rostering/v1p2/...`` (Infinite Campus's
  layout with 1.2's split base); the gradebook and resources services are not under the rostering base;
- users: 1.1 ``role`` + ``orgs`` become ``roles[]``, one per org, the first ``primary``, the others
  ``secondary``; 1.1 ``administrator`` becomes ``districtAdministrator`` for a district org and
  ``siteAdministrator`` for a school;
- classes: ``periods`` becomes a list;
- error bodies: the flat ``imsx_StatusInfoDType`` without ``imsx_messageRefIdentifier`` (1.2 allows no
  other property).

Filters and sorting are evaluated on the stored records, so the fields both versions share
(``sourcedId``, ``status``, ``dateLastModified``, ``type``, references ...) behave the same; ``fields=``
selects 1.2 field names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import orjson

from roster_pipeline.simulator.query import FIELDS as V1P1_FIELDS
from roster_pipeline.simulator.responses import Response

Record = dict[str, Any]
OneRosterVersion = Literal["1.1", "1.2"]

#: (path prefix before the app name, base path after it) of each version's API, Infinite Campus layout.
API_LAYOUTS: dict[str, tuple[str, str]] = {
    "1.1": ("/campus/api/oneroster/v1p1/", "/ims/oneroster/v1p1"),
    "1.2": ("/campus/api/oneroster/v1p2/", "/ims/oneroster/rostering/v1p2"),
}

_USER_V1P2_ONLY = (
    "userMasterIdentifier",
    "preferredFirstName",
    "preferredMiddleName",
    "preferredLastName",
    "pronouns",
    "roles",
    "userProfiles",
    "primaryOrg",
    "resources",
)
#: Top-level fields of each base collection in 1.2 (what ``fields=`` may select).
FIELDS: dict[str, frozenset[str]] = {
    **{
        name: fields
        for name, fields in V1P1_FIELDS.items()
        if name in ("orgs", "academicSessions", "courses", "classes", "enrollments", "demographics")
    },
    "users": (V1P1_FIELDS["users"] - {"role", "orgs"}) | frozenset(_USER_V1P2_ONLY),
}


def user_role(role: str, org_type: str | None) -> str:
    """1.1's ``administrator`` as 1.2 names it: of a district, or of a site (school)."""
    if role != "administrator":
        return role
    return "districtAdministrator" if org_type == "district" else "siteAdministrator"


def render_user(record: Record, org_type: Callable[[str], str | None]) -> Record:
    """A 1.1 user in 1.2 shape: ``roles[]`` in place of ``role`` and ``orgs``."""
    role = record.get("role")
    orgs = record.get("orgs") or []
    rendered = {k: v for k, v in record.items() if k not in ("role", "orgs")}
    rendered["roles"] = [
        {
            "roleType": "primary" if index == 0 else "secondary",
            "role": user_role(str(role), org_type(org.get("sourcedId", ""))),
            "org": org,
        }
        for index, org in enumerate(orgs)
        if isinstance(org, Mapping)
    ]
    return rendered


def render_class(record: Record) -> Record:
    periods = record.get("periods")
    if isinstance(periods, str):
        return {**record, "periods": [p.strip() for p in periods.split(",") if p.strip()]}
    return record


def renderer(base: str, orgs: Mapping[str, Record]) -> Callable[[Record], Record] | None:
    """How to render a record of ``base`` in 1.2 (None: it is the same in both versions)."""
    if base == "users":

        def org_type(sourced_id: str) -> str | None:
            org = orgs.get(sourced_id)
            return None if org is None else org.get("type")

        return lambda record: render_user(record, org_type)
    if base == "classes":
        return render_class
    return None


def render_page(base: str, records: list[Record], orgs: Mapping[str, Record]) -> list[Record]:
    """A page of stored (1.1) records as 1.2 serves them."""
    render = renderer(base, orgs)
    return records if render is None else [render(record) for record in records]


#: imsx_CodeMinor values the simulator's 1.1 answers use that 1.2's vocabulary lacks, and 1.2's word.
CODE_MINORS_V1P2: dict[str, str] = {
    "invalid_sort_field": "invalid_selection_field",
    "invalid_blank_selection_field": "invalid_selection_field",
    "unsupportedoperation": "invaliddata",
}


def error_body_v1p2(response: Response) -> Response:
    """An imsx error body as 1.2 has it: ``imsx_StatusInfoDType`` allows no ``imsx_messageRefIdentifier``,
    and its code minors are 1.2's vocabulary (``CODE_MINORS_V1P2``).

    Other bodies (OAuth2 errors of the token endpoint, a proxy's HTML page) are returned as they are.
    """
    if not response.content_type.startswith("application/json"):
        return response
    try:
        body = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return response
    if not isinstance(body, dict) or "imsx_messageRefIdentifier" not in body:
        return response
    del body["imsx_messageRefIdentifier"]
    minor = body.get("imsx_CodeMinor")
    for field in minor.get("imsx_codeMinorField", []) if isinstance(minor, dict) else []:
        value = field.get("imsx_codeMinorFieldValue")
        field["imsx_codeMinorFieldValue"] = CODE_MINORS_V1P2.get(value, value)
    return Response(
        response.status, orjson.dumps(body), response.content_type, list(response.headers), response.auth_ok
    )
