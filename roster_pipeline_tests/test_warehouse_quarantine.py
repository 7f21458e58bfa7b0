"""Quarantine (rejected_records), held / dry-run imports and the v1 → v2 schema migration,
on both the embedded SQLite file and Postgres (``warehouse_url``)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from roster_pipeline.oneroster.paging import CONFLICTING_DUPLICATE, RecordIssue
from roster_pipeline.records.rejects import Reject
from roster_pipeline.registry.districts import District
from roster_pipeline.validation import issue_rejects, validate_batch
from roster_pipeline.warehouse import SCHEMA_VERSION, ChangeCounts, Warehouse, WarehouseError
from roster_pipeline_tests.warehouse_helpers import YEAR, dump_published, enrollment, rows, sync, user


def bad(
    resource: str, sourced_id: str | None, field: str = "email", check: str = "format", **kw: object
) -> Reject:
    return Reject(
        resource=resource,
        sourced_id=sourced_id,
        field=field,
        check=check,
        value=kw.pop("value", "not-an-email"),  # type: ignore[arg-type]
        message=f"springfield {resource} {sourced_id}: {field} fails {check}",
        **kw,  # type: ignore[arg-type]
    )


def test_record_rejects_round_trip_and_counts(wh: Warehouse) -> None:
    import_id = wh.begin_import("springfield", "run", YEAR)
    rejects = [
        bad("users", "usr-1", raw=user(1, email="not-an-email")),
        bad("users", "usr-1", field="role", check="enum", value="wizard"),  # same record, second check
        bad(
            "users",
            None,
            field="sourcedId",
            check="required",
            value=None,
            raw={"status": "active", "x": "\x00"},
        ),
        bad("enrollments", "enr-1", field="class.sourcedId", check="reference", value="cls-x"),
        bad("academicSessions", "term-1", field="startDate", check="date_format", value="2026-13-01"),
        bad("users", "usr-2", check="email_missing", value=None, severity="warning"),
    ]
    assert wh.record_rejects(import_id, rejects) == 6
    assert wh.record_rejects(import_id, []) == 0
    back = wh.rejects(import_id)
    assert [(r.resource, r.sourced_id, r.field, r.check, r.value, r.severity) for r in back] == [
        ("users", "usr-1", "email", "format", "not-an-email", "error"),
        ("users", "usr-1", "role", "enum", "wizard", "error"),
        ("users", None, "sourcedId", "required", None, "error"),
        ("enrollments", "enr-1", "class.sourcedId", "reference", "cls-x", "error"),
        ("academic_sessions", "term-1", "startDate", "date_format", "2026-13-01", "error"),  # name normalised
        ("users", "usr-2", "email", "email_missing", None, "warning"),
    ]
    assert back[0].raw == user(1, email="not-an-email") and back[0].message.startswith(
        "springfield users usr-1"
    )
    assert back[2].raw == {"status": "active", "x": "\ufffd"}  # a NUL cannot live in Postgres text/JSONB
    assert [r.sourced_id for r in wh.rejects(import_id, severity="warning")] == ["usr-2"]
    assert wh.reject_counts(import_id) == {
        "academic_sessions": {"date_format": 1},
        "enrollments": {"reference": 1},
        "users": {"email_missing": 1, "enum": 1, "format": 1, "required": 1},
    }
    assert wh.reject_counts(import_id, severity="error")["users"] == {"enum": 1, "format": 1, "required": 1}
    # distinct records: usr-1 (twice) and the record without a sourcedId
    assert wh.rejected_record_counts(import_id) == {"users": 2, "enrollments": 1, "academic_sessions": 1}
    assert wh.rejected_record_counts(import_id, severity="warning") == {"users": 1}
    with pytest.raises(ValueError, match="severity"):
        wh.record_rejects(import_id, [bad("users", "usr-9", severity="fatal")])  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="unknown OneRoster resource"):
        wh.record_rejects(import_id, [bad("widgets", "w-1")])


def test_reject_staged_withdraws_the_record_and_it_is_never_published(wh: Warehouse) -> None:
    sync(wh, {"enrollments": [enrollment(1)]})
    import_id = wh.begin_import("springfield", "run", YEAR)
    # enr-2 staged twice (a drift duplicate): both copies go
    wh.stage(
        import_id, "enrollments", [enrollment(1, role="teacher"), enrollment(2), enrollment(3), enrollment(2)]
    )
    removed = wh.reject_staged(
        import_id,
        [
            bad("enrollments", "enr-2", field="class.sourcedId", check="reference", value="cls-2"),
            bad("enrollments", "enr-2", field="user.sourcedId", check="reference", value="usr-2"),
            bad("enrollments", "enr-3", field="*", check="no_teacher", value=None, severity="warning"),
        ],
    )
    assert removed == 2
    [first, second, warning] = wh.rejects(import_id)
    assert first.raw == enrollment(2) and second.raw == enrollment(2)  # filled in from staging
    assert warning.raw == enrollment(3)
    counts = wh.diff(import_id, "enrollments")
    assert counts == ChangeCounts(fetched=4, added=1, updated=1, quarantined=2)  # not mistaken for duplicates
    assert wh.publish(import_id)["enrollments"] == counts
    assert rows(wh, "enrollments", "sourced_id", "role") == [("enr-1", "teacher"), ("enr-3", "student")]
    stored = wh.resource_counts(import_id)["enrollments"]
    assert (stored["rejected"], stored["quarantined"], stored["duplicates"]) == (1, 2, 0)
    with pytest.raises(WarehouseError, match="published"):
        wh.reject_staged(import_id, [bad("enrollments", "enr-1")])
    with pytest.raises(WarehouseError, match="published"):
        wh.record_rejects(import_id, [bad("enrollments", "enr-1")])


@pytest.mark.parametrize("how", ["record_rejects", "reject_staged", "staged_anyway"])
def test_rejected_record_never_vanishes_in_a_full_import(wh: Warehouse, how: str) -> None:
    sync(wh, {"users": [user(1), user(2), user(3)]})
    before = rows(wh, "users", "sourced_id", "email", "updated_at", "deleted_at", "last_import_id")
    import_id = wh.begin_import("springfield", "run", YEAR)  # full
    broken = user(2, email="broken")
    reject = bad("users", "usr-2", value="broken", raw=broken)
    if how == "record_rejects":  # batch check: the record never reaches staging
        wh.stage(import_id, "users", [user(1)])
        wh.record_rejects(import_id, [reject])
    elif how == "reject_staged":  # referential check after staging
        wh.stage(import_id, "users", [user(1), broken])
        assert wh.reject_staged(import_id, [reject]) == 1
    else:  # recorded as an error yet staged: the diff withdraws it anyway
        wh.stage(import_id, "users", [user(1), broken])
        wh.record_rejects(import_id, [reject])
    counts = wh.diff(import_id, "users")
    assert (counts.unchanged, counts.deleted, counts.updated) == (1, 1, 0)  # usr-3 vanished, usr-2 did not
    wh.publish(import_id)
    after = rows(wh, "users", "sourced_id", "email", "updated_at", "deleted_at", "last_import_id")
    assert after[:2] == before[:2]  # usr-2's published version is exactly as it was
    assert after[2][0] == "usr-3" and after[2][3] is not None
    assert [r[0] for r in rows(wh, "users_history", "sourced_id", "change")] == ["usr-3"]


def test_a_warning_does_not_protect_a_vanished_record(wh: Warehouse) -> None:
    sync(wh, {"users": [user(1), user(2)]})
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [user(1)])
    wh.record_rejects(import_id, [bad("users", "usr-2", severity="warning")])
    assert wh.diff(import_id, "users").deleted == 1


def test_held_import_publishes_only_as_an_override_which_is_recorded(wh: Warehouse) -> None:
    sync(wh, {"users": [user(1), user(2)]})
    assert wh.held_import("springfield") is None
    before = dump_published(wh)
    import_id = wh.begin_import("springfield", "run-2", YEAR)
    wh.stage(import_id, "users", [user(1)])
    wh.mark_staged(import_id)
    wh.hold_import(import_id, "users: 50.0% deleted > 10%")
    held = wh.held_import("springfield")
    assert held is not None and (held.import_id, held.status, held.hold_reason) == (
        import_id,
        "held",
        "users: 50.0% deleted > 10%",
    )
    assert held.finished_at is None  # waiting for the admin
    with pytest.raises(WarehouseError, match="held .* override=True"):
        wh.publish(import_id)
    for step in (
        lambda: wh.stage(import_id, "users", [user(3)]),
        lambda: wh.mark_staged(import_id),
        lambda: wh.mark_dry_run(import_id),
    ):
        with pytest.raises(WarehouseError, match="held"):
            step()
    assert dump_published(wh) == before
    assert wh.diff(import_id, "users").deleted == 1  # the held snapshot is still there for review
    published = wh.publish(
        import_id, override=True, overridden_by="admin@springfield", override_reason="graduation"
    )
    assert published["users"] == ChangeCounts(fetched=1, unchanged=1, deleted=1)
    run = wh.get_import(import_id)
    assert (run.status, run.overridden_by, run.override_reason) == (
        "published",
        "admin@springfield",
        "graduation",
    )
    assert run.overridden_at is not None and run.hold_reason == "users: 50.0% deleted > 10%"
    assert wh.held_import("springfield") is None
    with pytest.raises(WarehouseError, match="published"):
        wh.hold_import(import_id, "again")


def test_override_of_an_import_that_was_not_held_records_nothing(wh: Warehouse) -> None:
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [user(1)])
    wh.publish(import_id, override=True, overridden_by="admin")
    run = wh.get_import(import_id)
    assert (run.status, run.overridden_by, run.overridden_at) == ("published", None, None)


def test_rejected_held_import_is_discarded(wh: Warehouse) -> None:
    sync(wh, {"users": [user(1)]})
    before = dump_published(wh)
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [])
    wh.record_rejects(import_id, [bad("users", "usr-1")])
    wh.hold_import(import_id, "rejected 100%")
    wh.discard_import(import_id)
    assert wh.get_import(import_id).status == "discarded"
    assert dump_published(wh) == before
    assert len(wh.rejects(import_id)) == 1  # the quarantine outlives the snapshot: it explains the reject


@pytest.mark.parametrize("status", ["dry_run", "failed", "discarded", "published"])
def test_publish_always_refuses_dry_run_failed_discarded_published(wh: Warehouse, status: str) -> None:
    sync(wh, {"users": [user(1)]})
    before = dump_published(wh)
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [user(2)])
    {
        "dry_run": lambda: wh.mark_dry_run(import_id),
        "failed": lambda: wh.fail_import(import_id, "boom"),
        "discarded": lambda: wh.discard_import(import_id),
        "published": lambda: wh.publish(import_id),
    }[status]()
    before = dump_published(wh)
    for override in (False, True):
        with pytest.raises(WarehouseError, match=status):
            wh.publish(import_id, override=override)
    assert dump_published(wh) == before


def test_dry_run_keeps_its_snapshot_for_preview(wh: Warehouse) -> None:
    sync(wh, {"users": [user(1)]})
    before = dump_published(wh)
    import_id = wh.begin_import("springfield", "dry", YEAR)
    wh.stage(import_id, "users", [user(1, givenName="Grace"), user(2)])
    wh.mark_dry_run(import_id)
    run = wh.get_import(import_id)
    assert run.status == "dry_run" and run.finished_at is not None
    assert wh.diff(import_id, "users") == ChangeCounts(fetched=2, added=1, updated=1)
    with pytest.raises(WarehouseError, match="dry_run"):
        wh.stage(import_id, "users", [user(3)])
    assert dump_published(wh) == before
    assert wh.held_import("springfield") is None


def test_is_first_import(wh: Warehouse) -> None:
    assert wh.is_first_import("springfield")
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [user(1)])
    wh.hold_import(import_id, "rejected rows")
    assert wh.is_first_import("springfield")  # held is not published
    wh.publish(import_id, override=True)
    assert not wh.is_first_import("springfield") and wh.is_first_import("shelbyville")


# -- migration -------------------------------------------------------------------------------------

# The control tables exactly as schema version 1 created them (SQLAlchemy's DDL for each dialect).
V1_DDL = {
    "sqlite": """
