"""Hand-made OneRoster 1.1 CSV bundles for the csv_bundle tests: small, exact, each file written as text."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

from roster_pipeline.sources.csv_bundle.manifest import manifest_text

STAMP = "2026-09-01T10:00:00.000Z"

# One district, one school, one year with a term, one course and class, a teacher, a student, a guardian.
FILES: dict[str, str] = {
    "orgs.csv": (
        "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\r\n"
        "d1,,,Dist One,district,D1,\r\n"
        "s1,,,School One,school,S1,d1\r\n"
    ),
    "academicSessions.csv": (
        "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear\r\n"
        "y1,,,2026-27,schoolYear,2026-08-15,2027-06-10,,2027\r\n"
        "t1,,,Fall,term,2026-08-15,2026-12-20,y1,2027\r\n"
    ),
    "courses.csv": (
        "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,orgSourcedId,subjects,subjectCodes\r\n"
        'c1,,,y1,Math 9,M9,"09,10",s1,Mathematics,\r\n'
    ),
    "classes.csv": (
        "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,"
        "termSourcedIds,subjects,subjectCodes,periods\r\n"
        'k1,,,Math 9 - 1,09,c1,M9-1,scheduled,Room 1,s1,"t1,y1",Mathematics,MATH1,"1,2"\r\n'
    ),
    "users.csv": (
        "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,"
        "middleName,identifier,email,sms,phone,agentSourcedIds,grades,password\r\n"
        "u-t,,,true,s1,teacher,ann.lee,{staffNumber:E1},Ann,Lee,,E1,ann.lee@d1.example.org,,,,,\r\n"
        'u-s,,,true,"s1,d1",student,bo.ng,"{studentNumber:42},{stateId:9001}",Bo,Ng,Q,42,,,,,"09",\r\n'
        "u-g,,,true,s1,guardian,cy.ng,,Cy,Ng,,G1,cy@mail.example.net,555-1,555-2,u-s,,\r\n"
    ),
    "enrollments.csv": (
        "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\r\n"
        "e1,,,k1,s1,u-t,teacher,true,2026-08-15,2026-12-20\r\n"
        "e2,,,k1,s1,u-s,student,false,,\r\n"
    ),
    "demographics.csv": (
        "sourcedId,status,dateLastModified,birthDate,sex,americanIndianOrAlaskaNative,asian,blackOrAfricanAmerican,"
        "nativeHawaiianOrOtherPacificIslander,white,demographicRaceTwoOrMoreRaces,hispanicOrLatinoEthnicity,"
        "countryOfBirthCode,stateOfBirthAbbreviation,cityOfBirth,publicSchoolResidenceStatus\r\n"
        "u-s,,,2012-03-04,female,false,true,false,false,false,false,true,US,IL,Peoria,\r\n"
    ),
}

COLLECTIONS = ("orgs", "academicSessions", "courses", "classes", "users", "enrollments", "demographics")


def write_zip(
    path: Path,
    files: Mapping[str, str | bytes | None] | None = None,
    *,
    mode: str = "bulk",
    manifest: str | bytes | None = None,
) -> Path:
    """A bundle: ``FILES`` overridden by ``files`` (None removes a file), with a manifest marking every
    collection ``mode`` unless ``manifest`` is given."""
    contents: dict[str, str | bytes | None] = {**FILES, **(files or {})}
    if manifest is None:
        manifest = manifest_text({c: mode for c in COLLECTIONS})  # type: ignore[misc]
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("manifest.csv", manifest)
        for name, body in contents.items():
            if body is not None:
                bundle.writestr(name, body)
    return path
