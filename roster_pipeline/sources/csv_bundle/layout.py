"""The files of a OneRoster 1.1 CSV bundle and their columns, as the 1.1 CSV binding defines them.

Headers are matched by name, not position (the binding fixes an order, but exporters reorder and add
columns), so a reader needs to know which columns must be there.  Required columns here are those
without which a record cannot be mapped at all (its id, references, type); every other column may be
left out of the header and is then simply absent from the records.
"""

from __future__ import annotations

from dataclasses import dataclass

MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ("propertyName", "value")
#: The manifest values of ``file.<name>``: delivered as the whole set, as changes only, or not at all.
FILE_MODES = ("bulk", "delta", "absent")


@dataclass(frozen=True)
class CsvFile:
    """One rostering file: its name in the zip, its manifest key and its columns.

    ``collection`` is the OneRoster collection it carries (the sync asks sources by collection);
    ``columns`` is the binding's full column list (order used by the exporter); ``required`` the ones a
    header must have.
    """

    collection: str
    columns: tuple[str, ...]
    required: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.collection}.csv"

    @property
    def manifest_key(self) -> str:
        return f"file.{self.collection}"


_BASE = ("sourcedId", "status", "dateLastModified")

FILES: dict[str, CsvFile] = {
    f.collection: f
    for f in (
        CsvFile(
            "orgs",
            (*_BASE, "name", "type", "identifier", "parentSourcedId"),
            ("sourcedId", "name", "type"),
        ),
        CsvFile(
            "academicSessions",
            (*_BASE, "title", "type", "startDate", "endDate", "parentSourcedId", "schoolYear"),
            ("sourcedId", "title", "type", "startDate", "endDate", "schoolYear"),
        ),
        CsvFile(
            "courses",
            (
                *_BASE,
                "schoolYearSourcedId",
                "title",
                "courseCode",
                "grades",
                "orgSourcedId",
                "subjects",
                "subjectCodes",
            ),
            ("sourcedId", "title", "orgSourcedId"),
        ),
        CsvFile(
            "classes",
            (
                *_BASE,
                "title",
                "grades",
                "courseSourcedId",
                "classCode",
                "classType",
                "location",
                "schoolSourcedId",
                "termSourcedIds",
                "subjects",
                "subjectCodes",
                "periods",
            ),
            ("sourcedId", "title", "courseSourcedId", "classType", "schoolSourcedId", "termSourcedIds"),
        ),
        CsvFile(
            "users",
            (
                *_BASE,
                "enabledUser",
                "orgSourcedIds",
                "role",
                "username",
                "userIds",
                "givenName",
                "familyName",
                "middleName",
                "identifier",
                "email",
                "sms",
                "phone",
                "agentSourcedIds",
                "grades",
                "password",
            ),
            ("sourcedId", "enabledUser", "orgSourcedIds", "role", "username", "givenName", "familyName"),
        ),
        CsvFile(
            "enrollments",
            (
                *_BASE,
                "classSourcedId",
                "schoolSourcedId",
                "userSourcedId",
                "role",
                "primary",
                "beginDate",
                "endDate",
            ),
            ("sourcedId", "classSourcedId", "schoolSourcedId", "userSourcedId", "role"),
        ),
        CsvFile(
            "demographics",
            (
                *_BASE,
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
            ),
            ("sourcedId",),
        ),
    )
}

#: Where a record field a check names comes from in the CSV (for the file/line/column of a reject).
FIELD_COLUMNS: dict[str, str] = {
    "orgs": "orgSourcedIds",
    "agents": "agentSourcedIds",
    "terms": "termSourcedIds",
    "parent.sourcedId": "parentSourcedId",
    "org.sourcedId": "orgSourcedId",
    "schoolYear.sourcedId": "schoolYearSourcedId",
    "course.sourcedId": "courseSourcedId",
    "school.sourcedId": "schoolSourcedId",
    "class.sourcedId": "classSourcedId",
    "user.sourcedId": "userSourcedId",
}


def csv_column(field: str) -> str:
    """The CSV column a record field (as a Reject names it) was read from."""
    return FIELD_COLUMNS.get(field, field.split(".")[0])