CREATE TABLE import_runs (
    import_id INTEGER NOT NULL, district_id TEXT NOT NULL, run_id TEXT, school_year INTEGER NOT NULL,
    sync_mode TEXT NOT NULL, status TEXT NOT NULL, started_at DATETIME NOT NULL, finished_at DATETIME,
    error TEXT,
    PRIMARY KEY (import_id),
    CONSTRAINT ck_import_runs_sync_mode CHECK (sync_mode IN ('full', 'delta')),
    CONSTRAINT ck_import_runs_status CHECK (status IN ('running', 'staged', 'published', 'failed', 'discarded'))
);
CREATE INDEX ix_import_runs_run ON import_runs (run_id);
CREATE INDEX ix_import_runs_district ON import_runs (district_id, started_at);
""",
    "postgresql": """
CREATE TABLE import_runs (
    import_id BIGSERIAL NOT NULL, district_id TEXT NOT NULL, run_id TEXT, school_year INTEGER NOT NULL,
    sync_mode TEXT NOT NULL, status TEXT NOT NULL, started_at TIMESTAMP WITH TIME ZONE NOT NULL,
    finished_at TIMESTAMP WITH TIME ZONE, error TEXT,
    PRIMARY KEY (import_id),
    CONSTRAINT ck_import_runs_sync_mode CHECK (sync_mode IN ('full', 'delta')),
    CONSTRAINT ck_import_runs_status CHECK (status IN ('running', 'staged', 'published', 'failed', 'discarded'))
);
CREATE INDEX ix_import_runs_run ON import_runs (run_id);
CREATE INDEX ix_import_runs_district ON import_runs (district_id, started_at);
""",
}
V1_COMMON = """
CREATE TABLE import_resource_counts (
    import_id BIGINT NOT NULL, resource TEXT NOT NULL, batches INTEGER DEFAULT '0' NOT NULL,
    fetched BIGINT DEFAULT '0' NOT NULL, duplicates BIGINT DEFAULT '0' NOT NULL, added BIGINT DEFAULT '0' NOT NULL,
    updated BIGINT DEFAULT '0' NOT NULL, deleted BIGINT DEFAULT '0' NOT NULL, unchanged BIGINT DEFAULT '0' NOT NULL,
    tobedeleted BIGINT DEFAULT '0' NOT NULL, rejected BIGINT DEFAULT '0' NOT NULL, pages INTEGER DEFAULT '0' NOT NULL,
    seconds FLOAT DEFAULT '0' NOT NULL,
    CONSTRAINT pk_import_resource_counts PRIMARY KEY (import_id, resource)
);
CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at {ts} NOT NULL, PRIMARY KEY (version));
INSERT INTO schema_version VALUES (1, CURRENT_TIMESTAMP);
INSERT INTO import_runs (district_id, run_id, school_year, sync_mode, status, started_at, finished_at)
VALUES ('springfield', 'old-run', 2027, 'full', 'published', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),
       ('springfield', 'old-run-2', 2027, 'delta', 'failed', CURRENT_TIMESTAMP, NULL);
