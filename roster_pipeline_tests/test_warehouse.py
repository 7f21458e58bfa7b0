"""Warehouse behaviour on both the embedded SQLite file and Postgres (``warehouse_url``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.warehouse import ChangeCounts, StagingError, Warehouse, WarehouseError
from roster_pipeline.warehouse.schema import SCHEMA_VERSION, TABLES

from .warehouse_helpers import YEAR, dump_published, enrollment, klass, ref, rows, staging_tables, sync, user


def test_create_schema_is_idempotent(wh: Warehouse) -> None:
    assert wh.create_schema() == wh.create_schema()
    with wh.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM schema_version")).scalar() == 1
        tables = set(sa.inspect(conn).get_table_names())
    for res in RESOURCES:
        assert {res.name, f"{res.name}_history"} <= tables
    assert not [t for t in tables if t.startswith("stg_")]  # staging tables belong to imports (below)
    assert {"import_runs", "import_resource_counts", "schema_version"} <= tables


def test_stage_and_publish_lands_flattened_columns_and_raw(wh: Warehouse) -> None:
    counts = sync(
        wh, {"enrollments": [enrollment(1, primary="true")], "users": [user(1)], "classes": [klass(1)]}
    )
    assert counts["enrollments"] == ChangeCounts(fetched=1, added=1)
    assert rows(
        wh,
        "enrollments",
        "sourced_id",
        "school_year",
        "class_sourced_id",
        "user_sourced_id",
        "school_sourced_id",
        "role",
        "primary",
        "begin_date",
        "status",
    ) == [("enr-1", YEAR, "cls-1", "usr-1", "sch-1", "student", "true", "2026-08-20", "active")]
    [(org_ids, grades, given, email)] = rows(wh, "users", "org_sourced_ids", "grades", "given_name", "email")
    assert json.loads(org_ids) == ["sch-1", "dist-1"] and json.loads(grades) == ["05"]
    assert (given, email) == ("Ada", "student1@springfield.k12.us")
    [(terms, course)] = rows(wh, "classes", "term_sourced_ids", "course_sourced_id")
    assert json.loads(terms) == ["term-1", "term-2"] and course == "crs-1"
    with wh.engine.connect() as conn:
        raw = conn.execute(sa.select(TABLES["users"].published.c.raw)).scalar_one()
        stamps = conn.execute(
            sa.text("SELECT first_seen_at, updated_at, deleted_at, last_import_id FROM users")
        ).one()
    assert raw == user(1)
    assert stamps[0] is not None and stamps[0] == stamps[1] and stamps[2] is None


def test_second_identical_import_changes_nothing(wh: Warehouse) -> None:
    batch = {"enrollments": [enrollment(n) for n in range(20)], "users": [user(n) for n in range(20)]}
    sync(wh, batch)
    before = dump_published(wh)
    counts = sync(wh, batch)
    assert counts["enrollments"] == ChangeCounts(fetched=20, unchanged=20)
    assert counts["users"] == ChangeCounts(fetched=20, unchanged=20)
    assert dump_published(wh) == before  # no timestamp churn, no last_import_id churn, no history


def test_changed_field_is_updated_with_history(wh: Warehouse) -> None:
    sync(wh, {"users": [user(1), user(2)]})
    [(first_seen, updated_before)] = rows(
        wh, "users", "first_seen_at", "updated_at", where="WHERE sourced_id='usr-1'"
    )
    counts = sync(wh, {"users": [user(1, email="new@springfield.k12.us"), user(2)]})
    assert counts["users"] == ChangeCounts(fetched=2, updated=1, unchanged=1)
    [(email, seen, updated)] = rows(
        wh, "users", "email", "first_seen_at", "updated_at", where="WHERE sourced_id='usr-1'"
    )
    assert email == "new@springfield.k12.us" and seen == first_seen and updated != updated_before
    history = rows(wh, "users_history", "sourced_id", "change", "raw", "import_id", "superseded_by_import_id")
    assert [(h[0], h[1], h[3], h[4]) for h in history] == [("usr-1", "updated", 1, 2)]
    raw = history[0][2] if isinstance(history[0][2], dict) else json.loads(history[0][2])
    assert raw["email"] == "student1@springfield.k12.us"


def test_vanished_in_full_is_soft_deleted_status_kept(wh: Warehouse) -> None:
    sync(wh, {"enrollments": [enrollment(1), enrollment(2)]})
    counts = sync(wh, {"enrollments": [enrollment(1)]})
    assert counts["enrollments"] == ChangeCounts(fetched=1, unchanged=1, deleted=1)
    assert rows(wh, "enrollments", "sourced_id", "status", "deleted_at IS NOT NULL") == [
        ("enr-1", "active", False),
        ("enr-2", "active", True),
    ]
    assert wh.current_counts("springfield")["enrollments"] == 1
    assert rows(wh, "enrollments_history", "sourced_id", "change") == [("enr-2", "vanished")]


def test_vanished_in_delta_is_untouched(wh: Warehouse) -> None:
    sync(wh, {"enrollments": [enrollment(1), enrollment(2)]})
    before = dump_published(wh)
    counts = sync(wh, {"enrollments": [enrollment(1)]}, mode="delta")
    assert counts["enrollments"] == ChangeCounts(fetched=1, unchanged=1)
    assert dump_published(wh) == before


@pytest.mark.parametrize("mode", ["full", "delta"])
def test_tobedeleted_is_soft_deleted_in_both_modes(wh: Warehouse, mode: str) -> None:
    sync(wh, {"enrollments": [enrollment(1), enrollment(2)]})
    counts = sync(
        wh,
        {
            "enrollments": [
                enrollment(1),
                enrollment(2, status="tobedeleted"),
                enrollment(3, status="tobedeleted"),
            ]
        },
        mode=mode,
    )
    # enr-3 was never published: kept anyway, inserted already soft-deleted (nothing the SIS sent is lost).
    assert counts["enrollments"] == ChangeCounts(
        fetched=3, unchanged=1, tobedeleted=2, deleted=1, new_tobedeleted=1
    )
    assert rows(wh, "enrollments", "sourced_id", "status", "deleted_at IS NOT NULL") == [
        ("enr-1", "active", False),
        ("enr-2", "tobedeleted", True),
        ("enr-3", "tobedeleted", True),
    ]


def test_moved_sis_host_is_not_an_update_but_a_changed_reference_is(wh: Warehouse) -> None:
    sync(wh, {"enrollments": [enrollment(1), enrollment(2)]})
    moved = [enrollment(n) for n in (1, 2)]
    for record in moved:
        for key in ("class", "user", "school"):
            record[key] = {**record[key], "href": "https://new-host.example.org/v1p1" + record[key]["href"]}
    moved[1]["class"] = ref("class", "cls-9")  # a real change: another class
    counts = sync(wh, {"enrollments": moved})
    assert (counts["enrollments"].unchanged, counts["enrollments"].updated) == (1, 1)
    assert rows(wh, "enrollments", "sourced_id", "class_sourced_id") == [
        ("enr-1", "cls-1"),
        ("enr-2", "cls-9"),
    ]


def test_reappearing_record_is_added_again(wh: Warehouse) -> None:
    sync(wh, {"users": [user(1), user(2)]})
    [(first_seen, _)] = rows(wh, "users", "first_seen_at", "sourced_id", where="WHERE sourced_id='usr-2'")
    sync(wh, {"users": [user(1)]})
    counts = sync(wh, {"users": [user(1), user(2)]})
    assert counts["users"] == ChangeCounts(fetched=2, added=1, readded=1, unchanged=1)
    [(deleted, seen)] = rows(wh, "users", "deleted_at", "first_seen_at", where="WHERE sourced_id='usr-2'")
    assert deleted is None and seen == first_seen  # first sighting is kept
    assert [r[1] for r in rows(wh, "users_history", "history_id", "change")] == ["vanished", "readded"]


def test_duplicates_within_an_import_last_wins(wh: Warehouse) -> None:
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [user(1, givenName="First"), user(2)])
    wh.stage(import_id, "users", [user(1, givenName="Last")])
    assert wh.diff(import_id, "users") == ChangeCounts(fetched=3, added=2, duplicates=1)
    wh.publish(import_id)
    assert rows(wh, "users", "sourced_id", "given_name") == [("usr-1", "Last"), ("usr-2", "Ada")]
    assert wh.resource_counts(import_id)["users"]["duplicates"] == 1


def test_diff_reports_without_publishing(wh: Warehouse) -> None:
    sync(wh, {"users": [user(1), user(2), user(3)]})
    before = dump_published(wh)
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [user(1), user(2, familyName="Changed"), user(4)])
    assert wh.diff(import_id, "users") == ChangeCounts(fetched=3, added=1, updated=1, unchanged=1, deleted=1)
    assert dump_published(wh) == before


def test_two_districts_never_mix(wh: Warehouse) -> None:
    sync(wh, {"users": [user(1), user(2)], "enrollments": [enrollment(1)]}, district="springfield")
    # same sourcedIds in another district, a full pull with only one of them
    counts = sync(wh, {"users": [user(1, givenName="Other")], "enrollments": []}, district="shelbyville")
    assert counts["users"] == ChangeCounts(fetched=1, added=1)
    assert counts["enrollments"] == ChangeCounts()
    assert wh.current_counts("springfield")["users"] == 2
    assert wh.current_counts("springfield")["enrollments"] == 1
    assert rows(wh, "users", "district_id", "sourced_id", "given_name", "deleted_at IS NULL") == [
        ("shelbyville", "usr-1", "Other", True),
        ("springfield", "usr-1", "Ada", True),
        ("springfield", "usr-2", "Ada", True),
    ]
    # and a full pull of springfield that empties it never touches shelbyville
    sync(wh, {"users": []}, district="springfield")
    assert wh.current_counts("shelbyville")["users"] == 1 and wh.current_counts("springfield")["users"] == 0


def test_full_pull_leaves_other_school_years_untouched(wh: Warehouse) -> None:
    sync(wh, {"enrollments": [enrollment(1), enrollment(2)], "users": [user(1)]}, year=2026)
    counts = sync(wh, {"enrollments": [enrollment(1), enrollment(3)], "users": [user(1)]}, year=2027)
    # year-scoped: a new year's rows, the old year's untouched; users are not year-scoped
    assert counts["enrollments"] == ChangeCounts(fetched=2, added=2)
    assert counts["users"] == ChangeCounts(fetched=1, unchanged=1)
    assert wh.current_counts("springfield", 2026)["enrollments"] == 2
    assert wh.current_counts("springfield", 2027)["enrollments"] == 2
    assert rows(wh, "enrollments", "school_year", "sourced_id", "deleted_at IS NULL") == [
        (2026, "enr-1", True),
        (2026, "enr-2", True),
        (2027, "enr-1", True),
        (2027, "enr-3", True),
    ]


def test_publish_is_all_or_nothing_on_a_real_constraint_violation(wh: Warehouse) -> None:
    sync(
        wh,
        {"users": [user(1), user(2)], "classes": [klass(1)], "enrollments": [enrollment(1), enrollment(2)]},
    )
    before = dump_published(wh)
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [user(1, givenName="Changed"), user(3)])  # would update, add and delete
    wh.stage(import_id, "classes", [])  # full pull with no classes: would soft-delete cls-1
    # the last resource published holds a record without status: staging accepts it (so checks can
    # report it), the published table's NOT NULL refuses it, midway through the publish.
    wh.stage(import_id, "enrollments", [enrollment(1), enrollment(5, status=None)])
    with pytest.raises(sa.exc.IntegrityError):
        wh.publish(import_id)
    assert dump_published(wh) == before
    assert wh.get_import(import_id).status == "running"  # the caller decides: fail_import / discard_import
    wh.fail_import(import_id, "publish: IntegrityError")
    with pytest.raises(WarehouseError, match="failed"):
        wh.publish(import_id)
    assert dump_published(wh) == before


def test_publish_is_all_or_nothing_when_a_step_raises(wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    from roster_pipeline.warehouse import diff as sql

    sync(wh, {"users": [user(1)], "enrollments": [enrollment(1)]})
    before = dump_published(wh)
    real = sql.apply_changes

    def failing(
        conn: sa.Connection, t: Any, scope: Any, now: Any, expected: Any = None
    ) -> tuple[int, int, int]:
        result = real(conn, t, scope, now, expected)
        if t.resource.name == "enrollments":
            raise RuntimeError("connection lost")
        return result

    monkeypatch.setattr(sql, "apply_changes", failing)
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [user(2)])
    wh.stage(import_id, "enrollments", [enrollment(2)])
    with pytest.raises(RuntimeError, match="connection lost"):
        wh.publish(import_id)
    assert dump_published(wh) == before
    monkeypatch.setattr(sql, "apply_changes", real)
    assert wh.publish(import_id)["users"] == ChangeCounts(fetched=1, added=1, deleted=1)  # staging was kept


def test_import_runs_and_counts_are_recorded(wh: Warehouse) -> None:
    import_id = wh.begin_import("springfield", "dagster-run-1", YEAR, "delta")
    wh.stage(import_id, "users", [user(1), user(2)])
    wh.stage(import_id, "users", [user(3)])
    wh.record_fetch_stats(import_id, "users", pages=2, seconds=1.25)
    wh.record_fetch_stats(import_id, "orgs", pages=1, seconds=0.1)  # fetch stats alone never mean "staged"
    assert wh.import_for_run("springfield", "dagster-run-1") == import_id
    published = wh.publish(import_id)
    assert list(published) == ["users"]
    run = wh.get_import(import_id)
    assert (run.status, run.sync_mode, run.school_year, run.run_id) == (
        "published",
        "delta",
        YEAR,
        "dagster-run-1",
    )
    assert run.finished_at is not None and run.error is None
    counts = wh.resource_counts(import_id)["users"]
    assert {
        k: counts[k]
        for k in ("batches", "fetched", "added", "updated", "deleted", "unchanged", "rejected", "pages")
    } == {
        "batches": 2,
        "fetched": 3,
        "added": 3,
        "updated": 0,
        "deleted": 0,
        "unchanged": 0,
        "rejected": 0,
        "pages": 2,
    }
    assert counts["seconds"] == pytest.approx(1.25)
    assert staging_tables(wh) == set()  # the import's staging tables are dropped with the publish
    assert wh.last_published_import("springfield").import_id == import_id
    with pytest.raises(WarehouseError, match="published"):
        wh.stage(import_id, "users", [user(4)])


def test_fail_and_discard(wh: Warehouse) -> None:
    sync(wh, {"users": [user(1)]})
    before = dump_published(wh)
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [])
    wh.fail_import(import_id, "threshold: 100% of users would be deleted")
    run = wh.get_import(import_id)
    assert run.status == "failed" and "100%" in (run.error or "")
    assert staging_tables(wh) == {f"stg_{res.name}_{import_id}" for res in RESOURCES}  # kept for review
    wh.discard_import(import_id)
    assert wh.get_import(import_id).status == "discarded"
    assert staging_tables(wh) == set()
    assert dump_published(wh) == before
    with pytest.raises(WarehouseError, match="unknown import"):
        wh.diff(999_999, "users")


def test_record_without_sourced_id_cannot_be_staged(wh: Warehouse) -> None:
    import_id = wh.begin_import("springfield", "run", YEAR)
    with pytest.raises(StagingError, match="record #1 .* no sourcedId"):
        wh.stage(import_id, "users", [user(1), {"status": "active"}])
    assert wh.diff(import_id, "users") == ChangeCounts()  # nothing of the failed batch was staged


def test_collection_names_are_accepted(wh: Warehouse) -> None:
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(
        import_id,
        "academicSessions",
        [
            {
                "sourcedId": "term-1",
                "status": "active",
                "dateLastModified": "x",
                "title": "Fall",
                "type": "term",
                "schoolYear": "2027",
                "parent": ref("academicSession", "sy-2027"),
            }
        ],
    )
    assert wh.publish(import_id)["academic_sessions"].added == 1
    assert rows(wh, "academic_sessions", "sourced_id", "parent_sourced_id", "school_year_text") == [
        ("term-1", "sy-2027", "2027")
    ]


def test_each_import_stages_into_tables_of_its_own(wh: Warehouse) -> None:
    first = wh.begin_import("springfield", "run-1", YEAR)
    second = wh.begin_import("shelbyville", "run-2", YEAR)
    assert staging_tables(wh) == {f"stg_{res.name}_{i}" for res in RESOURCES for i in (first, second)}
    wh.stage(first, "users", [user(1)])
    wh.stage(second, "users", [user(2), user(3)])
    assert rows(wh, f"stg_users_{first}", "sourced_id", "given_name") == [("usr-1", "Ada")]
    assert wh.publish(second)["users"] == ChangeCounts(fetched=2, added=2)
    assert staging_tables(wh) == {f"stg_{res.name}_{first}" for res in RESOURCES}
    assert wh.publish(first)["users"] == ChangeCounts(fetched=1, added=1)
    assert staging_tables(wh) == set()


def test_upgrade_to_version_5_carries_imports_in_staging_into_their_own_tables(warehouse_url: str) -> None:
    """A version-4 database (as 3 did) keeps every import's staging rows in shared ``stg_<resource>`` tables; the
    upgrade moves the rows of imports still in staging (a held one waiting for its approve, a running one)
    into each import's own tables, in their order, drops the leftovers and the shared tables."""
    from roster_pipeline.warehouse import staging

    wh = Warehouse(warehouse_url)
    wh.create_schema()
    sync(wh, {"users": [user(1), user(2)]})  # import 1, published
    held = wh.begin_import("springfield", "run-held", YEAR)
    wh.stage(held, "users", [user(1, givenName="Grace"), user(3)])
    wh.hold_import(held, "change_thresholds: too many changes")
    running = wh.begin_import("springfield", "run-running", YEAR)
    wh.stage(running, "users", [user(5, givenName="First")])
    # Back to the version-3 layout: one shared table per resource (the template is exactly that table),
    # holding the imports' rows, plus leftover rows of the published import.
    with wh.engine.begin() as conn:
        for name, t in TABLES.items():
            t.staging.create(conn)
            for import_id in (held, running):
                own = staging.for_import(import_id, name).staging
                columns = [c.name for c in own.columns if c.name != "row_id"]  # the shared table numbers them
                rows_in_order = sa.select(*[own.c[c] for c in columns]).order_by(own.c.row_id)
                conn.execute(t.staging.insert().from_select(columns, rows_in_order))
        conn.execute(
            TABLES["users"]
            .staging.insert()
            .values(import_id=1, district_id="springfield", sourced_id="usr-9", raw="{}", record_hash="x")
        )
        for import_id in (held, running):
            staging.drop(conn, import_id)
        conn.execute(sa.text("UPDATE schema_version SET version = 3"))
    wh.dispose()

    wh = Warehouse(warehouse_url)
    try:
        assert wh.create_schema() == SCHEMA_VERSION >= 5
        assert staging_tables(wh) == {f"stg_{res.name}_{i}" for res in RESOURCES for i in (held, running)}
        assert rows(wh, f"stg_users_{held}", "sourced_id", "given_name") == [
            ("usr-1", "Grace"),
            ("usr-3", "Ada"),
        ]
        # the running import goes on staging after the upgrade; the later copy of a record still wins
        wh.stage(running, "users", [user(5, givenName="Later")])
        assert wh.publish(held, override=True, overridden_by="admin")["users"] == ChangeCounts(
            fetched=2, added=1, updated=1, deleted=1
        )
        wh.publish(running)
        assert rows(wh, "users", "sourced_id", "given_name", "deleted_at IS NULL") == [
            ("usr-1", "Grace", False),
            ("usr-2", "Ada", False),
            ("usr-3", "Ada", False),
            ("usr-5", "Later", True),
        ]
        assert staging_tables(wh) == set()
    finally:
        wh.dispose()
