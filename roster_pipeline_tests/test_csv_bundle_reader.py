"""The OneRoster 1.1 CSV bundle reader: manifest, the row → 1.1 JSON mapping of each file, and every
bad-bundle case with district, file, line and column in what it says.

Unit level on purpose: each case is a hand-written zip of a few rows, read with ``CsvBundleSource``
(the sync-level behaviour, quarantine and publishing, is in test_csv_bundle_sync.py).
"""

from __future__ import annotations

import datetime as dt
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from roster_pipeline.registry.districts import District
from roster_pipeline.sources.csv_bundle import CsvBundleError, CsvBundleSource
from roster_pipeline.sources.csv_bundle.manifest import ManifestProblem, parse_manifest
from roster_pipeline.validation import validate_batch
from roster_pipeline_tests.csv_bundle_helpers import FILES, STAMP, write_zip

DISTRICT = "csvdist"


def read_all(
    path: Path, collection: str, batch_size: int = 100
) -> tuple[dict[str, dict[str, Any]], list[Any]]:
    """(records by sourcedId, batches) of one file of the bundle."""
    with CsvBundleSource(DISTRICT, path, batch_size=batch_size) as source:
        batches = list(source.iter_batches(collection))
    return {r["sourcedId"]: r for b in batches for r in b}, batches


def refuse(path: Path, collection: str | None = None) -> CsvBundleError:
    with pytest.raises(CsvBundleError) as caught:
        with CsvBundleSource(DISTRICT, path) as source:
            if collection is not None:
                list(source.iter_batches(collection))
    assert f"district {DISTRICT!r}" in str(caught.value) and path.name in str(caught.value)
    return caught.value


def ref(collection: str, kind: str, sid: str) -> dict[str, str]:
    return {"href": f"/{collection}/{sid}", "sourcedId": sid, "type": kind}


# ---------------------------------------------------------------- manifest


def manifest_rows(text: str) -> list[tuple[int, list[str]]]:
    return [(n, line.split(",")) for n, line in enumerate(text.splitlines(), start=1)]


def test_manifest_modes_and_the_import_mode_they_call_for() -> None:
    text = (
        "propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\nfile.users,bulk\nfile.orgs,DELTA\n"
    )
    manifest = parse_manifest(manifest_rows(text))
    assert manifest.mode_of("users") == "bulk" and manifest.mode_of("orgs") == "delta"
    assert manifest.mode_of("enrollments") == "absent"  # not listed: not delivered
    assert (
        manifest.sync_mode == "delta"
    )  # one delta file makes the whole import a delta: no deletions inferred
    bulk = parse_manifest(manifest_rows(text.replace("DELTA", "bulk")))
    assert bulk.sync_mode == "full"


@pytest.mark.parametrize(
    ("text", "line", "column", "says"),
    [
        (
            "propertyName,value\noneroster.version,1.1\nfile.users,sometimes\n",
            3,
            "value",
            "bulk, delta, absent",
        ),
        ("propertyName,value\nfile.users,bulk\n", None, None, "oneroster.version"),
        ("propertyName,value\noneroster.version,1.2\n", None, None, "1.1"),
        ("name,val\noneroster.version,1.1\n", 1, None, "propertyName,value"),
        ("propertyName,value\noneroster.version,1.1\nfile.users,bulk,extra\n", 3, None, "2 columns"),
    ],
)
def test_bad_manifest_says_line_and_column(
    text: str, line: int | None, column: str | None, says: str
) -> None:
    with pytest.raises(ManifestProblem) as caught:
        parse_manifest(manifest_rows(text))
    assert (caught.value.line, caught.value.column) == (line, column) and says in str(caught.value)


def test_bad_manifest_in_a_bundle_names_district_bundle_file_and_line(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "b.zip", manifest="propertyName,value\r\noneroster.version,1.1\r\nfile.users,maybe\r\n"
    )
    error = refuse(path)
    assert (error.file, error.line, error.column) == ("manifest.csv", 3, "value")
    assert "manifest.csv, line 3, column 'value'" in str(error)