INSERT INTO import_resource_counts (import_id, resource, batches, fetched, added) VALUES (1, 'users', 1, 5, 5);
"""


def test_create_schema_upgrades_a_version_1_database(warehouse_url: str) -> None:
    engine = sa.create_engine(warehouse_url)
    dialect = engine.dialect.name
    script = V1_DDL[dialect] + V1_COMMON.replace("{ts}", "DATETIME" if dialect == "sqlite" else "TIMESTAMPTZ")
    with engine.begin() as conn:
        for statement in filter(str.strip, script.split(";")):
            conn.exec_driver_sql(statement)
    with engine.connect() as conn, pytest.raises(sa.exc.IntegrityError):  # version 1 knows no 'held'
        conn.exec_driver_sql("UPDATE import_runs SET status = 'held' WHERE import_id = 2")
    engine.dispose()

    wh = Warehouse(warehouse_url)
    try:
        assert wh.create_schema() == SCHEMA_VERSION  # every later step runs too (v3: test_rollover_warehouse)
        assert wh.create_schema() == SCHEMA_VERSION  # idempotent once upgraded
        with wh.engine.connect() as conn:
            versions = list(conn.execute(sa.text("SELECT version FROM schema_version ORDER BY 1")).scalars())
            assert versions == list(range(1, SCHEMA_VERSION + 1))
            inspector = sa.inspect(conn)
            assert {"rejected_records", "import_field_changes"} <= set(inspector.get_table_names())
            assert {ix["name"] for ix in inspector.get_indexes("import_runs")} == {
                "ix_import_runs_run",
                "ix_import_runs_district",
            }
        old = wh.get_import(1)
        assert (old.status, old.run_id, old.hold_reason) == ("published", "old-run", None)
        assert wh.resource_counts(1)["users"]["quarantined"] == 0
        import_id = wh.begin_import("springfield", "new-run", YEAR)
        assert import_id == 3  # ids continue after the copied rows
        wh.stage(import_id, "users", [user(1)])
        wh.hold_import(import_id, "thresholds")
        assert wh.held_import("springfield").import_id == import_id  # type: ignore[union-attr]
        wh.mark_dry_run(wh.begin_import("springfield", "dry", YEAR))
        with wh.engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):
            conn.execute(sa.text("UPDATE import_runs SET status = 'bogus' WHERE import_id = 1"))
        wh.publish(import_id, override=True, overridden_by="admin")
        assert wh.get_import(import_id).overridden_by == "admin"
    finally:
        wh.dispose()


# ------------------------------------------------------------------------ bad data is a record-level problem


def _district() -> District:
    return District(
        id="springfield",
        name="Springfield",
        client_id_env="SPRINGFIELD_ID",
        client_secret_env="SPRINGFIELD_SECRET",
        api_host="sis.example.org",
        app_name="app",
    )


def _validated_stage(
    wh: Warehouse, import_id: int, resource_name: str, records: list[dict[str, Any]]
) -> None:
    """What the sync does per batch: validate, stage the valid records, quarantine the rest."""
    checked = validate_batch(_district(), resource_name, records)
    wh.stage(import_id, resource_name, checked.valid)
    wh.record_rejects(import_id, [*checked.rejects, *checked.warnings])


def test_a_nul_in_one_record_quarantines_that_record_and_publishes_the_rest(wh: Warehouse) -> None:
    sync(wh, {"users": [user(1), user(2), user(3)]})
    import_id = wh.begin_import("springfield", "run", YEAR)
    _validated_stage(
        wh, import_id, "users", [user(1, familyName="New"), user(2, givenName="A\x00da"), user(3), user(4)]
    )
    counts = wh.publish(import_id)["users"]  # Postgres refused the whole COPY here before
    assert (counts.added, counts.updated, counts.deleted, counts.unchanged) == (1, 1, 0, 1)
    [reject] = wh.rejects(import_id)
    assert (reject.sourced_id, reject.field, reject.check, reject.value) == (
        "usr-2",
        "givenName",
        "nul_character",
        "A\\x00da",
    )
    assert reject.raw == user(2, givenName="A\ufffdda")  # stored safely: neither database takes the NUL
    assert "'springfield'" in reject.message and "'givenName'" in reject.message
    published = {
        sid: (given, deleted)
        for sid, given, deleted in rows(wh, "users", "sourced_id", "given_name", "deleted_at IS NULL")
    }
    assert published == {"usr-1": ("Ada", 1), "usr-2": ("Ada", 1), "usr-3": ("Ada", 1), "usr-4": ("Ada", 1)}
    assert wh.resource_counts(import_id)["users"]["rejected"] == 1


def test_undecodable_text_in_a_reject_is_stored_safely(wh: Warehouse) -> None:
    import_id = wh.begin_import("springfield", "run", YEAR)
    raw = user(5, familyName="Jos\udce9", **{"k\udcff": [10**30, "\ud800"]})
    _validated_stage(wh, import_id, "users", [raw])
    rejects = wh.rejects(import_id)
    assert sorted((r.field, r.check, r.value) for r in rejects) == [
        ("familyName", "invalid_utf8", "Jos\\xe9"),
        ("k\\xff", "invalid_utf8", "k\\xff"),
        ("k\\xff[0]", "number_out_of_range", str(10**30)),
        ("k\\xff[1]", "invalid_utf8", "\\ud800"),
    ]
    assert rejects[0].raw == user(5, familyName="Jos\ufffd", **{"k\ufffd": [str(10**30), "\ufffd"]})
    assert wh.rejected_record_counts(import_id) == {"users": 1}


def test_a_conflicting_duplicate_withdraws_the_staged_copy_and_deletes_nothing(wh: Warehouse) -> None:
    sync(wh, {"users": [user(1), user(2), user(3)]})
    before = rows(wh, "users", "sourced_id", "family_name", "record_hash", "deleted_at IS NULL")
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [user(1), user(2, familyName="First copy"), user(3)])  # page 1, staged
    other = user(2, familyName="Second copy")  # page 3: same sourcedId, other content
    issue = RecordIssue("usr-2", CONFLICTING_DUPLICATE, other, withdraw_earlier=True)
    removed = wh.reject_staged(import_id, issue_rejects("springfield", "users", [issue]))
    assert removed == 1
    rejects = wh.rejects(import_id)
    assert [(r.sourced_id, r.field, r.check) for r in rejects] == [
        ("usr-2", "sourcedId", "conflicting_duplicate")
    ] * 2
    assert [r.raw for r in rejects] == [user(2, familyName="First copy"), other]  # every copy kept for review
    counts = wh.publish(import_id)["users"]
    assert (counts.unchanged, counts.deleted, counts.quarantined) == (2, 0, 1)
    assert rows(wh, "users", "sourced_id", "family_name", "record_hash", "deleted_at IS NULL") == before
    assert wh.rejected_record_counts(import_id) == {"users": 1}


def test_identical_repeats_the_client_dropped_count_as_duplicates(wh: Warehouse) -> None:
    import_id = wh.begin_import("springfield", "run", YEAR)
    wh.stage(import_id, "users", [user(1), user(2)])
    wh.record_fetch_stats(import_id, "users", pages=2, seconds=0.1, dropped_duplicates=3)
    assert wh.diff(import_id, "users") == ChangeCounts(fetched=5, added=2, duplicates=3)
    wh.publish(import_id)
    assert wh.resource_counts(import_id)["users"]["duplicates"] == 3


def test_a_record_whose_sourced_id_cannot_be_read_blocks_every_deletion_of_its_resource(
    wh: Warehouse,
) -> None:
    """usr-2's id arrives with a NUL in it: quarantined under its visible form, which matches no published
    record. Which published record it stands for cannot be told, so the full import infers no vanished
    users at all (usr-2 nor usr-3); it still applies an explicit tobedeleted, and other resources delete
    as usual. The change summary, the school summary and the publish agree."""
    sync(wh, {"users": [user(1), user(2), user(3), user(4)], "enrollments": [enrollment(1), enrollment(2)]})
    import_id = wh.begin_import("springfield", "run", YEAR)  # full
    _validated_stage(
        wh, import_id, "users", [user(1), user(2, sourcedId="usr\x00-2"), user(4, status="tobedeleted")]
    )
    _validated_stage(wh, import_id, "enrollments", [enrollment(1)])
    [reject] = wh.rejects(import_id)
    assert (reject.sourced_id, reject.field, reject.check) == ("usr\\x00-2", "sourcedId", "nul_character")
    summary = wh.change_summary(import_id).set_index("resource")
    assert (int(summary.loc["users", "deleted"]), int(summary.loc["enrollments", "deleted"])) == (1, 1)
    schools = wh.school_summary(import_id)
    assert int(schools[schools.resource == "users"]["drop"].sum()) == 1  # usr-4 only
    counts = wh.publish(import_id)
    assert (counts["users"].deleted, counts["enrollments"].deleted) == (
        1,
        1,
    )  # usr-4 tobedeleted; enr-2 vanished
    alive = {row[0] for row in rows(wh, "users", "sourced_id", "deleted_at IS NULL") if row[1]}
    assert alive == {"usr-1", "usr-2", "usr-3"}
