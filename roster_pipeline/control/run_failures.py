"""A failed sync run (SIS down, bad credentials, a crash, a killed or canceled run — not a held import):
close its import, pause the district and tell the admins.

The email is the Check Your Data layout with the run's error as the failed check, keyed in the ledger
by the run's *root* run id (``<district>:run-<root_run_id>:run_failure``), so the retries of one run
produce one email.  The ledger row doubles as the "already handled" marker: a reset sensor cursor
re-reads old failures but never re-pauses a district an admin has resumed since.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage

from roster_pipeline.control import store
from roster_pipeline.control.dead_runs import DeadRun
from roster_pipeline.control.notifier import Delivery, send_once
from roster_pipeline.control.reports import run_failure_report
from roster_pipeline.control.store import SENSOR_ACTOR, pause_district
from roster_pipeline.notify import email_from, render_check_your_data
from roster_pipeline.notify.scrub import secret_env_names_for
from roster_pipeline.notify.sender import Sender
from roster_pipeline.notify.settings import NotifySettings
from roster_pipeline.registry.districts import District, Registry
from roster_pipeline.warehouse import Warehouse


def run_failure_key(district_id: str, root_run_id: str) -> str:
    return f"{district_id}:run-{root_run_id}:run_failure"


def _send(
    warehouse: Warehouse,
    district: District,
    key: str,
    detail: dict,
    sender: Callable[[], Sender],
    settings: NotifySettings,
    now: datetime | None,
) -> Delivery | None:
    started = datetime.fromisoformat(detail["started_at"]) if detail.get("started_at") else None

    def build() -> EmailMessage:
        report = run_failure_report(
            district, detail["run_id"], detail["error"], detail.get("import_id"), started, detail.get("step")
        )
        return render_check_your_data(
            report, district.admin_emails, email_from(), secret_env_names=secret_env_names_for(district)
        )

    return send_once(
        warehouse.engine,
        key,
        kind="run_failure",
        district_id=district.id,
        import_id=detail.get("import_id"),
        build=build,
        sender=sender,
        settings=settings,
        now=now,
        detail=detail,
    )


def handle_run_failure(
    warehouse: Warehouse,
    district: District,
    *,
    run_id: str,
    root_run_id: str,
    error: str,
    import_id: int | None,
    started_at: datetime | None,
    sender: Callable[[], Sender],
    settings: NotifySettings,
    now: datetime | None = None,
    step: str | None = None,
    reason: str | None = None,
) -> list[str]:
    key = run_failure_key(district.id, root_run_id)
    if store.get_notification(warehouse.engine, key) is not None:
        return []
    reason = reason or f"sync run {run_id} failed{f' during {step}' if step else ''}: {error}"
    lines = []
    if pause_district(
        warehouse.engine, district.id, by=SENSOR_ACTOR, reason=reason, import_id=import_id, run_id=run_id
    ):
        store.record_action(
            warehouse.engine, district.id, "pause", SENSOR_ACTOR, import_id=import_id, outcome=reason[:2000]
        )
        lines.append(f"district {district.id} paused: {reason}")
    detail = {
        "run_id": run_id,
        "error": error[:4000],
        "import_id": import_id,
        "step": step,
        "started_at": started_at.isoformat() if started_at else None,
    }
    delivery = _send(warehouse, district, key, detail, sender, settings, now)
    if delivery is not None:
        lines.append(delivery.line())
    return lines


def settle_dead_run(
    warehouse: Warehouse,
    district: District,
    dead: DeadRun,
    sender: Callable[[], Sender],
    settings: NotifySettings,
    now: datetime | None = None,
) -> list[str]:
    """An import whose run is over without closing it: fail it (cause kept), clear its staging, and — unless
    Dagster retries the run — pause the district and send Check Your Data once (keyed by the root run)."""
    lines = []
    if warehouse.close_failed_import(dead.import_id, dead.cause):
        lines.append(
            f"district {district.id}: import {dead.import_id} failed, its staging cleared: {dead.cause}"
        )
    if dead.will_retry:
        return lines
    run = warehouse.get_import(dead.import_id)
    return lines + handle_run_failure(
        warehouse,
        district,
        run_id=dead.run_id,
        root_run_id=dead.root_run_id,
        error=run.error or dead.cause,
        import_id=dead.import_id,
        started_at=run.started_at,
        sender=sender,
        settings=settings,
        now=now,
        step=dead.step,
        reason=dead.cause,
    )


def retry_run_failure_emails(
    warehouse: Warehouse,
    registry: Registry,
    sender: Callable[[], Sender],
    settings: NotifySettings,
    now: datetime | None = None,
) -> list[Delivery]:
    """Failed run_failure emails are rebuilt from the ledger's ``detail`` and retried when due."""
    out = []
    for row in store.retryable_notifications(warehouse.engine, "run_failure", settings.max_attempts):
        district = registry.districts.get(row.district_id)
        if district is None or not row.detail:
            continue
        delivery = _send(warehouse, district, row.idempotency_key, row.detail, sender, settings, now)
        if delivery is not None:
            out.append(delivery)
    return out
