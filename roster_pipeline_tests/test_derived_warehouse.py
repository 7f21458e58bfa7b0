"""The derived tables built from published rows, on SQLite and Postgres: class_teachers (order, primary
flag, opted-in roles, findings), student_logins under each ``student_devices`` setting, never a held
import's data, the v6 → v7 migration, and the warnings in the Import Results email."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from roster_pipeline.control.dead_runs import RunObservation
from roster_pipeline.control.store import create_control_schema
from roster_pipeline.control.tick import process_imports
from roster_pipeline.derived.build import (
    CLASS_TEACHERS,
    STUDENT_LOGINS,
    NothingPublishedError,
    build_class_teachers,
    build_student_logins,
)
from roster_pipeline.notify import SmtpSender, SmtpSettings
from roster_pipeline.notify.settings import NotifySettings
from roster_pipeline.registry.districts import District, parse_registry
from roster_pipeline.warehouse import SCHEMA_VERSION, Warehouse
from roster_pipeline.warehouse.derived import derived_rows, warnings_for_import

YEAR = 2027
STAMP = "2026-11-01T12:00:00.000Z"


def ref(kind: str, sourced_id: str) -> dict[str, str]:
    return {"href": f"/ims/oneroster/v1p1/{kind}s/{sourced_id}", "sourcedId": sourced_id, "type": kind}


def klass(sourced_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "sourcedId": sourced_id,
        "status": "active",
        "dateLastModified": STAMP,
        "title": sourced_id,
        "classType": "scheduled",
        "course": ref("course", "crs-1"),
        "school": ref("org", "sch-1"),
        "terms": [ref("academicSession", "term-1")],
        **fields,
    }


def person(
    sourced_id: str, family: str | None, given: str | None, role: str = "teacher", **fields: Any
) -> dict[str, Any]:
    record = {
        "sourcedId": sourced_id,
        "status": "active",
        "dateLastModified": STAMP,
        "username": sourced_id,
        "enabledUser": "true",
        "givenName": given,
        "familyName": family,
        "role": role,
        "email": f"{sourced_id}@north.k12.us",
        "orgs": [ref("org", "sch-1")],
        **fields,
    }
    return {k: v for k, v in record.items() if v is not None}


def enrol(
    sourced_id: str,
    class_id: str,
    user_id: str,
    role: str = "teacher",
    primary: str | None = "false",
    **fields: Any,
) -> dict[str, Any]:
    record = {
        "sourcedId": sourced_id,
        "status": "active",
        "dateLastModified": STAMP,
        "class": ref("class", class_id),
        "user": ref("user", user_id),
        "school": ref("org", "sch-1"),
        "role": role,
        "primary": primary,
        **fields,
    }
    return {k: v for k, v in record.items() if v is not None}


def district(**fields: Any) -> District:
    entry = {
        "id": "north",
        "name": "North",
        "api_host": "sis.example.org",
        "app_name": "north",
        "client_id_env": "NORTH_ID",
        "client_secret_env": "NORTH_SECRET",
        "admin_emails": ["admin@north.example.org"],
        **fields,
    }
    return parse_registry({"districts": [entry]}).get("north")


def publish(wh: Warehouse, batches: dict[str, list[dict[str, Any]]], run_id: str = "run-1") -> int:
    import_id = wh.begin_import("north", run_id, YEAR)
    for name, records in batches.items():
        wh.stage(import_id, name, records)
    wh.publish(import_id)
    return import_id


TEACHERS = [
    person("t-zim", "Zimmer", "Anna"),
    person("t-cruz", "de la Cruz", "Maria"),
    person("t-ang", "Ångström", "Lars"),
    person("t-oneil", "O'Neil", "Sean"),
    person("t-oneil2", "Oneil", "Patrick"),
    person("t-lee2", "Lee", "Kim"),
    person("t-lee1", "LEE", "kim"),
    person("t-aide", "Aaron", "Al", role="aide"),
    person("t-admin", "Abbott", "Ada", role="administrator"),
]
STUDENTS = [
    person("s-1", "Ames", "Ann", role="student"),
    person("s-2", "Bell", "Bo", role="student", email=None),  # no email
    person("s-3", "Cole", "Cy", role="student", username=None),  # no username
    person("s-4", "Dunn", "Di", role="student", email="  ", username=None),  # neither
    person("s-5", "Gone", "Gus", role="student", status="tobedeleted"),  # not current
]
ROSTER: dict[str, list[dict[str, Any]]] = {
    "classes": [
        klass("cls-a"),
        klass("cls-b"),
        klass("cls-c"),
        klass("cls-d"),
        klass("cls-e"),
        klass("cls-gone", status="tobedeleted"),
    ],
    "users": TEACHERS + STUDENTS,
    "enrollments": [
        # cls-a: five teachers, one primary, an aide and an administrator; and a student
        enrol("e-1", "cls-a", "t-zim", primary="true"),
        enrol("e-2", "cls-a", "t-cruz"),
        enrol("e-3", "cls-a", "t-ang", primary=None),
        enrol("e-4", "cls-a", "t-oneil"),
        enrol("e-5", "cls-a", "t-oneil2"),
        enrol("e-6", "cls-a", "t-aide", role="aide"),
        enrol("e-7", "cls-a", "t-admin", role="administrator"),
        enrol("e-8", "cls-a", "s-1", role="student"),
        # cls-b: two primaries with equal names (sourcedId decides)
        enrol("e-9", "cls-b", "t-lee2", primary="true"),
        enrol("e-10", "cls-b", "t-lee1", primary="true"),
        # cls-c: teachers, no primary (one enrollment deleted at the SIS)
        enrol("e-11", "cls-c", "t-cruz"),
        enrol("e-12", "cls-c", "t-zim", status="tobedeleted", primary="true"),
        # cls-d: students only; cls-e: nobody
        enrol("e-13", "cls-d", "s-2", role="student"),
        # a deleted class's teacher is not listed
        enrol("e-14", "cls-gone", "t-zim", primary="true"),
    ],
}


def teachers_of(wh: Warehouse) -> dict[str, list[tuple[str, int, bool, str]]]:
    out: dict[str, list[tuple[str, int, bool, str]]] = {}
    for row in derived_rows(wh.engine, CLASS_TEACHERS, "north"):
        out.setdefault(row["class_sourced_id"], []).append(
            (row["teacher_sourced_id"], row["display_order"], row["is_primary"], row["role"])
        )
    return out


def test_class_teachers_lists_every_teacher_of_every_current_class_in_display_order(wh: Warehouse) -> None:
    import_id = publish(wh, ROSTER)
    build = build_class_teachers(wh, district())

    assert teachers_of(wh) == {
        "cls-a": [
            ("t-ang", 1, False, "teacher"),
            ("t-cruz", 2, False, "teacher"),
            ("t-oneil2", 3, False, "teacher"),
            ("t-oneil", 4, False, "teacher"),
            ("t-zim", 5, True, "teacher"),
        ],
        "cls-b": [("t-lee1", 1, True, "teacher"), ("t-lee2", 2, True, "teacher")],
        "cls-c": [("t-cruz", 1, False, "teacher")],
    }
    row = derived_rows(wh.engine, CLASS_TEACHERS, "north")[0]
    assert (row["family_name"], row["given_name"], row["school_year"], row["import_id"]) == (
        "Ångström",
        "Lars",
        YEAR,
        import_id,
    )
    assert build.rows == 8 and build.import_id == import_id and build.figures["classes"] == 5
    found = {w.check: (w.count, w.sample_ids) for w in warnings_for_import(wh.engine, import_id)}
    assert found == {
        "several_primary_teachers": (1, ["cls-b"]),
        "no_primary_teacher": (1, ["cls-c"]),
        "no_teacher": (2, ["cls-d", "cls-e"]),
    }
    assert build.warning_count == 4


def test_aides_and_administrators_are_listed_only_when_the_district_opts_in(wh: Warehouse) -> None:
    publish(wh, ROSTER)
    build_class_teachers(wh, district(class_teachers={"include_roles": ["teacher", "aide", "administrator"]}))
    assert teachers_of(wh)["cls-a"] == [
        ("t-aide", 1, False, "aide"),
        ("t-admin", 2, False, "administrator"),
        ("t-ang", 3, False, "teacher"),
        ("t-cruz", 4, False, "teacher"),
        ("t-oneil2", 5, False, "teacher"),
        ("t-oneil", 6, False, "teacher"),
        ("t-zim", 7, True, "teacher"),
    ]
    build_class_teachers(wh, district())  # the setting taken back: a rebuild drops them again
    assert [t for t, *_ in teachers_of(wh)["cls-a"]] == ["t-ang", "t-cruz", "t-oneil2", "t-oneil", "t-zim"]


@pytest.mark.parametrize(
    ("devices", "expected", "problems"),
    [
        (
            "chromebooks_only",
            {
                "s-1": ("s-1@north.k12.us", None, None),
                "s-2": (None, None, "no_email"),
                "s-3": ("s-3@north.k12.us", None, None),
                "s-4": (None, None, "no_email"),
            },
            {"no_email": (2, ["s-2", "s-4"])},
        ),
        (
            "no_chromebooks",
            {
                "s-1": (None, "s-1", None),
                "s-2": (None, "s-2", None),
                "s-3": (None, None, "no_username"),
                "s-4": (None, None, "no_username"),
            },
            {"no_username": (2, ["s-3", "s-4"])},
        ),
        (
            "mixed",
            {
                "s-1": ("s-1@north.k12.us", "s-1", None),
                "s-2": (None, "s-2", None),
                "s-3": ("s-3@north.k12.us", None, "no_username"),
                "s-4": (None, None, "no_username"),
            },
            {"no_username": (2, ["s-3", "s-4"])},
        ),
    ],
)
def test_student_logins_follow_the_device_setting_and_changing_it_rebuilds_the_table(
    wh: Warehouse,
    devices: str,
    expected: dict[str, tuple[Any, ...]],
    problems: dict[str, tuple[int, list[str]]],
) -> None:
    import_id = publish(wh, ROSTER)
    build_student_logins(
        wh, district(student_devices="no_chromebooks" if devices != "no_chromebooks" else "mixed")
    )
    build = build_student_logins(wh, district(student_devices=devices))  # the setting changed: rebuilt
    rows = derived_rows(wh.engine, STUDENT_LOGINS, "north")
    assert {
        r["student_sourced_id"]: (r["chromebook_login"], r["other_device_login"], r["problem"]) for r in rows
    } == expected
    assert {r["student_devices"] for r in rows} == {devices} and {r["import_id"] for r in rows} == {import_id}
    assert build.rows == 4
    assert {w.check: (w.count, w.sample_ids) for w in warnings_for_import(wh.engine, import_id)} == problems
    assert {k: v for k, v in build.figures.items() if k in ("no_email", "no_username")} == {
        k: v[0] for k, v in problems.items()
    }


def test_a_held_import_never_shows_in_the_derived_tables(wh: Warehouse) -> None:
    first = publish(wh, ROSTER)
    build_class_teachers(wh, district())
    build_student_logins(wh, district())
    before = (
        derived_rows(wh.engine, CLASS_TEACHERS, "north"),
        derived_rows(wh.engine, STUDENT_LOGINS, "north"),
    )

    held = wh.begin_import("north", "run-held", YEAR)
    wh.stage(held, "classes", ROSTER["classes"] + [klass("cls-new")])
    wh.stage(held, "users", TEACHERS + [person("s-9", "New", "Nia", role="student")])
    wh.stage(
        held,
        "enrollments",
        [enrol("e-1", "cls-a", "t-zim", primary="false"), enrol("e-99", "cls-new", "t-ang")],
    )
    wh.hold_import(held, "change_thresholds: too many deletions")

    # Rebuilt while the import is held (a standalone materialization): still the published state only.
    assert build_class_teachers(wh, district()).import_id == first
    assert build_student_logins(wh, district()).import_id == first
    assert (
        derived_rows(wh.engine, CLASS_TEACHERS, "north"),
        derived_rows(wh.engine, STUDENT_LOGINS, "north"),
    ) == before


def test_nothing_published_is_refused_naming_the_district(wh: Warehouse) -> None:
    with pytest.raises(NothingPublishedError, match="district 'north': class_teachers not built"):
        build_class_teachers(wh, district())


def test_upgrade_to_version_7_creates_the_derived_tables(warehouse_url: str) -> None:
    wh = Warehouse(warehouse_url)
    wh.create_schema()
    publish(wh, ROSTER)
    with wh.engine.begin() as conn:
        for table in ("class_teachers", "student_logins", "derived_warnings"):
            conn.exec_driver_sql(f"DROP TABLE {table}")
        conn.execute(
            sa.text(
                "UPDATE schema_version SET version = 6 WHERE version = (SELECT max(version) FROM schema_version)"
            )
        )
        conn.execute(sa.text("DELETE FROM schema_version WHERE version > 6"))
    wh.dispose()

    wh = Warehouse(warehouse_url)
    try:
        assert wh.create_schema() == SCHEMA_VERSION == 7
        assert wh.create_schema() == SCHEMA_VERSION  # idempotent
        with wh.engine.connect() as conn:
            assert {"class_teachers", "student_logins", "derived_warnings"} <= set(
                sa.inspect(conn).get_table_names()
            )
            assert conn.execute(sa.text("SELECT max(version) FROM schema_version")).scalar() == 7
        assert derived_rows(wh.engine, CLASS_TEACHERS, "north") == []  # filled by the next rebuild
        assert build_class_teachers(wh, district()).rows == 8
    finally:
        wh.dispose()


def test_import_results_waits_for_the_run_then_shows_the_derived_warnings(wh: Warehouse, smtp_server) -> None:
    create_control_schema(wh.engine)
    import_id = publish(wh, ROSTER, run_id="run-sync")
    registry = parse_registry(
        {
            "districts": [
                {
                    "id": "north",
                    "name": "North",
                    "api_host": "sis.example.org",
                    "app_name": "north",
                    "client_id_env": "NORTH_ID",
                    "client_secret_env": "NORTH_SECRET",
                    "student_devices": "chromebooks_only",
                    "admin_emails": ["admin@north.example.org"],
                }
            ]
        }
    )
    smtp = SmtpSettings.model_validate(
        {
            "host": smtp_server.host,
            "port": smtp_server.port,
            "security": "none",
            "from_address": "roster@example.org",
            "timeout": 5,
        }
    )
    settings = NotifySettings(retry_after=timedelta(0))
    status = {"run-sync": "STARTED"}

    def observe(run_id: str) -> RunObservation:
        return RunObservation(run_id, status[run_id])

    # Published, but the run is still rebuilding the derived tables: no email yet, the import stays unsettled.
    tick = process_imports(
        wh, registry, lambda: SmtpSender(smtp, attempts=1), settings, None, observe=observe
    )
    assert tick.deliveries == [] and smtp_server.messages == [] and tick.floor == import_id

    build_class_teachers(wh, registry.get("north"))
    build_student_logins(wh, registry.get("north"))
    status["run-sync"] = "SUCCESS"
    tick = process_imports(
        wh, registry, lambda: SmtpSender(smtp, attempts=1), settings, tick.floor, observe=observe
    )
    assert [d.ok for d in tick.deliveries] == [True]
    [message] = smtp_server.messages
    assert message["X-Roster-Kind"] == "import_results"
    text = message.get_body(("plain",)).get_content()
    assert "Derived tables" in text and "6 warning(s) from the derived tables" in text
    assert "No warnings." not in text  # the record checks found none, the derived tables did
    for finding, count, ids in [
        ("classes with more than one primary teacher", 1, "cls-b"),
        ("classes with teachers but no primary teacher", 1, "cls-c"),
        ("classes with no teacher at all", 2, "cls-d, cls-e"),
        ("students who cannot sign in: no email", 2, "s-2, s-4"),
    ]:
        line = next((ln for ln in text.splitlines() if finding in ln), "")
        assert f" {count} " in line and ids in line, (finding, line)
    html = message.get_body(("html",)).get_content()
    assert "classes with no teacher at all" in html and "cls-d, cls-e" in html


def test_an_approve_and_an_undo_rebuild_the_tables_from_what_they_published(
    wh: Warehouse, warehouse_url: str, tmp_path
) -> None:
    """Review actions change the published roster outside a sync run; the review rebuilds the tables."""
    import yaml

    from roster_pipeline.cli.review import review

    path = tmp_path / "districts.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "districts": [
                    {
                        "id": "north",
                        "name": "North",
                        "api_host": "sis.example.org",
                        "app_name": "north",
                        "client_id_env": "NORTH_ID",
                        "client_secret_env": "NORTH_SECRET",
                    }
                ]
            }
        )
    )
    first = publish(wh, ROSTER)
    build_class_teachers(wh, district())
    build_student_logins(wh, district())
    held = wh.begin_import("north", "run-held", YEAR)
    wh.stage(held, "classes", ROSTER["classes"])
    wh.stage(held, "users", ROSTER["users"])
    wh.stage(held, "enrollments", ROSTER["enrollments"] + [enrol("e-20", "cls-e", "t-ang", primary="true")])
    wh.hold_import(held, "change_thresholds: test")

    outcome = review("approve", "north", reviewer="Jo", database_url=warehouse_url, districts_file=str(path))
    assert f"derived tables rebuilt from import {held}" in outcome
    assert teachers_of(wh)["cls-e"] == [("t-ang", 1, True, "teacher")]
    assert {r["import_id"] for r in derived_rows(wh.engine, STUDENT_LOGINS, "north")} == {held}
    assert all(
        "cls-e" not in w.sample_ids for w in warnings_for_import(wh.engine, held)
    )  # it has a primary now

    outcome = review(
        "undo", "north", reviewer="Jo", database_url=warehouse_url, districts_file=str(path), force=True
    )
    assert f"derived tables rebuilt from import {first}" in outcome
    assert "cls-e" not in teachers_of(wh)
    outcome = review(
        "undo", "north", reviewer="Jo", database_url=warehouse_url, districts_file=str(path), force=True
    )
    assert "derived tables emptied" in outcome  # the first import undone: nothing published, nothing derived
    assert (
        derived_rows(wh.engine, CLASS_TEACHERS, "north")
        == derived_rows(wh.engine, STUDENT_LOGINS, "north")
        == []
    )
