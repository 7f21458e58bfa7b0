"""OneRoster 1.2 rostering records, mapped onto the 1.1 shape the rest of the pipeline knows.

Why map instead of widening the warehouse: staging, the Pandera models, the reference checks, the diff
and publishing are written once, for 1.1; a 1.2 district goes through exactly the same code if its
records arrive 1.1-shaped.  What 1.2 says beyond 1.1 is not thrown away: fields 1.1 has no name for
(``roles``, ``userProfiles``, ``userMasterIdentifier``, ``preferredFirstName`` ...) stay in the record
under their 1.2 names, so they are kept in the warehouse's raw JSON; only secrets are removed.

The differences between the two bindings that matter here (from the 1.2 rostering OpenAPI file next to
the 1.1 one), and what each function does about them:

- Base path ``.../ims/oneroster/rostering/v1p2`` (1.1: ``.../ims/oneroster/v1p1``); the collections, their
  envelope keys (``/schools`` → ``orgs``, ``/terms`` → ``academicSessions`` ...) and the paging, filter,
  sort and fields parameters are the same.  The error body is the flat ``imsx_StatusInfoDType``
  (``imsx_codeMajor``, ``imsx_severity``, ``imsx_description``, ``imsx_CodeMinor``) without 1.1's
  ``imsx_messageRefIdentifier``; ``errors.ImsxStatus`` already reads that shape.
- ``status``: ``active`` | ``tobedeleted``; 1.2 says a legacy ``inactive`` "should be interpreted as
  'tobedeleted'", so it is.
- users: ``roles[]`` (``{roleType: primary|secondary, role, org, userProfile?, beginDate?, endDate?}``)
  instead of 1.1's ``role`` + ``orgs``.  ``role`` comes from the primary role, ``orgs`` from every role's
  org (in ``roles`` order, once each).  1.2's roles that 1.1 folds into ``administrator``
  (``districtAdministrator``, ``siteAdministrator``, ``systemAdministrator``, ``principal``, ``counselor``)
  map to it; ``roles`` itself is kept.  ``username`` is optional in 1.2 (``userProfiles`` replace it):
  when absent, the one username the user's profile credentials agree on is used.  ``password`` and
  credential passwords are removed.
- classes: ``periods`` is a list (1.1 JSON: a string, as the CSV's comma-separated list); joined with ",".
- academicSessions: ``schoolYear`` is a string in both; a number sent by a lax SIS becomes its digits.
- enrollments: 1.2's role list is a subset of 1.1's (administrator, proctor, student, teacher): same values.
- demographics: ``sex`` adds ``unspecified`` and ``other``, which 1.1 (male | female) cannot hold: the
  field is left out (an absent sex, as 1.1 has it) and the served value kept in ``metadata.v1p2.sex``.
- An ``ext:`` value (1.2's extension vocabularies) passes through unchanged, so validation quarantines it
  with the field and the allowed values named.

A record that cannot be given a 1.1 shape at all (a user with no primary role, or primaries that
disagree, or no org in any role) raises ``UnmappableRecord``; ``map_page`` turns that into a
``RecordIssue`` naming the check and field, which the sync quarantines like any bad record: nothing is
dropped silently.

Every function is pure: it never edits the record it is given (a record needing no change is returned
as it is, which keeps the common case, an enrollment, at one dict lookup).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from roster_pipeline.oneroster.paging import RecordIssue

Record = dict[str, Any]

#: The base path segment a 1.2 rostering API ends with, and a 1.1 API's.
V1P2_BASE_SUFFIX = "/ims/oneroster/rostering/v1p2"
V1P1_BASE_SUFFIX = "/ims/oneroster/v1p1"

#: 1.2 user roles that have no 1.1 name of their own: 1.2 split 1.1's ``administrator`` into these.
ADMINISTRATOR_ROLES = frozenset(
    {"districtAdministrator", "siteAdministrator", "systemAdministrator", "principal", "counselor"}
)

#: Check names of records that cannot be mapped (the quarantine's ``check`` column).
PRIMARY_ROLE = "v1p2_primary_role"
ROLE_ORG = "v1p2_role_org"

#: The sex values 1.1 can hold; 1.2 adds ``unspecified`` and ``other``.
V1P1_SEXES = frozenset({"male", "female"})


class UnmappableRecord(ValueError):
    """A 1.2 record with no 1.1 shape: ``check`` and ``field`` say what, ``detail`` says why in words."""

    def __init__(self, check: str, field: str, value: str | None, detail: str) -> None:
        super().__init__(detail)
        self.check = check
        self.field = field
        self.value = value
        self.detail = detail


def map_status(record: Record) -> Record:
    """The record with a legacy ``inactive`` read as ``tobedeleted`` (as the 1.2 spec asks)."""
    if record.get("status") == "inactive":
        return {**record, "status": "tobedeleted"}
    return record


def map_org(record: Record) -> Record:
    """Orgs are the same in both versions (``ext:`` types pass through to be quarantined)."""
    return map_status(record)


def map_academic_session(record: Record) -> Record:
    """Sessions are the same; a ``schoolYear`` sent as a number becomes the 4-digit string 1.1 has."""
    record = map_status(record)
    year = record.get("schoolYear")
    if isinstance(year, int) and not isinstance(year, bool):
        return {**record, "schoolYear": str(year)}
    return record


def map_course(record: Record) -> Record:
    """Courses are the same in both versions."""
    return map_status(record)


def map_class(record: Record) -> Record:
    """``periods`` is a list in 1.2; 1.1 keeps it as one comma-separated string."""
    record = map_status(record)
    periods = record.get("periods")
    if isinstance(periods, list):
        if all(isinstance(period, str) for period in periods):
            joined = ",".join(periods)
            return {**record, "periods": joined} if joined else _without(record, "periods")
    return record


def map_enrollment(record: Record) -> Record:
    """Enrollments are the same (1.2's role values are a subset of 1.1's)."""
    return map_status(record)


def map_demographics(record: Record) -> Record:
    """``sex`` values 1.1 cannot hold (``unspecified``, ``other``) leave the field, kept in metadata."""
    record = map_status(record)
    sex = record.get("sex")
    if sex is None or sex in V1P1_SEXES or (isinstance(sex, str) and sex.startswith("ext:")):
        return record
    if sex not in ("unspecified", "other"):
        return record  # not a 1.2 value either: validation quarantines it with the field named
    mapped = _without(record, "sex")
    mapped["metadata"] = _with_v1p2_metadata(record.get("metadata"), {"sex": sex})
    return mapped


def map_user(record: Record) -> Record:
    """A 1.2 user as 1.1 has it: ``role`` from the primary role, ``orgs`` from the roles' orgs.

    Raises ``UnmappableRecord`` when ``roles`` names no primary role, primary roles that map to different
    1.1 roles, or no org at all.
    """
    record = map_status(record)
    roles = record.get("roles")
    entries = [role for role in roles if isinstance(role, Mapping)] if isinstance(roles, list) else []
    shown = _roles_text(entries) if entries else _text_of(roles)
    primaries = [role for role in entries if role.get("roleType") == "primary"]
    if not primaries:
        raise UnmappableRecord(
            PRIMARY_ROLE,
            "roles",
            shown,
            "field 'roles' has no role with roleType 'primary'; OneRoster 1.1 needs one role per user, taken "
            "from the primary role: mark the user's main role primary in the SIS",
        )
    mapped_roles = list(dict.fromkeys(map_user_role(role.get("role")) for role in primaries))
    if len(mapped_roles) > 1:
        raise UnmappableRecord(
            PRIMARY_ROLE,
            "roles",
            shown,
            f"field 'roles' has several primary roles that are different roles in OneRoster 1.1 "
            f"({', '.join(str(role) for role in mapped_roles)}); keep one primary role per user in the SIS",
        )
    orgs: dict[str, Any] = {}
    for role in entries:
        org = role.get("org")
        if isinstance(org, Mapping) and isinstance(org.get("sourcedId"), str) and org["sourcedId"]:
            orgs.setdefault(org["sourcedId"], dict(org))
    if not orgs:
        raise UnmappableRecord(
            ROLE_ORG,
            "roles",
            shown,
            "no role in field 'roles' names an org with a sourcedId; OneRoster 1.1 needs at least one org per user",
        )
    mapped = dict(without_secrets(record))
    mapped["role"] = mapped_roles[0]
    mapped["orgs"] = list(orgs.values())
    profiles = record.get("userProfiles")
    if not mapped.get("username"):
        username = profile_username(profiles)
        if username is not None:
            mapped["username"] = username
    return mapped


def map_user_role(role: Any) -> Any:
    """A 1.2 user role as 1.1 names it: the administrator family folds into ``administrator``; 1.1's own
    values and anything unknown (``ext:...``) are returned unchanged (validation names a bad one)."""
    return "administrator" if role in ADMINISTRATOR_ROLES else role


def profile_username(profiles: Any) -> str | None:
    """The username of a user's profile credentials when they all agree on one (else None: a guess
    between two login names would be worse than the missing username validation reports)."""
    if not isinstance(profiles, list):
        return None
    names = {
        credential.get("username")
        for profile in profiles
        if isinstance(profile, Mapping) and isinstance(profile.get("credentials"), list)
        for credential in profile["credentials"]
        if isinstance(credential, Mapping)
        and isinstance(credential.get("username"), str)
        and credential["username"]
    }
    return names.pop() if len(names) == 1 else None


#: The mapping function for each 1.1 envelope (derived endpoints use their base's: ``/schools`` → orgs).
MAPPERS: dict[str, Callable[[Record], Record]] = {
    "orgs": map_org,
    "academicSessions": map_academic_session,
    "courses": map_course,
    "classes": map_class,
    "users": map_user,
    "enrollments": map_enrollment,
    "demographics": map_demographics,
}


def mapper_for(envelope: str) -> Callable[[Record], Record]:
    try:
        return MAPPERS[envelope]
    except KeyError:
        raise KeyError(f"no OneRoster 1.2 mapping for {envelope!r}; known: {', '.join(MAPPERS)}") from None


def map_page(envelope: str, records: list[Record]) -> tuple[list[Record], list[RecordIssue]]:
    """One page's records in 1.1 shape, and an issue (to quarantine) for each that has none.

    Records keep their order; an unmappable one is never dropped: it comes back as a ``RecordIssue``
    carrying the record as served, the check, the field and the reason.
    """
    mapper = mapper_for(envelope)
    mapped: list[Record] = []
    issues: list[RecordIssue] = []
    for record in records:
        try:
            mapped.append(mapper(record))
        except UnmappableRecord as problem:
            issues.append(
                RecordIssue(
                    sourced_id=record.get("sourcedId"),  # type: ignore[arg-type]  # checked to be a str by the client
                    check=problem.check,
                    record=without_secrets(record),
                    field=problem.field,
                    value=problem.value,
                    detail=problem.detail,
                )
            )
    return mapped, issues


def without_secrets(record: Record) -> Record:
    """The record as served minus passwords (the user's own and its profiles' credentials): what the
    quarantine may keep of a record it holds back."""
    profiles = record.get("userProfiles")
    if "password" not in record and not isinstance(profiles, list):
        return record
    cleaned = _without(record, "password")
    if isinstance(profiles, list):
        cleaned["userProfiles"] = [_without_passwords(profile) for profile in profiles]
    return cleaned


def _without(record: Record, key: str) -> Record:
    return {k: v for k, v in record.items() if k != key}


def _with_v1p2_metadata(metadata: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata`` (1.1's extension point) plus ``v1p2``: what the 1.2 SIS served that 1.1 cannot hold."""
    base = dict(metadata) if isinstance(metadata, Mapping) else {}
    served = dict(base["v1p2"]) if isinstance(base.get("v1p2"), Mapping) else {}
    served.update(values)
    base["v1p2"] = served
    return base


def _without_passwords(profile: Any) -> Any:
    """A user profile without credential passwords: a password is never stored, not even as raw JSON."""
    if not isinstance(profile, Mapping) or not isinstance(profile.get("credentials"), list):
        return profile
    credentials = [
        {k: v for k, v in credential.items() if k != "password"}
        if isinstance(credential, Mapping)
        else credential
        for credential in profile["credentials"]
    ]
    return {**profile, "credentials": credentials}


def _roles_text(roles: list[Mapping[str, Any]]) -> str:
    """A short readable form of ``roles`` for the quarantine's value column (``teacher@school-1 (secondary)``)."""
    parts = []
    for role in roles:
        org = role.get("org")
        org_id = org.get("sourcedId") if isinstance(org, Mapping) else None
        parts.append(f"{role.get('role')}@{org_id} ({role.get('roleType')})")
    return "; ".join(parts)


def _text_of(value: Any) -> str | None:
    return None if value is None else str(value)
