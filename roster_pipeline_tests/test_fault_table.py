"""The fault table of docs/operations.md, one parametrized case per row (harness: fault_harness.py, fixture ``fault_rig``).

Each row syncs a tiny simulator district with the fault injected (on the databases ``databases_for``
gives it) as a second import, after a day's changes at the SIS (the first import, the same for every
row, is synced once per worker and database and copied into each row's warehouse: ``FirstImports``), and
requires either exactly the right data or an error naming the district and endpoint with the published
tables untouched; then the fault clears and a rerun must land exactly the right data.  The rows whose fault is the warehouse's own (a
Postgres restart) and the representative rows also run as a first import (``variants_for``): for a
fault at the SIS a first import adds nothing the second does not show, since the client meets the fault
the same way and "published tables untouched" is the stronger promise when something is published.
How the client retries each fault is tested at the client level (test_oneroster_resilience.py); these
add what gets published.
"""

from __future__ import annotations

import pytest

from roster_pipeline_tests.databases import BOTH, one_database
from roster_pipeline_tests.fault_harness import (
    APP,
    FaultRig,
    FaultRow,
    add,
    kill_connection_at,
    no_fault,
    run_fault_row,
    terminate_backends,
)

USERS, CLASSES, ENROLLMENTS, COURSES = "/users", "/classes", "/enrollments", "/courses"
TOKEN = "/oauth2/token"
REFUSED_TOKEN_URL = "http://127.0.0.1:1/campus/oauth2/token?appName=faulty"  # port 1: connection refused


def revoke(rig: FaultRig) -> None:
    rig.server.revoke_tokens()


def expire(rig: FaultRig) -> None:
    rig.server.expire_tokens()


def refuse_token_endpoint(rig: FaultRig) -> None:
    rig.fault_settings["token_url"] = REFUSED_TOKEN_URL


def token_endpoint_dies(rig: FaultRig) -> None:
    """Mid-sync, the SIS revokes every token and its token endpoint goes down for good."""
    rig.server.faults.add(status=503, times=None, path_contains=TOKEN)
    rig.server.revoke_tokens()


def restart_postgres(rig: FaultRig) -> None:
    """Between two staged batches, every connection the warehouse holds dies, as in a Postgres restart."""
    assert terminate_backends(rig.engine) >= 1


def kill_mid_stage(rig: FaultRig) -> None:
    kill_connection_at(
        rig.engine,
        r"UPDATE import_resource_counts",
        inside=lambda: rig.warehouse.staging and rig.warehouse.batches >= 3,
    )


def kill_mid_publish(rig: FaultRig) -> None:
    kill_connection_at(rig.engine, r"UPDATE import_runs SET status", inside=lambda: rig.warehouse.publishing)


FAULT_ROWS: list[FaultRow] = [
    FaultRow(
        "429 with Retry-After", add(status=429, retry_after=1, times=2, path_contains=USERS, after=1), "exact"
    ),
    FaultRow("429 without Retry-After", add(status=429, times=2, path_contains=USERS, after=1), "exact"),
    FaultRow(
        "429 that never clears",
        add(status=429, retry_after=0, times=None, path_contains=USERS),
        "error",
        USERS,
    ),
    FaultRow("502", add(status=502, times=2, path_contains=ENROLLMENTS, after=1), "exact"),
    FaultRow(
        "503", add(status=503, times=2, path_contains=ENROLLMENTS, after=1), "exact", both_databases=True
    ),
    FaultRow("504", add(status=504, times=2, path_contains=ENROLLMENTS, after=1), "exact"),
    FaultRow(
        "503 that never clears",
        add(status=503, times=None, path_contains=CLASSES),
        "error",
        CLASSES,
        both_databases=True,
    ),
    FaultRow(
        "slow past the timeout",
        add(kind="slow", delay_seconds=1.5, times=2, path_contains=USERS, after=1),
        "exact",
        settings={"timeout_seconds": 0.5},
    ),
    FaultRow(
        "slow past the timeout, always",
        add(kind="slow", delay_seconds=1.0, times=None, path_contains=COURSES),
        "error",
        COURSES,
        settings={"timeout_seconds": 0.3},
    ),
    FaultRow("reset, no response", add(kind="reset", times=2, path_contains=USERS, after=1), "exact"),
    FaultRow(
        "reset, no response, always", add(kind="reset", times=None, path_contains=USERS), "error", USERS
    ),
    FaultRow("reset mid-body", add(kind="incomplete", times=2, path_contains=ENROLLMENTS, after=1), "exact"),
    FaultRow(
        "reset mid-body, always",
        add(kind="incomplete", times=None, path_contains=ENROLLMENTS),
        "error",
        ENROLLMENTS,
        both_databases=True,
    ),
    FaultRow("truncated JSON", add(kind="truncate", times=2, path_contains=USERS, after=1), "exact"),
    FaultRow("truncated JSON, always", add(kind="truncate", times=None, path_contains=USERS), "error", USERS),
    FaultRow(
        "missing envelope", add(kind="no_envelope", times=1, path_contains=USERS, after=1), "error", USERS
    ),
    FaultRow(
        "missing envelope, empty 200", add(status=200, times=1, path_contains=CLASSES), "error", CLASSES
    ),
    FaultRow("token revoked mid-sync", no_fault, "exact", during=revoke),
    FaultRow("token expired mid-sync", no_fault, "exact", during=expire),
    FaultRow("token endpoint 503 twice", add(status=503, times=2, path_contains=TOKEN), "exact"),
    FaultRow(
        "token endpoint 503, always", add(status=503, times=None, path_contains=TOKEN), "error", "token"
    ),
    FaultRow("token endpoint refused", refuse_token_endpoint, "error", "token"),
    FaultRow("token endpoint down mid-sync", no_fault, "error", "token", during=token_endpoint_dies),
    FaultRow(
        "Postgres restarted while staging", no_fault, "exact", during=restart_postgres, postgres_only=True
    ),
    FaultRow("Postgres restarted mid-batch", kill_mid_stage, "error", "stage", postgres_only=True),
    FaultRow("Postgres restarted mid-publish", kill_mid_publish, "error", "publish", postgres_only=True),
    FaultRow("500 once", add(status=500, times=1, after=1, path_contains=ENROLLMENTS), "exact"),
    FaultRow("500 that never clears", add(status=500, times=None, path_contains=CLASSES), "error", CLASSES),
    FaultRow(
        "X-Total-Count too high once",
        add(kind="total_count", total_delta=5, times=1, after=1, path_contains=ENROLLMENTS),
        "exact",
    ),
    FaultRow(
        "X-Total-Count too high, always",
        add(kind="total_count", total_delta=5, times=None, path_contains=ENROLLMENTS),
        "error",
        ENROLLMENTS,
    ),
    FaultRow(
        "X-Total-Count too low, always",
        add(kind="total_count", total_delta=-5, times=None, path_contains=ENROLLMENTS),
        "error",
        ENROLLMENTS,
    ),
    FaultRow(
        "X-Total-Count on page 1 below the district, always",
        add(kind="total_count", total=5, offset=0, times=None, path_contains=ENROLLMENTS),
        "error",
        ENROLLMENTS,
    ),
    FaultRow("short page 1 once", add(kind="drop", count=1, offset=0, times=1, path_contains=USERS), "exact"),
    FaultRow(
        "short page 1, always",
        add(kind="drop", count=1, offset=0, times=None, path_contains=USERS),
        "error",
        USERS,
    ),
    FaultRow(
        "records inserted while paging",
        add(
            kind="mutate",
            mutation="add_students",
            mutation_params={"count": 4, "seed": 3},
            times=1,
            path_contains=USERS,
        ),
        "exact",
    ),
]


