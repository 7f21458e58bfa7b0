"""The classification pass (``warehouse/classify.py``): computed once, read by every step, redone exactly
when it would be wrong (more rows staged, published rows changed before an approve), on SQLite and
Postgres, and schema v6's migration of imports still in staging."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from roster_pipeline.records.rejects import Reject
from roster_pipeline.warehouse import ChangeCounts, Warehouse, classify, staging
from roster_pipeline.warehouse import diff as sql
from roster_pipeline.warehouse.schema import SCHEMA_VERSION, import_resource_counts

from .warehouse_helpers import YEAR, enrollment, rows, sync, user


def changes(wh: Warehouse, import_id: int, name: str = "users", raw: bool = False) -> dict[str, str | None]:
    """{sourced_id: change} of the import's staging rows (an unmarked row's change filled in, unless ``raw``)."""
    table = staging.table_name(name, import_id)
    with wh.engine.connect() as conn:
        found = dict(conn.execute(sa.text(f'SELECT sourced_id, "change" FROM "{table}"')).all())
        unmarked = classify.unmarked_change(conn, import_id, name)
    return found if raw else {key: value or unmarked for key, value in found.items()}


def reference_counts(wh: Warehouse, import_id: int, name: str = "users") -> ChangeCounts:
    """The counts by the join-based statement of the classification table (``diff.count_changes``)."""
    with wh.engine.begin() as conn:
        run = wh._import(conn, import_id)
        c = import_resource_counts.c
        fetched, quarantined, withheld = conn.execute(
            sa.select(c.fetched, c.quarantined, c.withheld).where(
                c.import_id == import_id, c.resource == name
            )
        ).one()
        return sql.count_changes(
            conn, staging.for_import(import_id, name), wh._scope(run), fetched, quarantined, withheld
        )


def passes(wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every classification pass from now on (resource names)."""
    seen: list[str] = []
    real = classify.classify_resource

    def counting(conn: sa.Connection, t: Any, scope: Any, **kwargs: Any) -> str:
        seen.append(t.resource.name)
        return real(conn, t, scope, **kwargs)

    monkeypatch.setattr(classify, "classify_resource", counting)
    return seen