# ---------------------------------------------------------------- mapping per file


def test_orgs_parent_and_children_derived_from_the_parents(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip")
    orgs, _ = read_all(path, "orgs")
    assert orgs["s1"]["parent"] == ref("orgs", "org", "d1")
    assert orgs["d1"]["children"] == [ref("orgs", "org", "s1")] and "parent" not in orgs["d1"]
    assert "children" not in orgs["s1"]


def test_bulk_rows_without_status_get_active_and_the_bundle_time(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip")
    os.utime(path, (1_790_000_000, 1_790_000_000))  # 2026-09-21T14:13:20Z
    orgs, _ = read_all(path, "orgs")
    assert orgs["d1"]["status"] == "active"
    assert orgs["d1"]["dateLastModified"] == "2026-09-21T14:13:20.000Z"


def test_academic_sessions_parent_children_and_current_school_year(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip")
    sessions, _ = read_all(path, "academicSessions")
    assert sessions["t1"]["parent"] == ref("academicSessions", "academicSession", "y1")
    assert sessions["y1"]["children"] == [ref("academicSessions", "academicSession", "t1")]
    assert sessions["y1"]["schoolYear"] == "2027" and sessions["y1"]["type"] == "schoolYear"
    with CsvBundleSource(DISTRICT, path) as source:
        assert source.current_school_year(dt.date(2026, 10, 1)) == 2027


def test_courses_and_classes_refs_lists_and_periods(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip")
    courses, _ = read_all(path, "courses")
    assert courses["c1"]["schoolYear"] == ref("academicSessions", "academicSession", "y1")
    assert courses["c1"]["org"] == ref("orgs", "org", "s1")
    assert courses["c1"]["grades"] == ["09", "10"] and courses["c1"]["subjects"] == ["Mathematics"]
    assert "subjectCodes" not in courses["c1"]  # an empty cell is a field not given
    classes, _ = read_all(path, "classes")
    k1 = classes["k1"]
    assert k1["terms"] == [
        ref("academicSessions", "academicSession", "t1"),
        ref("academicSessions", "academicSession", "y1"),
    ]
    assert k1["course"] == ref("courses", "course", "c1") and k1["school"] == ref("orgs", "org", "s1")
    assert k1["periods"] == "1,2"  # a string in the 1.1 JSON binding
    assert k1["subjectCodes"] == ["MATH1"] and k1["grades"] == ["09"]


def test_users_orgs_agents_grades_and_user_ids(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip")
    users, _ = read_all(path, "users")
    student, teacher, guardian = users["u-s"], users["u-t"], users["u-g"]
    assert student["orgs"] == [ref("orgs", "org", "s1"), ref("orgs", "org", "d1")]
    assert student["userIds"] == [
        {"type": "studentNumber", "identifier": "42"},
        {"type": "stateId", "identifier": "9001"},
    ]
    assert student["grades"] == ["09"] and student["middleName"] == "Q" and "email" not in student
    assert teacher["grades"] == []  # users.grades is always a list, as the REST API serves it
    assert "agents" not in teacher
    assert guardian["agents"] == [ref("users", "user", "u-s")]
    assert (guardian["sms"], guardian["phone"], guardian["enabledUser"]) == ("555-1", "555-2", "true")


def test_enrollments_refs_and_primary(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip")
    enrollments, _ = read_all(path, "enrollments")
    assert enrollments["e1"]["class"] == ref("classes", "class", "k1")
    assert enrollments["e1"]["school"] == ref("orgs", "org", "s1")
    assert enrollments["e1"]["user"] == ref("users", "user", "u-t")
    assert enrollments["e1"]["primary"] == "true" and enrollments["e2"]["primary"] == "false"
    assert "beginDate" not in enrollments["e2"]


def test_demographics_booleans_stay_strings(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip")
    demographics, _ = read_all(path, "demographics")
    record = demographics["u-s"]
    assert (record["asian"], record["white"], record["hispanicOrLatinoEthnicity"]) == (
        "true",
        "false",
        "true",
    )
    assert record["birthDate"] == "2012-03-04" and "publicSchoolResidenceStatus" not in record


def test_delta_rows_keep_their_status_and_date(tmp_path: Path) -> None:
    users = (
        FILES["users.csv"].splitlines()[0] + "\r\n"
        f"u-s,tobedeleted,{STAMP},true,s1,student,bo.ng,,Bo,Ng,,42,,,,,09,\r\n"
    )
    path = write_zip(tmp_path / "b.zip", {"users.csv": users}, mode="delta")
    with CsvBundleSource(DISTRICT, path) as source:
        assert source.delivered_mode == "delta"
    got, _ = read_all(path, "users")
    assert (got["u-s"]["status"], got["u-s"]["dateLastModified"]) == ("tobedeleted", STAMP)


def test_rows_stream_in_bounded_batches_with_their_lines(tmp_path: Path) -> None:
    header = FILES["enrollments.csv"].splitlines()[0]
    rows = [f"e{i},,,k1,s1,u-s,student,false,," for i in range(10)]
    # A quoted cell spanning two lines: the rows after it still know their own line.
    rows.insert(3, 'ex,,,k1,s1,u-s,"student\r\nwith a break",false,,')
    path = write_zip(tmp_path / "b.zip", {"enrollments.csv": "\r\n".join([header, *rows]) + "\r\n"})
    got, batches = read_all(path, "enrollments", batch_size=4)
    assert [len(b) for b in batches] == [4, 4, 3] and len(got) == 11
    assert batches[0].lines["e0"] == 2 and batches[0].lines["ex"] == 5
    assert batches[1].lines["e3"] == 7  # after the two-line row


def test_same_sourced_id_twice_with_different_content_is_an_issue(tmp_path: Path) -> None:
    body = FILES["enrollments.csv"] + "e1,,,k1,s1,u-t,teacher,false,,\r\ne2,,,k1,s1,u-s,student,false,,\r\n"
    path = write_zip(tmp_path / "b.zip", {"enrollments.csv": body})
    got, batches = read_all(path, "enrollments")
    issues = [i for b in batches for i in b.issues]
    assert {i.sourced_id for i in issues} == {"e1"} and len(issues) == 2  # both copies of e1
    assert "e1" not in got and "e2" in got  # e2's identical repeat is staged once


# ---------------------------------------------------------------- bad bundles: refused


def test_not_a_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.zip"
    path.write_bytes(b"PK\x03\x04 half an upload")
    assert "not a zip" in str(refuse(path))


def test_missing_manifest_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("users.csv", FILES["users.csv"])
    error = refuse(path)
    assert error.file == "manifest.csv" and "no such file" in str(error)


def test_delivered_file_missing_from_the_zip_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", {"classes.csv": None})
    error = refuse(path)
    assert error.file == "classes.csv" and "manifest delivers classes.csv" in str(error)


def test_header_without_a_required_column_names_file_line_and_column(tmp_path: Path) -> None:
    body = FILES["enrollments.csv"].replace("classSourcedId,", "", 1).replace(",k1,", ",", 1)
    path = write_zip(tmp_path / "b.zip", {"enrollments.csv": body})
    error = refuse(path)
    assert (error.file, error.line, error.column) == ("enrollments.csv", 1, "classSourcedId")
    assert "enrollments.csv, line 1, column 'classSourcedId'" in str(error)


def test_utf16_file_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", {"orgs.csv": FILES["orgs.csv"].encode("utf-16")})
    error = refuse(path)
    assert error.file == "orgs.csv" and "not UTF-8" in str(error)


def test_header_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    body = FILES["orgs.csv"].replace("name", "n\xe4me", 1).encode("latin-1")
    path = write_zip(tmp_path / "b.zip", {"orgs.csv": body})
    error = refuse(path)
    assert (error.file, error.line, error.column) == ("orgs.csv", 1, "4") and "\\xe4" in str(error)


def test_utf8_bom_is_fine(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "b.zip", {"orgs.csv": "\ufeff" + FILES["orgs.csv"]})
    orgs, _ = read_all(path, "orgs")
    assert set(orgs) == {"d1", "s1"}


def test_resource_marked_absent_is_refused_when_asked_for(tmp_path: Path) -> None:
    manifest = "propertyName,value\r\noneroster.version,1.1\r\nfile.orgs,bulk\r\nfile.users,absent\r\n"
    path = write_zip(tmp_path / "b.zip", manifest=manifest)
    error = refuse(path, "users")
    assert "file.users absent" in str(error) and "switch the resource off" in str(error)


# ---------------------------------------------------------------- bad rows: quarantined with file/line/column


def test_row_with_wrong_cell_count_is_a_row_reject(tmp_path: Path) -> None:
    body = FILES["enrollments.csv"] + "e3,,,k1,s1,u-s,student\r\n"
    path = write_zip(tmp_path / "b.zip", {"enrollments.csv": body})
    got, batches = read_all(path, "enrollments")
    rejects = [r for b in batches for r in b.row_rejects]
    assert set(got) == {"e1", "e2"} and len(rejects) == 1
    reject = rejects[0]
    assert (reject.sourced_id, reject.check, reject.resource) == ("e3", "column_count", "enrollments")
    assert "enrollments.csv line 4" in reject.message and f"district {DISTRICT!r}" in reject.message
    assert "expected 10 cells" in reject.message


def test_row_without_sourced_id_and_bad_user_ids_are_row_rejects(tmp_path: Path) -> None:
    header = FILES["users.csv"].splitlines()[0]
    body = (
        "\r\n".join(
            [
                header,
                ",,,true,s1,student,x.y,,X,Y,,1,,,,,09,",
                "u-x,,,true,s1,student,x.z,{broken,X,Z,,2,,,,,09,",
            ]
        )
        + "\r\n"
    )
    path = write_zip(tmp_path / "b.zip", {"users.csv": body})
    _, batches = read_all(path, "users")
    rejects = {r.check: r for b in batches for r in b.row_rejects}
    assert "users.csv line 2, column 'sourcedId'" in rejects["required"].message
    assert rejects["csv_format"].sourced_id == "u-x"
    assert "users.csv line 3, column 'userIds'" in rejects["csv_format"].message


def test_bad_value_and_bad_byte_rejects_name_file_line_and_column(tmp_path: Path) -> None:
    header = FILES["users.csv"].splitlines()[0].encode()
    body = (
        b"\r\n".join(
            [
                header,
                b"u-1,,,yes,s1,student,a.b,,A,B,,1,,,,,09,",  # enabledUser must be "true"/"false"
                b"u-2,,,true,s1,student,c.d,,Ren\xe9e,D,,2,,,,,09,",  # latin-1 in a UTF-8 file
                b"u-3,,,true,s1,student,e.f,,E,F,,3,,,,,09,",
            ]
        )
        + b"\r\n"
    )
    path = write_zip(tmp_path / "b.zip", {"users.csv": body})
    _, batches = read_all(path, "users")
    district = District(id=DISTRICT, name="CSV", import_method="csv_bundle", csv_bundle={"path": str(path)})
    checked = validate_batch(district, "users", batches[0])
    located = {r.sourced_id: batches[0].locate(r) for r in checked.rejects}
    assert [r["sourcedId"] for r in checked.valid] == ["u-3"]
    assert located["u-1"].message.startswith("users.csv line 2, column 'enabledUser': ")
    assert located["u-2"].message.startswith("users.csv line 3, column 'givenName': ")
    assert located["u-2"].check == "invalid_utf8"