def databases_for(row: FaultRow) -> tuple[str, ...]:
    """A fault at the SIS reaches the warehouse only as "stage this" or "abandon the import", which the
    warehouse tests cover on both databases, so its row runs once, on the production database (see
    databases.py); a few representative rows also run on the embedded default. A Postgres restart runs on
    Postgres only: an embedded SQLite file has no server to lose. Generated, not skipped: nothing in this
    table ever skips in CI."""
    if row.postgres_only:
        return ("postgres",)
    return BOTH if row.both_databases else one_database()


def variants_for(row: FaultRow) -> tuple[str, ...]:
    """Every row as a second import; a Postgres restart and the representative rows also as a first."""
    return ("first", "second") if row.postgres_only or row.both_databases else ("second",)


ROW_CASES = [
    pytest.param(row, database, variant, id=f"{database}-{row.id}-{variant}")
    for row in FAULT_ROWS
    for database in databases_for(row)
    for variant in variants_for(row)
]


@pytest.mark.parametrize(("row", "warehouse_url", "variant"), ROW_CASES, indirect=["warehouse_url"])
def test_fault_row(row: FaultRow, variant: str, fault_rig, warehouse_url: str) -> None:
    rig = fault_rig.after_first_import(**row.settings) if variant == "second" else fault_rig(**row.settings)
    run_fault_row(rig, row, variant)  # type: ignore[arg-type]


def test_smtp_down_leaves_the_import_as_it_is_and_the_email_is_sent_on_a_later_tick(
    fault_rig, smtp_server
) -> None:
    """SMTP down: the import publishes exactly the right data; its Import Results email fails, is
    recorded as failed, and is sent by a later control tick once the server answers."""
    from datetime import timedelta

    from roster_pipeline.control import store
    from roster_pipeline.control.tick import process_imports
    from roster_pipeline.notify import SmtpSender, SmtpSettings, idempotency_key
    from roster_pipeline.notify.settings import NotifySettings
    from roster_pipeline_tests.smtp_server import free_port

    def sender_at(port: int):
        settings = SmtpSettings.model_validate(
            {
                "host": smtp_server.host,
                "port": port,
                "security": "none",
                "from_address": "roster@example.org",
                "timeout": 5,
            }
        )
        return lambda: SmtpSender(settings, attempts=1)

    rig = fault_rig()
    published = rig.sync()
    rig.assert_truth()
    notify = NotifySettings(retry_after=timedelta(0))
    key = idempotency_key(APP, published.import_id, "import_results")

    down = process_imports(rig.warehouse, rig.registry(), sender_at(free_port()), notify, None)
    assert [d.ok for d in down.deliveries] == [False] and smtp_server.messages == []
    row = store.get_notification(rig.engine, key)
    assert row is not None and row.status == "failed" and row.attempts == 1 and row.last_error
    assert rig.warehouse.get_import(published.import_id).status == "published"
    rig.assert_truth()

    up = process_imports(rig.warehouse, rig.registry(), sender_at(smtp_server.port), notify, down.floor)
    assert [d.ok for d in up.deliveries] == [True]
    assert [m["X-Roster-Idempotency-Key"] for m in smtp_server.messages] == [key]
    assert store.get_notification(rig.engine, key).status == "sent"
    rig.assert_truth()
