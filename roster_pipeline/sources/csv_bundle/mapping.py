"""One CSV row → one record in the OneRoster 1.1 JSON shape the REST API serves.

The sync, the checks and the warehouse only know the JSON shape, so the CSV binding is translated here
and nowhere else: ``...SourcedId`` columns become ``{href, sourcedId, type}`` references (the href
relative, as the simulator builds it; the record hash ignores hrefs), comma-separated ``...SourcedIds``,
``grades`` and ``subjects`` become lists, ``userIds`` (``{type:identifier},...``) become
``[{type, identifier}]``, booleans stay the strings "true"/"false" as the 1.1 JSON binding has them.

Empty cells mean "not given": the field is left out of the record (the JSON binding omits it too), with
one exception: ``users.grades`` is always a list (``[]`` when empty), as the REST API serves it.

Blank ``status``/``dateLastModified`` (the binding asks bulk files to leave them blank) become
``active`` and the bundle's timestamp, so every record carries the two fields the checks require.

Values are not validated here (that is the checks' job, which quarantines and names the field); only a
cell that cannot be turned into the JSON shape at all (a malformed ``userIds``) is a ``RowProblem``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Record = dict[str, Any]
Row = Mapping[str, str]


class RowProblem(ValueError):
    """A cell that cannot be mapped onto the JSON shape (the row is quarantined, the column named)."""

    def __init__(self, column: str, check: str, value: str, problem: str) -> None:
        self.column = column
        self.check = check
        self.value = value
        super().__init__(problem)


def _ref(collection: str, ref_type: str, sourced_id: str) -> Record:
    return {"href": f"/{collection}/{sourced_id}", "sourcedId": sourced_id, "type": ref_type}


def split_list(value: str) -> list[str]:
    """A comma-separated cell as a list, items stripped, empty items dropped."""
    return [item.strip() for item in value.split(",") if item.strip()]


_USER_ID = re.compile(r"\{\s*([^{}:]*?)\s*:\s*([^{}]*?)\s*\}")


def parse_user_ids(value: str) -> list[Record]:
    """``{type:identifier},{type:identifier}`` → ``[{"type": ..., "identifier": ...}]``."""
    found = [{"type": t, "identifier": i} for t, i in _USER_ID.findall(value)]
    leftover = _USER_ID.sub("", value).replace(",", "").strip()
    if leftover or not found:
        raise RowProblem(
            "userIds",
            "csv_format",
            value,
            "column 'userIds' must list identifiers as {type:identifier}, separated by commas",
        )
    return found


class _Builder:
    """Collects one record from one row; each method reads one column and sets one field if given."""

    def __init__(self, row: Row, default_stamp: str) -> None:
        self.row = row
        status = row.get("status", "").strip()
        stamp = row.get("dateLastModified", "").strip()
        self.record: Record = {
            "sourcedId": row.get("sourcedId", "").strip(),
            "status": status or "active",
            "dateLastModified": stamp or default_stamp,
        }

    def cell(self, column: str) -> str:
        return self.row.get(column, "").strip()

    def text(self, column: str, field: str | None = None) -> None:
        value = self.cell(column)
        if value:
            self.record[field or column] = value

    def ref(self, column: str, field: str, collection: str, ref_type: str) -> None:
        value = self.cell(column)
        if value:
            self.record[field] = _ref(collection, ref_type, value)

    def refs(self, column: str, field: str, collection: str, ref_type: str, *, always: bool = False) -> None:
        values = split_list(self.cell(column))
        if values or always:
            self.record[field] = [_ref(collection, ref_type, v) for v in values]

    def items(self, column: str, *, always: bool = False) -> None:
        values = split_list(self.cell(column))
        if values or always:
            self.record[column] = values


def _org(b: _Builder) -> None:
    b.text("name")
    b.text("type")
    b.text("identifier")
    b.ref("parentSourcedId", "parent", "orgs", "org")


def _academic_session(b: _Builder) -> None:
    b.text("title")
    b.text("type")
    b.text("startDate")
    b.text("endDate")
    b.ref("parentSourcedId", "parent", "academicSessions", "academicSession")
    b.text("schoolYear")


def _course(b: _Builder) -> None:
    b.text("title")
    b.ref("schoolYearSourcedId", "schoolYear", "academicSessions", "academicSession")
    b.text("courseCode")
    b.items("grades")
    b.ref("orgSourcedId", "org", "orgs", "org")
    b.items("subjects")
    b.items("subjectCodes")


def _class(b: _Builder) -> None:
    b.text("title")
    b.text("classCode")
    b.text("classType")
    b.text("location")
    b.items("grades")
    b.items("subjects")
    b.items("subjectCodes")
    b.ref("courseSourcedId", "course", "courses", "course")
    b.ref("schoolSourcedId", "school", "orgs", "org")
    b.refs("termSourcedIds", "terms", "academicSessions", "academicSession")
    b.text("periods")


def _user(b: _Builder) -> None:
    b.text("username")
    user_ids = b.cell("userIds")
    if user_ids:
        b.record["userIds"] = parse_user_ids(user_ids)
    b.text("enabledUser")
    b.text("givenName")
    b.text("familyName")
    b.text("middleName")
    b.text("role")
    b.text("identifier")
    b.text("email")
    b.text("sms")
    b.text("phone")
    b.refs("agentSourcedIds", "agents", "users", "user")
    b.refs("orgSourcedIds", "orgs", "orgs", "org", always=True)
    b.items("grades", always=True)
    b.text("password")


def _enrollment(b: _Builder) -> None:
    b.ref("userSourcedId", "user", "users", "user")
    b.ref("classSourcedId", "class", "classes", "class")
    b.ref("schoolSourcedId", "school", "orgs", "org")
    b.text("role")
    b.text("primary")
    b.text("beginDate")
    b.text("endDate")


_DEMOGRAPHIC_TEXT = (
    "birthDate",
    "sex",
    "americanIndianOrAlaskaNative",
    "asian",
    "blackOrAfricanAmerican",
    "nativeHawaiianOrOtherPacificIslander",
    "white",
    "demographicRaceTwoOrMoreRaces",
    "hispanicOrLatinoEthnicity",
    "countryOfBirthCode",
    "stateOfBirthAbbreviation",
    "cityOfBirth",
    "publicSchoolResidenceStatus",
)


def _demographics(b: _Builder) -> None:
    for column in _DEMOGRAPHIC_TEXT:
        b.text(column)


MAPPERS: dict[str, Callable[[_Builder], None]] = {
    "orgs": _org,
    "academicSessions": _academic_session,
    "courses": _course,
    "classes": _class,
    "users": _user,
    "enrollments": _enrollment,
    "demographics": _demographics,
}

#: Collections whose records carry ``children`` in the JSON binding, derived from the rows' parents.
CHILD_REFS: dict[str, tuple[str, str]] = {
    "orgs": ("orgs", "org"),
    "academicSessions": ("academicSessions", "academicSession"),
}


def map_row(
    collection: str, row: Row, default_stamp: str, children: Mapping[str, list[str]] | None = None
) -> Record:
    """The record of one row of ``<collection>.csv`` (``children``: parent sourcedId → child ids, in file order)."""
    builder = _Builder(row, default_stamp)
    MAPPERS[collection](builder)
    if children is not None:
        kids = children.get(builder.record["sourcedId"])
        if kids:
            collection_name, ref_type = CHILD_REFS[collection]
            builder.record["children"] = [_ref(collection_name, ref_type, kid) for kid in kids]
    return builder.record
