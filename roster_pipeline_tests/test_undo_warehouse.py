"""Undo in the warehouse (SQLite and Postgres): after publishing an import and undoing it, every published
table reads exactly as before the import — every row, every column, no bookkeeping column excluded."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.records.rejects import Reject
from roster_pipeline.simulator import generate_district, mutations
from roster_pipeline.warehouse import (
    SCHEMA_VERSION,
    ChangeCounts,
    UndoCheckError,
    UndoRefusedError,
    Warehouse,
    WarehouseError,
)
from roster_pipeline.warehouse.locks import lock_district_writes
from roster_pipeline.warehouse.schema import TABLES

D, OTHER, YEAR = "springfield", "shelbyville", 2027
STAMP = "2026-11-01T12:00:00.000Z"

# Columns left out of the comparison: none. Every published column, bookkeeping included
# (first_seen_at, updated_at, deleted_at, last_import_id, archived_at), must come back exactly.
EXCLUDED_COLUMNS: frozenset[str] = frozenset()


def ref(kind: str, sourced_id: str) -> dict[str, str]:
    return {"href": f"/ims/oneroster/v1p1/{kind}s/{sourced_id}", "sourcedId": sourced_id, "type": kind}


def base(sourced_id: str, defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    return {"sourcedId": sourced_id, "status": "active", "dateLastModified": STAMP, **defaults, **overrides}


def org(sid: str, kind: str = "school", **f: Any) -> dict[str, Any]:
    return base(sid, {"name": f"Org {sid}", "type": kind, "identifier": sid.upper()}, f)


def user(n: int, **f: Any) -> dict[str, Any]:
    return base(
        f"usr-{n}",
        {
            "username": f"s{n}",
            "enabledUser": "true",
            "givenName": "Ada",
            "familyName": f"L{n}",
            "role": "student",
            "email": f"s{n}@x.org",
            "orgs": [ref("org", "sch-1"), ref("org", "dist-1")],
            "grades": ["05"],
        },
        f,
    )


def klass(n: int, **f: Any) -> dict[str, Any]:
    return base(
        f"cls-{n}",
        {
            "title": f"Math {n}",
            "classType": "scheduled",
            "course": ref("course", "crs-1"),
            "school": ref("org", "sch-1"),
            "terms": [ref("academicSession", "term-1")],
        },
        f,
    )


def enrollment(n: int, **f: Any) -> dict[str, Any]:
    return base(
        f"enr-{n}",
        {
            "class": ref("class", f"cls-{n % 3 + 1}"),
            "user": ref("user", f"usr-{n % 6 + 1}"),
            "school": ref("org", "sch-1"),
            "role": "student",
            "primary": "false",
            "beginDate": "2026-08-20",
            "endDate": "2027-06-05",
        },
        f,
    )


def demographic(n: int, **f: Any) -> dict[str, Any]:
    return base(
        f"usr-{n}", {"birthDate": "2015-01-02", "sex": "female", "hispanicOrLatinoEthnicity": "false"}, f
    )


def session(sid: str, **f: Any) -> dict[str, Any]:
    return base(
        sid,
        {
            "title": sid,
            "type": "term",
            "startDate": "2026-08-20",
            "endDate": "2027-06-05",
            "schoolYear": "2027",
        },
        f,
    )


def tbd(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "status": "tobedeleted"}


def publish(
    wh: Warehouse,
    batches: dict[str, list[dict[str, Any]]],
    district: str = D,
    year: int = YEAR,
    mode: str = "full",
    rejects: list[Reject] | None = None,
) -> tuple[int, dict[str, ChangeCounts]]:
    import_id = wh.begin_import(district, f"run-{district}", year, mode)
    if rejects:
        wh.record_rejects(import_id, rejects)
    for name, records in batches.items():
        wh.stage(import_id, name, records)
    return import_id, wh.publish(import_id)


def snapshot(wh: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    """Every published table, every column (as text, so both databases compare exactly), in key order."""
    out = {}
    with wh.engine.connect() as conn:
        for t in TABLES.values():
            table = sa.Table(t.published.name, sa.MetaData(), autoload_with=conn)
            columns = [c for c in table.columns if c.name not in EXCLUDED_COLUMNS]
            assert {c.name for c in columns} >= {
                "first_seen_at",
                "updated_at",
                "deleted_at",
                "last_import_id",
            }
            query = sa.select(*[sa.cast(c, sa.Text) for c in columns]).order_by(*[table.c[k] for k in t.key])
            out[t.published.name] = [tuple(r) for r in conn.execute(query)]
    return out


def history_changes(wh: Warehouse, import_id: int) -> dict[str, int]:
    """{change: rows} of every history table for versions superseded by the import (publish and undo)."""
    counts: dict[str, int] = {}
    with wh.engine.connect() as conn:
        for t in TABLES.values():
            h = t.history.c
            for change, n in conn.execute(
                sa.select(h.change, sa.func.count())
                .where(h.superseded_by_import_id == import_id)
                .group_by(h.change)
            ):
                counts[change] = counts.get(change, 0) + int(n)
    return counts


def first_two_imports(wh: Warehouse) -> tuple[int, int]:
    """A district with history: a first import, then one that deletes (tobedeleted, vanished) and inserts a
    record first seen as tobedeleted, so the import under test can re-add and re-delete."""
    first, _ = publish(
        wh,
        {
            "orgs": [org("dist-1", "district"), org("sch-1")],
            "academic_sessions": [session("term-1")],
            "users": [user(n) for n in range(1, 7)],
            "classes": [klass(n) for n in range(1, 4)],
            "enrollments": [enrollment(n) for n in range(1, 9)],
            "demographics": [demographic(n) for n in range(1, 4)],
        },
    )
    second, counts = publish(
        wh,
        {
            "orgs": [org("dist-1", "district"), org("sch-1")],
            "academic_sessions": [session("term-1")],
            "users": [user(n) for n in range(1, 5)] + [tbd(user(5))],  # usr-6 vanishes, usr-5 tobedeleted
            "classes": [klass(n) for n in range(1, 4)],
            "enrollments": [enrollment(n) for n in range(1, 7)] + [tbd(enrollment(7)), tbd(enrollment(100))],
            "demographics": [demographic(n) for n in range(1, 4)],
        },
    )
    assert counts["users"].deleted == 2 and counts["enrollments"].deleted == 2  # enr-8 vanished
    assert counts["enrollments"].new_tobedeleted == 1
    return first, second


def test_undo_restores_every_published_row_exactly_and_twice_undoes_the_one_before(wh: Warehouse) -> None:
    publish(wh, {"users": [user(1)], "enrollments": [enrollment(1)]}, district=OTHER)  # must never move
    empty = snapshot(wh)
    _, second = first_two_imports(wh)
    before = snapshot(wh)

    # The import under test: updates, deletes by tobedeleted and by vanishing, re-adds, adds, a record first
    # seen as tobedeleted, a quarantined record (kept as published), an unchanged one, across resources;
    # academic_sessions is not staged at all (a resource the import did not touch).
    quarantined = Reject("enrollments", "enr-4", "beginDate", "date_format", "x", "bad date")
    third, counts = publish(
        wh,
        {
            "orgs": [org("dist-1", "district"), org("sch-1", name="Renamed school")],
            "users": [
                user(1, givenName="Grace"),
                tbd(user(2)),
                user(4),
                tbd(user(5)),
                user(6),
                user(7),
                tbd(user(8)),
            ],  # usr-3 vanishes
            "classes": [klass(1, title="Algebra"), klass(2), klass(3), klass(4)],
            "enrollments": [
                enrollment(1, role="teacher"),
                tbd(enrollment(3)),
                enrollment(5),
                enrollment(6),
                enrollment(7),
                enrollment(9),
            ],  # enr-2 vanishes, enr-4 quarantined
            "demographics": [demographic(1, sex="male"), demographic(2), demographic(3)],
        },
        rejects=[quarantined],
    )
    assert counts["users"] == ChangeCounts(
        fetched=7, added=2, updated=1, deleted=2, unchanged=1, tobedeleted=3, readded=1, new_tobedeleted=1
    )
    assert (counts["enrollments"].added, counts["enrollments"].readded, counts["enrollments"].deleted) == (
        2,
        1,
        2,
    )
    assert snapshot(wh) != before

    result = wh.undo_last_import(D, undone_by="Jo Admin", note="wrong term loaded")
    assert snapshot(wh) == before
    assert result.import_id == third and not result.forced and not result.preview
    users = result.resources["users"]
    # restored: usr-1 (updated), usr-2 (deleted), usr-3 (vanished), usr-6 (readded); removed: usr-7, usr-8
    assert (users.restored, users.removed) == (4, 2)
    assert (users.published_before, users.published_after) == (4, 4)  # alive usr-1,4,6,7 → usr-1,2,3,4
    assert (users.added, users.updated, users.deleted) == (2, 1, 2)
    assert (
        result.resources["academic_sessions"].restored == result.resources["academic_sessions"].removed == 0
    )
    assert result.totals()["restored"] > 0

    run = wh.get_import(third)
    assert run.status == "undone" and run.undone_by == "Jo Admin" and run.undo_note == "wrong term loaded"
    assert run.undone_at is not None and run.undo_forced is False
    assert wh.last_published_import(D).import_id == second  # the next delta starts from there
    assert wh.undo_counts(third)["users"] == users
    # the undo is explained in history: the versions it replaced and the rows it removed
    changes = history_changes(wh, third)
    totals = result.totals()
    assert changes["undone"] == totals["restored"] and changes["removed"] == totals["removed"]
    assert sum(changes[c] for c in ("updated", "deleted", "vanished", "readded")) == totals["restored"]

    # undo twice: the one before; then the first import: the district is empty again
    wh.undo_last_import(D, undone_by="Jo Admin")
    first_state = snapshot(wh)
    assert wh.get_import(second).status == "undone"
    wh.undo_last_import(D, undone_by="Jo Admin")
    assert snapshot(wh) == empty
    assert wh.current_counts(D) == {name: 0 for name in TABLES}
    assert wh.is_first_import(D)
    with pytest.raises(UndoRefusedError, match="district 'springfield' has no published import to undo"):
        wh.undo_last_import(D, undone_by="Jo Admin")

    # publishing again after undos works from the restored state
    again, counts = publish(wh, {"users": [user(1)]})
    assert counts["users"] == ChangeCounts(fetched=1, added=1)
    assert first_state != snapshot(wh) and wh.last_published_import(D).import_id == again


def test_undoing_a_rollover_import_unarchives_the_previous_year(wh: Warehouse) -> None:
    def year(y: int, *ids: int) -> dict[str, list[dict[str, Any]]]:
        return {
            "users": [user(n, grades=[str(y)]) for n in ids],
            "classes": [klass(n) for n in ids],
            "enrollments": [enrollment(n) for n in ids],
            "academic_sessions": [session(f"term-{y}")],
        }

    publish(wh, year(2026, 1, 2), year=2026)
    publish(wh, year(2027, 1, 2, 3), year=2027)  # archives 2026
    before = snapshot(wh)
    rollover, _ = publish(wh, year(2028, 2, 4), year=2028)  # archives 2027
    assert wh.current_school_year(D) == 2028 and wh.current_counts(D)["enrollments"] == 2

    result = wh.undo_last_import(D, undone_by="Jo Admin")
    assert snapshot(wh) == before  # 2027 alive and current again, 2026 still archived as it was
    assert result.import_id == rollover and result.current_school_year == 2027
    assert result.resources["enrollments"].unarchived == 3 and result.resources["enrollments"].removed == 2
    assert wh.current_school_year(D) == 2027 and wh.current_counts(D)["enrollments"] == 3
    # the past-year guard follows: 2027 is current again (importable), and 2028 can roll over again later
    publish(wh, year(2027, 1, 2), year=2027)
    publish(wh, year(2028, 2, 4), year=2028)
    assert wh.current_school_year(D) == 2028


def test_undo_refuses_with_an_import_in_flight_or_not_the_latest(wh: Warehouse) -> None:
    with pytest.raises(UndoRefusedError, match="district 'springfield' has no published import to undo"):
        wh.undo_last_import(D, undone_by="Jo Admin")
    first, second = first_two_imports(wh)
    with pytest.raises(
        UndoRefusedError, match=f"import {first} is not the district's latest published import"
    ):
        wh.undo_last_import(D, undone_by="Jo Admin", import_id=first)
    held = wh.begin_import(D, "run-held", YEAR)
    wh.stage(held, "users", [user(1)])
    wh.hold_import(held, "change_thresholds: too many deletions")
    before = snapshot(wh)
    with pytest.raises(UndoRefusedError, match=rf"has import {held} held.*reject it first"):
        wh.undo_last_import(D, undone_by="Jo Admin")
    wh.discard_import(held)
    with pytest.raises(UndoRefusedError, match="needs the name"):
        wh.undo_last_import(D, undone_by=" ")
    assert snapshot(wh) == before and wh.get_import(second).status == "published"
    assert wh.undo_last_import(D, undone_by="Jo Admin", import_id=second).import_id == second
    with pytest.raises(WarehouseError, match="undone"):
        wh.discard_import(second)


def test_a_failing_check_refuses_the_undo_unless_forced_and_preview_changes_nothing(wh: Warehouse) -> None:
    first_two_imports(wh)
    before_second = snapshot(wh)
    seen = []

    def check(result) -> list[str]:
        seen.append(result)
        return [f"users deleted_pct {result.summary.set_index('resource').loc['users', 'deleted_pct']:.1f}%"]

    preview = wh.undo_last_import(D, undone_by="Jo Admin", check=check, preview=True)
    assert preview.preview and preview.check_failures and not preview.forced and snapshot(wh) == before_second
    assert preview.resources["enrollments"].restored == 2 and wh.get_import(2).status == "published"
    with pytest.raises(
        UndoCheckError, match=r"district 'springfield': undoing import 2 fails .* users deleted_pct"
    ):
        wh.undo_last_import(D, undone_by="Jo Admin", check=check)
    assert snapshot(wh) == before_second and wh.get_import(2).status == "published"
    schools = seen[-1].schools.set_index(["school_sourced_id", "resource"])
    assert schools.loc[("sch-1", "enrollments"), "after"] == 8  # enr-7 and enr-8 come back
    forced = wh.undo_last_import(D, undone_by="Jo Admin", check=check, force=True, note="yes, really")
    assert forced.forced and forced.check_failures and wh.get_import(2).undo_forced is True


def test_create_schema_upgrades_a_version_3_database_to_undo(warehouse_url: str) -> None:
    wh = Warehouse(warehouse_url)
    wh.create_schema()
    first, _ = publish(wh, {"users": [user(1)]})
    status_check = "ck_import_runs_status"
    with wh.engine.begin() as conn:  # today's schema minus what version 4 added
        conn.execute(sa.text("DROP TABLE import_undo_counts"))
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.text(
                    f"ALTER TABLE import_runs DROP CONSTRAINT {status_check}, ADD CONSTRAINT {status_check} CHECK "
                    "(status IN ('running', 'staged', 'published', 'failed', 'discarded', 'held', 'dry_run'))"
                )
            )
            for column in ("undone_by", "undone_at", "undo_note", "undo_forced"):
                conn.execute(sa.text(f"ALTER TABLE import_runs DROP COLUMN {column}"))
        else:  # SQLite cannot drop a CHECK: rebuild import_runs the way version 3 created it
            conn.execute(
                sa.text(
                    "CREATE TABLE import_runs_v3 (import_id INTEGER PRIMARY KEY AUTOINCREMENT, district_id TEXT NOT NULL, "
                    "run_id TEXT, school_year INTEGER NOT NULL, sync_mode TEXT NOT NULL, status TEXT NOT NULL, "
                    "started_at DATETIME NOT NULL, finished_at DATETIME, error TEXT, hold_reason TEXT, overridden_by TEXT, "
                    "override_reason TEXT, overridden_at DATETIME, additions_only BOOLEAN DEFAULT 0 NOT NULL, "
                    "CONSTRAINT ck_import_runs_status CHECK (status IN ('running', 'staged', 'published', 'failed', "
                    "'discarded', 'held', 'dry_run')))"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO import_runs_v3 SELECT import_id, district_id, run_id, school_year, sync_mode, status, "
                    "started_at, finished_at, error, hold_reason, overridden_by, override_reason, overridden_at, "
                    "additions_only FROM import_runs"
                )
            )
            conn.execute(sa.text("DROP TABLE import_runs"))
            conn.execute(sa.text("ALTER TABLE import_runs_v3 RENAME TO import_runs"))
        conn.execute(sa.text("UPDATE schema_version SET version = 3"))
        conn.execute(sa.text("DELETE FROM schema_version WHERE version > 3"))
    wh.dispose()

    wh = Warehouse(warehouse_url)
    try:
        with pytest.raises(sa.exc.IntegrityError), wh.engine.begin() as conn:  # v3 really refuses 'undone'
            conn.execute(sa.text(f"UPDATE import_runs SET status = 'undone' WHERE import_id = {first}"))
        assert wh.create_schema() == SCHEMA_VERSION >= 4
        assert wh.create_schema() == SCHEMA_VERSION
        assert wh.get_import(first).undone_by is None and wh.get_import(first).undo_forced is False
        wh.undo_last_import(D, undone_by="Jo Admin")
        assert wh.get_import(first).status == "undone" and wh.current_counts(D)["users"] == 0
        assert wh.undo_counts(first)["users"].removed == 1
    finally:
        wh.dispose()


def test_undo_restores_a_simulated_district_after_a_day_of_changes_and_a_rollover(wh: Warehouse) -> None:
    """The simulator's records (every resource, real reference shapes) through four imports: day one, a day
    of SIS changes (edits, new and withdrawn students, schedule moves), the school-year rollover; undoing
    the last two gives back, column for column, what day one published."""
    district = generate_district("tiny", seed=7)

    def publish_district() -> int:
        import_id = wh.begin_import(D, "run-sim", district.school_year)
        for res in RESOURCES:
            wh.stage(import_id, res.name, list(district.collections[res.collection].values()))
        wh.publish(import_id)
        return import_id

    publish_district()
    day_one = snapshot(wh)
    mutations.change_users(district, 20, seed=3)
    mutations.add_students(district, 3, seed=3)
    mutations.remove_students(district, 1, seed=3, mode="tobedeleted")
    mutations.remove_students(district, 1, seed=4, mode="vanish")
    mutations.move_students(district, 2, seed=3)
    day_two = publish_district()
    assert sum(c["updated"] + c["added"] + c["deleted"] for c in wh.resource_counts(day_two).values()) > 10
    after_day_two = snapshot(wh)
    mutations.advance_school_year(district, seed=3)
    rollover = publish_district()
    assert wh.current_school_year(D) == YEAR + 1

    assert wh.undo_last_import(D, undone_by="Jo Admin").import_id == rollover
    assert snapshot(wh) == after_day_two
    assert wh.undo_last_import(D, undone_by="Jo Admin").import_id == day_two
    assert snapshot(wh) == day_one


@pytest.mark.postgres
def test_undo_waits_for_the_same_district_lock_as_publish(postgres_url: str) -> None:
    """Publish, undo and the PII purge take one per-district lock: while another transaction holds the
    district's write lock (as a publish does), an undo of that district waits; another district's does not."""
    wh = Warehouse(postgres_url)
    wh.create_schema()
    try:
        first_two_imports(wh)
        other = publish(wh, {"users": [user(1)]}, district="shelbyville")[0]
        holder = wh.engine.connect()
        transaction = holder.begin()
        lock_district_writes(holder, D)  # what a publish of D holds until it commits
        try:
            waiting = Warehouse(
                engine=sa.create_engine(postgres_url, connect_args={"options": "-c lock_timeout=500"})
            )
            with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
                waiting.undo_last_import(D, undone_by="Jo Admin", force=True)
            waiting.undo_last_import("shelbyville", undone_by="Jo Admin", force=True)  # not blocked
            assert wh.get_import(other).status == "undone"
            waiting.dispose()
        finally:
            transaction.rollback()
            holder.close()
    finally:
        wh.dispose()
