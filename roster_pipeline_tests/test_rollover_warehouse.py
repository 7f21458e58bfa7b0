"""Rollover in the warehouse (SQLite and Postgres): archiving the old school year, the current views,
the past-year guard, additions_only publishing and the schema v2 → v3 migration."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from roster_pipeline.warehouse import SCHEMA_VERSION, ChangeCounts, Warehouse, WarehouseError
from roster_pipeline.warehouse.archive import PastSchoolYearError
from roster_pipeline_tests.warehouse_helpers import dump_published, enrollment, klass, rows, sync, user

OLD, NEW = 2027, 2028


def year_one(wh: Warehouse) -> None:
    sync(
        wh,
        {"users": [user(1), user(2)], "classes": [klass(1)], "enrollments": [enrollment(1), enrollment(2)]},
        year=OLD,
    )


def current(wh: Warehouse, view: str) -> list[tuple[Any, ...]]:
    with wh.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(f'SELECT sourced_id FROM "{view}" ORDER BY 1'))]


def test_publishing_a_newer_year_archives_the_old_one_and_keeps_it_queryable(wh: Warehouse) -> None:
    year_one(wh)
    assert wh.current_school_year("springfield") == OLD
    old_rows = rows(
        wh, "enrollments", "school_year", "sourced_id", "user_sourced_id", "raw", "deleted_at IS NULL"
    )
    # The SIS rolled over: new sourcedIds for the new year's classes and enrollments; one id reused.
    counts = sync(
        wh,
        {
            "users": [user(1, grades=["06"]), user(2)],
            "classes": [klass(7)],
            "enrollments": [
                enrollment(1, user={"sourcedId": "usr-2", "href": "x", "type": "user"}),
                enrollment(3),
            ],
        },
        year=NEW,
    )
    assert counts["enrollments"] == ChangeCounts(fetched=2, added=2)  # the old year's enr-1 is not "updated"
    assert wh.current_school_year("springfield") == NEW

    # old year: kept exactly as it was (content, alive), only stamped archived
    assert (
        rows(
            wh,
            "enrollments",
            "school_year",
            "sourced_id",
            "user_sourced_id",
            "raw",
            "deleted_at IS NULL",
            where=f"WHERE school_year = {OLD}",
        )
        == old_rows
    )
    assert rows(wh, "enrollments", "school_year", "archived_at IS NOT NULL") == [
        (OLD, True),
        (OLD, True),
        (NEW, False),
        (NEW, False),
    ]
    assert rows(wh, "classes", "school_year", "sourced_id", "archived_at IS NOT NULL") == [
        (OLD, "cls-1", True),
        (NEW, "cls-7", False),
    ]
    # current views and counts: the new year only; users are not year-scoped
    assert current(wh, "current_enrollments") == [("enr-1",), ("enr-3",)]
    assert current(wh, "current_classes") == [("cls-7",)]
    assert current(wh, "current_users") == [("usr-1",), ("usr-2",)]
    assert wh.current_counts("springfield")["enrollments"] == 2
    assert wh.current_counts("springfield")["classes"] == 1
    assert wh.current_counts("springfield", OLD)["enrollments"] == 2  # the archive, on request
    assert wh.school_years("springfield") == {
        OLD: {"classes": 1, "enrollments": 2},
        NEW: {"classes": 1, "enrollments": 2},
    }


def test_a_full_pull_of_the_new_year_never_deletes_the_old_years_rows(wh: Warehouse) -> None:
    year_one(wh)
    sync(wh, {"enrollments": [enrollment(5)]}, year=NEW)
    sync(wh, {"enrollments": []}, year=NEW)  # the new year emptied: only ITS rows are soft-deleted
    assert rows(wh, "enrollments", "school_year", "sourced_id", "deleted_at IS NULL") == [
        (OLD, "enr-1", True),
        (OLD, "enr-2", True),
        (NEW, "enr-5", False),
    ]


def test_a_past_school_year_can_never_be_imported_into(wh: Warehouse) -> None:
    year_one(wh)
    sync(wh, {"enrollments": [enrollment(3)]}, year=NEW)
    before = dump_published(wh)
    with pytest.raises(
        PastSchoolYearError, match=r"school year 2027 is in the past .* current school year is 2028"
    ):
        wh.begin_import("springfield", "late-run", OLD)
    assert dump_published(wh) == before
    # other districts are not concerned
    assert wh.begin_import("shelbyville", "run", OLD)


def test_an_old_year_import_opened_before_the_rollover_cannot_publish_after_it(wh: Warehouse) -> None:
    year_one(wh)
    slow = wh.begin_import("springfield", "slow-run", OLD)
    wh.stage(slow, "enrollments", [])  # would vanish every old-year enrollment
    sync(wh, {"enrollments": [enrollment(3)]}, year=NEW)
    before = dump_published(wh)
    with pytest.raises(PastSchoolYearError):
        wh.publish(slow)
    assert dump_published(wh) == before


def test_additions_only_adds_and_updates_but_never_deletes(wh: Warehouse) -> None:
    sync(wh, {"users": [user(1), user(2), user(3)], "enrollments": [enrollment(1), enrollment(2)]})
    import_id = wh.begin_import("springfield", "run", 2027)
    wh.set_additions_only(import_id)
    assert wh.get_import(import_id).additions_only
    # user 2 vanished, user 3 arrives tobedeleted, user 4 is new, user 1 changed, enrollment 2 tobedeleted,
    # and a never-seen record arrives tobedeleted (stored soft-deleted: nothing alive is deleted by that)
    wh.stage(
        import_id,
        "users",
        [
            user(1, familyName="Changed"),
            user(3, status="tobedeleted"),
            user(4),
            user(9, status="tobedeleted"),
        ],
    )
    wh.stage(import_id, "enrollments", [enrollment(1), enrollment(2, status="tobedeleted")])
    assert wh.diff(import_id, "users") == ChangeCounts(
        fetched=4, added=1, updated=1, tobedeleted=1, new_tobedeleted=1, withheld=1
    )
    published = wh.publish(import_id)
    assert published["users"].deleted == 0 and published["enrollments"].deleted == 0
    assert published["enrollments"] == ChangeCounts(fetched=2, unchanged=1, withheld=1)
    assert rows(wh, "users", "sourced_id", "family_name", "status", "deleted_at IS NULL") == [
        ("usr-1", "Changed", "active", True),
        ("usr-2", "Lovelace2", "active", True),
        ("usr-3", "Lovelace3", "active", True),
        ("usr-4", "Lovelace4", "active", True),
        ("usr-9", "Lovelace9", "tobedeleted", False),
    ]
    assert wh.resource_counts(import_id)["users"]["withheld"] == 1
    # after the window a normal full import deletes what is gone
    counts = sync(wh, {"users": [user(1, familyName="Changed"), user(4)], "enrollments": [enrollment(1)]})
    assert counts["users"].deleted == 2 and counts["enrollments"].deleted == 1


def test_additions_only_is_fixed_before_staging(wh: Warehouse) -> None:
    import_id = wh.begin_import("springfield", "run", 2027)
    wh.stage(import_id, "users", [user(1)])
    wh.publish(import_id)
    with pytest.raises(WarehouseError, match="published"):
        wh.set_additions_only(import_id)


def test_views_are_created_once_and_survive_create_schema(wh: Warehouse) -> None:
    wh.create_schema()
    with wh.engine.connect() as conn:
        views = set(sa.inspect(conn).get_view_names())
    assert {
        "current_orgs",
        "current_academic_sessions",
        "current_courses",
        "current_classes",
        "current_users",
        "current_enrollments",
        "current_demographics",
    } <= views


def test_create_schema_upgrades_a_version_2_database_and_archives_its_older_years(warehouse_url: str) -> None:
    # Build a version-2 database: today's schema minus what v3 added, holding two school years.
    wh = Warehouse(warehouse_url)  # this test builds its own (a v2 database)
    wh.create_schema()
    year_one(wh)
    sync(wh, {"enrollments": [enrollment(3)], "classes": [klass(3)]}, year=NEW)
    with wh.engine.begin() as conn:
        for name in ("orgs", "users", "demographics"):
            conn.execute(sa.text(f"DROP VIEW current_{name}"))
        for name in ("academic_sessions", "courses", "classes", "enrollments"):
            conn.execute(sa.text(f"DROP VIEW current_{name}"))
            conn.execute(sa.text(f"ALTER TABLE {name} DROP COLUMN archived_at"))
        conn.execute(sa.text("ALTER TABLE import_runs DROP COLUMN additions_only"))
        conn.execute(sa.text("ALTER TABLE import_resource_counts DROP COLUMN withheld"))
        conn.execute(sa.text("UPDATE schema_version SET version = 2"))
    wh.dispose()

    wh = Warehouse(warehouse_url)
    try:
        assert wh.create_schema() == SCHEMA_VERSION >= 3
        assert wh.create_schema() == SCHEMA_VERSION  # idempotent
        with wh.engine.connect() as conn:
            versions = list(conn.execute(sa.text("SELECT version FROM schema_version ORDER BY 1")).scalars())
            assert versions == list(range(2, SCHEMA_VERSION + 1))
        # the older year is archived by the migration step itself, the current one is not
        assert rows(wh, "enrollments", "school_year", "sourced_id", "archived_at IS NOT NULL") == [
            (OLD, "enr-1", True),
            (OLD, "enr-2", True),
            (NEW, "enr-3", False),
        ]
        assert wh.current_counts("springfield")["enrollments"] == 1
        assert current(wh, "current_classes") == [("cls-3",)]
        assert wh.get_import(1).additions_only is False
        assert wh.resource_counts(1)["users"]["withheld"] == 0
        import_id = wh.begin_import("springfield", "after-upgrade", NEW)
        wh.set_additions_only(import_id)
        wh.stage(import_id, "enrollments", [])
        assert wh.publish(import_id)["enrollments"].deleted == 0
    finally:
        wh.dispose()