def test_every_outcome_is_classified_once_and_counts_match_the_join(
    wh: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync(wh, {"users": [user(1), user(2), user(3), user(4), user(5), user(6, status="tobedeleted")]})
    sync(wh, {"users": [user(1), user(2), user(3), user(4), user(6, status="tobedeleted")]})  # usr-5 vanishes
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(
        import_id,
        "users",
        [
            user(1),  # unchanged
            user(2, givenName="Changed"),  # updated
            user(3, status="tobedeleted"),  # deleted
            user(5),  # readded
            user(6, status="tobedeleted"),  # already deleted
            user(7),  # added
            user(8, status="tobedeleted"),  # new_tobedeleted
        ],
    )  # usr-4 vanishes
    seen = passes(wh, monkeypatch)
    counts = wh.diff(import_id, "users")
    assert counts == ChangeCounts(
        fetched=7, added=2, readded=1, updated=1, unchanged=1, deleted=2, tobedeleted=3, new_tobedeleted=1
    )
    assert counts == reference_counts(wh, import_id)
    assert changes(wh, import_id) == {
        "usr-1": "unchanged",
        "usr-2": "updated",
        "usr-3": "deleted",
        "usr-5": "readded",
        "usr-6": "already_deleted",
        "usr-7": "added",
        "usr-8": "new_tobedeleted",
    }
    assert changes(wh, import_id, raw=True)["usr-1"] is None  # unchanged rows are not rewritten
    wh.change_summary(import_id)
    wh.school_summary(import_id)
    wh.build_field_diff(import_id)
    assert wh.publish(import_id)["users"] == counts
    assert seen == ["users"]  # the stage step's pass served every later reader, the publish included
    assert rows(wh, "users", "sourced_id", "deleted_at IS NULL") == [
        ("usr-1", True),
        ("usr-2", True),
        ("usr-3", False),
        ("usr-4", False),
        ("usr-5", True),
        ("usr-6", False),
        ("usr-7", True),
        ("usr-8", False),
    ]


def test_staging_more_rows_after_the_pass_classifies_again(
    wh: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync(wh, {"users": [user(1), user(2)]})
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [user(1)])
    seen = passes(wh, monkeypatch)
    assert wh.diff(import_id, "users") == ChangeCounts(fetched=1, unchanged=1, deleted=1)
    wh.stage(import_id, "users", [user(2, givenName="Later"), user(1, givenName="Last copy")])
    assert wh.resource_counts(import_id)["users"]["classified_watermark"] is None
    counts = wh.diff(import_id, "users")
    assert counts == ChangeCounts(fetched=3, updated=2, duplicates=1) == reference_counts(wh, import_id)
    assert seen == ["users", "users"]
    assert wh.publish(import_id)["users"] == counts
    assert rows(wh, "users", "sourced_id", "given_name") == [("usr-1", "Last copy"), ("usr-2", "Later")]


def test_an_approve_after_another_publish_classifies_again_against_what_is_published_then(
    wh: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync(wh, {"users": [user(1), user(2)]})
    held = wh.begin_import("springfield", "run-held", YEAR)
    wh.stage(held, "users", [user(1, givenName="Held"), user(2), user(3)])
    assert wh.diff(held, "users") == ChangeCounts(fetched=3, added=1, updated=1, unchanged=1)
    wh.hold_import(held, "change_thresholds: too many changes")
    # days later, before the approve: another import published usr-3 and dropped usr-2
    sync(wh, {"users": [user(1), user(3)]})
    seen = passes(wh, monkeypatch)
    counts = wh.publish(held, override=True, overridden_by="admin")["users"]
    assert counts == ChangeCounts(fetched=3, updated=1, readded=1, added=1, unchanged=1)
    assert seen == ["users"]
    assert rows(wh, "users", "sourced_id", "given_name", "deleted_at IS NULL") == [
        ("usr-1", "Held", True),
        ("usr-2", "Ada", True),
        ("usr-3", "Ada", True),
    ]


def test_a_change_between_the_pass_and_the_publish_transaction_is_caught_inside_it(
    wh: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another import publishing after ``publish`` re-checked the classification but before its
    transaction took the district lock: the check inside the transaction classifies again, so nothing is
    published from a stale classification (here: usr-2 would stay deleted although staged)."""
    sync(wh, {"users": [user(1), user(2)]})
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [user(1), user(2), user(3)])
    assert wh.diff(import_id, "users") == ChangeCounts(fetched=3, added=1, unchanged=2)
    real_classify = Warehouse.classify

    def classify_then_publish_another(self: Warehouse, *args: Any, **kwargs: Any) -> list[str]:
        done = real_classify(self, *args, **kwargs)
        monkeypatch.setattr(Warehouse, "classify", real_classify)
        sync(self, {"users": [user(1)]}, district="springfield")  # usr-2 vanishes
        return done

    monkeypatch.setattr(Warehouse, "classify", classify_then_publish_another)
    seen = passes(wh, monkeypatch)
    assert wh.publish(import_id)["users"] == ChangeCounts(fetched=3, added=2, readded=1, unchanged=1)
    assert seen == ["users", "users"]  # the other import's, then ours inside the publish transaction
    assert rows(wh, "users", "sourced_id", "deleted_at IS NULL") == [
        ("usr-1", True),
        ("usr-2", True),
        ("usr-3", True),
    ]


def test_a_purge_before_the_approve_classifies_again(wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """A purge changes the district's published rows (and its watermark): every resource the held import
    classified before is classified again at the approve, whether the purge touched it or not."""
    sync(wh, {"users": [user(1)], "enrollments": [enrollment(1), enrollment(2)]})
    held = wh.begin_import("springfield", "run-held", YEAR)
    wh.stage(held, "users", [user(1)])
    wh.stage(held, "enrollments", [enrollment(1)])
    assert wh.diff(held, "enrollments") == ChangeCounts(fetched=1, unchanged=1, deleted=1)
    assert wh.diff(held, "users") == ChangeCounts(fetched=1, unchanged=1)
    wh.hold_import(held, "held")
    wh.purge_resource("springfield", "enrollments", "switched off")  # also withdraws the held import's rows
    seen = passes(wh, monkeypatch)
    counts = wh.publish(held, override=True, overridden_by="admin")
    assert "enrollments" not in counts and counts["users"] == ChangeCounts(fetched=1, unchanged=1)
    assert seen == ["users"]
    assert rows(wh, "enrollments", "sourced_id", "deleted_at IS NULL") == []


def test_withdrawn_rows_leave_the_counts_right_and_quarantined_records_never_vanish(wh: Warehouse) -> None:
    sync(wh, {"users": [user(1), user(2), user(3)]})
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [user(1, givenName="Bad"), user(3), user(4)])
    assert wh.diff(import_id, "users") == ChangeCounts(fetched=3, added=1, updated=1, unchanged=1, deleted=1)
    bad = Reject(
        resource="users",
        sourced_id="usr-1",
        field="orgs",
        check="missing_reference",
        value="x",
        message="unknown org",
        severity="error",
    )
    assert wh.reject_staged(import_id, [bad]) == 1
    counts = wh.diff(import_id, "users")
    assert counts == ChangeCounts(fetched=3, added=1, unchanged=1, deleted=1, quarantined=1)
    assert counts == reference_counts(wh, import_id)
    # a record quarantined without ever being staged (usr-2 vanished from the pass) no longer vanishes
    missing = Reject(
        resource="users",
        sourced_id="usr-2",
        field="orgs",
        check="missing_reference",
        value="x",
        message="unknown org",
        severity="error",
    )
    wh.record_rejects(import_id, [missing])
    assert wh.diff(import_id, "users") == ChangeCounts(fetched=3, added=1, unchanged=1, quarantined=1)
    assert wh.publish(import_id)["users"].deleted == 0
    assert rows(wh, "users", "sourced_id", "given_name", "deleted_at IS NULL") == [
        ("usr-1", "Ada", True),
        ("usr-2", "Ada", True),
        ("usr-3", "Ada", True),
        ("usr-4", "Ada", True),
    ]


def test_first_import_classifies_without_a_join(wh: Warehouse) -> None:
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [user(1), user(2, status="tobedeleted")])
    assert wh.diff(import_id, "users") == ChangeCounts(fetched=2, added=1, tobedeleted=1, new_tobedeleted=1)
    assert changes(wh, import_id) == {"usr-1": "added", "usr-2": "new_tobedeleted"}
    assert changes(wh, import_id, raw=True) == {
        "usr-1": None,
        "usr-2": "new_tobedeleted",
    }  # only the rare one written
    wh.build_field_diff(import_id)
    assert list(
        wh.field_changes(import_id)[["sourced_id", "change", "field"]].itertuples(index=False, name=None)
    ) == [("usr-1", "added", "*")]


def test_upgrade_to_version_6_adds_the_change_column_to_imports_in_staging(warehouse_url: str) -> None:
    """A version-5 database: per-import staging tables without ``change``, no vanished table, no
    classification state.  The upgrade adds them; the held import is classified by its first reader."""
    wh = Warehouse(warehouse_url)
    wh.create_schema()
    sync(wh, {"users": [user(1), user(2)]})
    held = wh.begin_import("springfield", "run-held", YEAR)
    wh.stage(held, "users", [user(1, givenName="Grace"), user(3)])
    wh.hold_import(held, "change_thresholds: too many changes")
    drop_column = "ALTER TABLE {table} DROP COLUMN {column}"
    with wh.engine.begin() as conn:
        quote = conn.dialect.identifier_preparer.quote
        for name in ("users", "enrollments"):
            conn.exec_driver_sql(
                drop_column.format(table=quote(staging.table_name(name, held)), column='"change"')
            )
        conn.exec_driver_sql(f"DROP TABLE {quote(staging.vanished_name(held))}")
        for column in ("classified_watermark", "purged_reject_id"):
            conn.exec_driver_sql(drop_column.format(table="import_resource_counts", column=column))
        conn.execute(sa.text("UPDATE schema_version SET version = 5"))
    wh.dispose()

    wh = Warehouse(warehouse_url)
    try:
        assert wh.create_schema() == SCHEMA_VERSION >= 6
        assert wh.create_schema() == SCHEMA_VERSION  # idempotent
        with wh.engine.connect() as conn:
            inspector = sa.inspect(conn)
            assert "change" in {c["name"] for c in inspector.get_columns(staging.table_name("users", held))}
            assert staging.vanished_name(held) in inspector.get_table_names()
        assert wh.resource_counts(held)["users"]["classified_watermark"] is None
        assert changes(wh, held, raw=True) == {"usr-1": None, "usr-3": None}
        assert wh.publish(held, override=True, overridden_by="admin")["users"] == ChangeCounts(
            fetched=2, added=1, updated=1, deleted=1
        )
        assert rows(wh, "users", "sourced_id", "given_name", "deleted_at IS NULL") == [
            ("usr-1", "Grace", True),
            ("usr-2", "Ada", False),
            ("usr-3", "Ada", True),
        ]
    finally:
        wh.dispose()


def test_the_checks_report_classify_and_check_seconds(wh: Warehouse) -> None:
    from roster_pipeline.pipeline.snapshot_checks import check_snapshot
    from roster_pipeline.registry.districts import District

    district = District(
        id="springfield",
        name="Springfield",
        client_id_env="SPRINGFIELD_ID",
        client_secret_env="SPRINGFIELD_SECRET",
        api_host="sis.example.org",
        app_name="app",
    )
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [user(1)])  # not diffed: the checks step runs the pass
    result = check_snapshot(wh, district, import_id)
    assert set(result.stage_seconds) == {"classify", "check"}
    assert all(seconds >= 0 for seconds in result.stage_seconds.values())
    assert wh.resource_counts(import_id)["users"]["classified_watermark"] is not None
