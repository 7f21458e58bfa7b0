"""How each OneRoster resource is flattened into warehouse columns — defined once, per resource.

The staging loader, the published/staging/history table definitions and (later) the Pandera schemas all
read these specs, so a column is named and extracted in exactly one place.  Every flattened column is
text: the warehouse stores what the SIS served (validation is the checks' job, and a malformed date
must reach the rejects report rather than abort a COPY); the raw record is kept alongside anyway.

Extraction is the only per-row Python work in the pipeline, so each resource compiles its extractors
into a single tuple-building function (``RowFlattener``) instead of looping over field objects per row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from roster_pipeline.records.catalogue import RESOURCES, Resource

Kind = Literal["scalar", "ref", "refs", "list"]


@dataclass(frozen=True)
class Column:
    """One flattened column: ``column`` in the warehouse, read from ``field`` of the OneRoster record.

    ``scalar``: the value as text; ``ref``: the ``sourcedId`` of a ``{href, sourcedId, type}`` reference;
    ``refs``: a JSON list of the sourcedIds of a list of references; ``list``: a JSON list of scalars.
    """

    column: str
    field: str
    kind: Kind = "scalar"


# Every record has these (OneRoster 1.1 base class); they lead every table's flattened columns.
COMMON: tuple[Column, ...] = (Column("status", "status"), Column("date_last_modified", "dateLastModified"))

RESOURCE_COLUMNS: dict[str, tuple[Column, ...]] = {
    "orgs": (
        Column("name", "name"),
        Column("type", "type"),
        Column("identifier", "identifier"),
        Column("parent_sourced_id", "parent", "ref"),
        Column("child_sourced_ids", "children", "refs"),
    ),
    "academic_sessions": (
        Column("title", "title"),
        Column("type", "type"),
        Column("start_date", "startDate"),
        Column("end_date", "endDate"),
        Column("school_year_text", "schoolYear"),
        Column("parent_sourced_id", "parent", "ref"),
    ),
    "courses": (
        Column("title", "title"),
        Column("course_code", "courseCode"),
        Column("school_year_sourced_id", "schoolYear", "ref"),
        Column("org_sourced_id", "org", "ref"),
        Column("grades", "grades", "list"),
        Column("subjects", "subjects", "list"),
    ),
    "classes": (
        Column("title", "title"),
        Column("class_code", "classCode"),
        Column("class_type", "classType"),
        Column("location", "location"),
        Column("course_sourced_id", "course", "ref"),
        Column("school_sourced_id", "school", "ref"),
        Column("term_sourced_ids", "terms", "refs"),
        Column("grades", "grades", "list"),
        Column("subjects", "subjects", "list"),
        Column("periods", "periods"),
    ),
    "users": (
        Column("username", "username"),
        Column("enabled_user", "enabledUser"),
        Column("given_name", "givenName"),
        Column("family_name", "familyName"),
        Column("middle_name", "middleName"),
        Column("role", "role"),
        Column("identifier", "identifier"),
        Column("email", "email"),
        Column("org_sourced_ids", "orgs", "refs"),
        Column("agent_sourced_ids", "agents", "refs"),
        Column("grades", "grades", "list"),
    ),
    "enrollments": (
        Column("class_sourced_id", "class", "ref"),
        Column("user_sourced_id", "user", "ref"),
        Column("school_sourced_id", "school", "ref"),
        Column("role", "role"),
        Column("primary", "primary"),
        Column("begin_date", "beginDate"),
        Column("end_date", "endDate"),
    ),
    "demographics": (
        Column("birth_date", "birthDate"),
        Column("sex", "sex"),
        Column("hispanic_or_latino_ethnicity", "hispanicOrLatinoEthnicity"),
    ),
}

assert set(RESOURCE_COLUMNS) == {r.name for r in RESOURCES}, "every catalogued resource needs columns"


def columns_for(resource_name: str) -> tuple[Column, ...]:
    """All flattened columns of a resource, common ones first."""
    return COMMON + RESOURCE_COLUMNS[resource_name]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):  # some SIS send real booleans where 1.1 says "true"/"false"
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _ref(value: Any) -> str | None:
    if isinstance(value, Mapping):
        sourced_id = value.get("sourcedId")
        return None if sourced_id is None else str(sourced_id)
    return None


def _refs(value: Any) -> str | None:
    if not isinstance(value, list):
        return None
    return orjson.dumps([str(v.get("sourcedId")) for v in value if isinstance(v, Mapping)]).decode()


def _list(value: Any) -> str | None:
    return orjson.dumps(value).decode() if isinstance(value, list) else _text(value)


_CONVERT: dict[Kind, Callable[[Any], str | None]] = {
    "scalar": _text,
    "ref": _ref,
    "refs": _refs,
    "list": _list,
}

RowFlattener = Callable[[Mapping[str, Any]], tuple[str | None, ...]]


def flattener(resource_name: str) -> RowFlattener:
    """One function per resource mapping a record to its flattened column values, in ``columns_for`` order.

    Scalar fields that are already strings and references that are JSON objects (the common cases) skip
    the conversion call entirely: this runs once per record of every pull.
    """
    specs = [
        (c.field, _CONVERT[c.kind], c.kind == "scalar", c.kind == "ref") for c in columns_for(resource_name)
    ]

    def flatten(record: Mapping[str, Any]) -> tuple[str | None, ...]:
        get = record.get
        out: list[str | None] = []
        append = out.append
        for field, convert, is_scalar, is_ref in specs:
            value = get(field)
            if value is None:
                append(None)
            elif is_scalar and value.__class__ is str:
                append(value)
            elif is_ref and value.__class__ is dict:  # a JSON object: skip the Mapping ABC check
                sourced_id = value.get("sourcedId")
                append(sourced_id if sourced_id is None or sourced_id.__class__ is str else str(sourced_id))
            else:
                append(convert(value))
        return tuple(out)

    return flatten


def canonical_json(record: Mapping[str, Any]) -> bytes:
    """The record with sorted keys: the raw column and the input of the record hash."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def column_names(resource: Resource | str) -> list[str]:
    name = resource if isinstance(resource, str) else resource.name
    return [c.column for c in columns_for(name)]


def describe(resource_names: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Column names per resource (for docs and metadata)."""
    return {name: column_names(name) for name in (resource_names or RESOURCE_COLUMNS)}
