"""One pandera DataFrameModel per OneRoster 1.1 resource: what a record must look like to be published.

The frame a model validates holds one row per record and one column per field that matters, named as
the field is served (``class.sourcedId`` for a reference, ``terms`` for a list of references), so a
failure case already names the field an admin will look for in the SIS.  Each column's ``metadata``
says how ``frames.py`` extracts it (``kind``: text | ref | refs) and which short check name a built-in
pandera check on it reports as (``check``: enum | boolean_string | required ...).

Required fields are ``nullable=False`` (reported as "required"); optional ones are validated only when
present.  Custom checks carry their stable name (``date_format`` ...), which becomes ``Reject.check``; their
methods are named the same, because pandera reports an inherited check under its method name.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from .formats import (
    BOOLEAN_STRINGS,
    CLASS_TYPES,
    ORG_TYPES,
    ROLES,
    SESSION_TYPES,
    SEXES,
    STATUSES,
    is_date,
    is_email,
    is_school_year,
    is_utc_datetime,
    not_after,
)


def _text(*, required: bool, check: str | None = None, field: str | None = None, **checks: Any) -> Any:
    """A text field; ``field`` only when the OneRoster name differs from the attribute (aliases)."""
    metadata = {"kind": "text", "check": check}
    return pa.Field(nullable=not required, alias=field, metadata=metadata, **checks)


def _enum(
    values: tuple[str, ...], *, required: bool = True, check: str = "enum", field: str | None = None
) -> Any:
    metadata = {"kind": "text", "check": check, "allowed": values}
    return pa.Field(nullable=not required, alias=field, metadata=metadata, isin=values)


def _ref(field: str, *, required: bool = True) -> Any:
    """A ``{href, sourcedId, type}`` reference, validated as its sourcedId (column ``<field>.sourcedId``)."""
    return pa.Field(
        nullable=not required, alias=f"{field}.sourcedId", metadata={"kind": "ref", "source": field}
    )


def _refs(field: str) -> Any:
    """A list of references that must hold at least one well-formed reference (value: how many)."""
    return pa.Field(ge=1, alias=field, metadata={"kind": "refs", "source": field, "check": "required"})


class OneRosterRecord(pa.DataFrameModel):
    """The OneRoster 1.1 base class every record shares."""

    sourcedId: Series[object] = pa.Field(nullable=False, unique=True, metadata={"kind": "text"})
    status: Series[object] = _enum(STATUSES)
    dateLastModified: Series[object] = _text(required=True)

    @pa.check("dateLastModified", name="datetime_format")
    def datetime_format(cls, values: pd.Series) -> pd.Series:
        return is_utc_datetime(values)

    class Config:
        strict = False  # the frame is built from these very columns; extra ones would be a bug upstream
        coerce = False


class OrgSchema(OneRosterRecord):
    name: Series[object] = _text(required=True)
    type: Series[object] = _enum(ORG_TYPES)


class AcademicSessionSchema(OneRosterRecord):
    title: Series[object] = _text(required=True)
    type: Series[object] = _enum(SESSION_TYPES)
    startDate: Series[object] = _text(required=True)
    endDate: Series[object] = _text(required=True)
    schoolYear: Series[object] = _text(required=True)

    @pa.check("startDate", "endDate", name="date_format")
    def date_format(cls, values: pd.Series) -> pd.Series:
        return is_date(values)

    @pa.check("schoolYear", name="school_year_format")
    def school_year_format(cls, values: pd.Series) -> pd.Series:
        return is_school_year(values)

    @pa.dataframe_check(name="date_order")
    def date_order(cls, frame: pd.DataFrame) -> pd.Series:
        return not_after(frame["startDate"], frame["endDate"])


class CourseSchema(OneRosterRecord):
    title: Series[object] = _text(required=True)
    org: Series[object] = _ref("org")


class ClassSchema(OneRosterRecord):
    title: Series[object] = _text(required=True)
    classType: Series[object] = _enum(CLASS_TYPES)
    course: Series[object] = _ref("course")
    school: Series[object] = _ref("school")
    terms: Series[int] = _refs("terms")


class UserSchema(OneRosterRecord):
    username: Series[object] = _text(required=True)
    givenName: Series[object] = _text(required=True)
    familyName: Series[object] = _text(required=True)
    role: Series[object] = _enum(ROLES)
    enabledUser: Series[object] = _enum(BOOLEAN_STRINGS, check="boolean_string")
    email: Series[object] = _text(required=False)
    orgs: Series[int] = _refs("orgs")

    @pa.check("email", name="email_format")
    def email_format(cls, values: pd.Series) -> pd.Series:
        return is_email(values)


class EnrollmentSchema(OneRosterRecord):
    user: Series[object] = _ref("user")
    class_: Series[object] = _ref("class")
    school: Series[object] = _ref("school")
    role: Series[object] = _enum(ROLES)
    primary: Series[object] = _enum(BOOLEAN_STRINGS, required=False, check="boolean_string")
    beginDate: Series[object] = _text(required=False)
    endDate: Series[object] = _text(required=False)

    @pa.check("beginDate", "endDate", name="date_format")
    def date_format(cls, values: pd.Series) -> pd.Series:
        return is_date(values)

    @pa.dataframe_check(name="date_order")
    def date_order(cls, frame: pd.DataFrame) -> pd.Series:
        return not_after(frame["beginDate"], frame["endDate"])


DEMOGRAPHIC_FLAGS = (
    "americanIndianOrAlaskaNative",
    "asian",
    "blackOrAfricanAmerican",
    "nativeHawaiianOrOtherPacificIslander",
    "white",
    "demographicRaceTwoOrMoreRaces",
    "hispanicOrLatinoEthnicity",
)


def _flag() -> Any:
    return _enum(BOOLEAN_STRINGS, required=False, check="boolean_string")


class DemographicsSchema(OneRosterRecord):
    birthDate: Series[object] = _text(required=False)
    sex: Series[object] = _enum(SEXES, required=False)
    americanIndianOrAlaskaNative: Series[object] = _flag()
    asian: Series[object] = _flag()
    blackOrAfricanAmerican: Series[object] = _flag()
    nativeHawaiianOrOtherPacificIslander: Series[object] = _flag()
    white: Series[object] = _flag()
    demographicRaceTwoOrMoreRaces: Series[object] = _flag()
    hispanicOrLatinoEthnicity: Series[object] = _flag()

    @pa.check("birthDate", name="date_format")
    def date_format(cls, values: pd.Series) -> pd.Series:
        return is_date(values)


# Dataframe-level "date_order" checks: (start field, end field); the Reject names the end field.
DATE_ORDER: dict[str, tuple[str, str]] = {
    "academic_sessions": ("startDate", "endDate"),
    "enrollments": ("beginDate", "endDate"),
}

SCHEMAS: dict[str, type[OneRosterRecord]] = {
    "orgs": OrgSchema,
    "academic_sessions": AcademicSessionSchema,
    "courses": CourseSchema,
    "classes": ClassSchema,
    "users": UserSchema,
    "enrollments": EnrollmentSchema,
    "demographics": DemographicsSchema,
}
