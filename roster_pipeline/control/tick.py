"""One pass of the control loop over the warehouse's imports (the Dagster sensor's main work, Dagster-free).

For each import at or above the cursor's floor:

- ``held`` → pause the district (who: the sensor, why: the hold reason, which import and run) and send
  the Check Your Data email;
- ``published`` → send the Import Results email once the run that published it is over (its last steps
  rebuild the derived tables, whose warnings the email reports), and resume a paused district whose
  reprocess import this is (an import started after the pause and newer than the held one);
- ``running`` / ``staged`` whose run is over (killed, canceled, gone: ``dead_runs``) → fail it with the
  cause, clear its staging, pause the district and send Check Your Data once.

The floor then moves up to the oldest import that is not settled yet (still running, held, or with an
email still to send or retry), so every tick reads only a handful of rows, while the ledger's unique
idempotency keys make the emails exactly-once whatever the cursor says (a reset cursor is harmless).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from roster_pipeline.control import store
from roster_pipeline.control.dead_runs import OPEN_IMPORT_STATUSES, RunObservation, dead_run, still_running
from roster_pipeline.control.notifier import Delivery, send_once
from roster_pipeline.control.reports import check_your_data_report, import_results_report
from roster_pipeline.control.run_failures import settle_dead_run
from roster_pipeline.control.store import SENSOR_ACTOR, get_state, now_utc, pause_district, resume_district
from roster_pipeline.notify import email_from, idempotency_key, render_check_your_data, render_import_results
from roster_pipeline.notify.content import EmailKind
from roster_pipeline.notify.scrub import secret_env_names_for
from roster_pipeline.notify.sender import Sender
from roster_pipeline.notify.settings import NotifySettings
from roster_pipeline.registry.districts import District, Registry
from roster_pipeline.warehouse import ImportRun, Warehouse

if TYPE_CHECKING:  # a type only: the SQL is in control.store and warehouse/
    from roster_pipeline.warehouse.engine import Engine

log = logging.getLogger("roster_pipeline.control")

UNSETTLED_STATUSES = ("running", "staged", "held")
Observer = Callable[[str], RunObservation | None]  # run id → what the orchestrator says about that run


@dataclass
class TickReport:
    lines: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    changed: bool = False  # a district was paused or resumed
    floor: int | None = None

    @property
    def failed(self) -> list[Delivery]:
        return [d for d in self.deliveries if not d.ok]


def _settled(engine: Engine, run: ImportRun, settings: NotifySettings) -> bool:
    if run.status in UNSETTLED_STATUSES:
        return False
    if run.status != "published":
        return True
    row = store.get_notification(engine, idempotency_key(run.district_id, run.import_id, "import_results"))
    return row is not None and (row.status in ("sent", "sending") or row.attempts >= settings.max_attempts)


#: What each email about an import is made of: the report built from the warehouse, and its renderer.
EMAILS_ABOUT_AN_IMPORT: dict[EmailKind, tuple[Callable[..., Any], Callable[..., EmailMessage]]] = {
    "check_your_data": (check_your_data_report, render_check_your_data),
    "import_results": (import_results_report, render_import_results),
}


def email_about_import(
    kind: EmailKind,
    warehouse: Warehouse,
    district: District,
    run: ImportRun,
    sender: Callable[[], Sender],
    settings: NotifySettings,
    now: datetime | None = None,
) -> Delivery | None:
    """Send the ``kind`` email (Check Your Data or Import Results) about ``run`` once, through the ledger.

    The message is built only when the ledger says it is due, so an email already sent costs no report.
    """
    build_report, render = EMAILS_ABOUT_AN_IMPORT[kind]

    def build() -> EmailMessage:
        return render(
            build_report(warehouse, district, run),
            district.admin_emails,
            email_from(),
            secret_env_names=secret_env_names_for(district),
        )

    return send_once(
        warehouse.engine,
        idempotency_key(district.id, run.import_id, kind),
        kind=kind,
        district_id=district.id,
        import_id=run.import_id,
        build=build,
        sender=sender,
        settings=settings,
        now=now,
    )


def pause_for_held(warehouse: Warehouse, run: ImportRun) -> str | None:
    """Pause the district on its held import; a line for the log when that changed anything."""
    latest = warehouse.held_import(run.district_id)
    if latest is None or latest.import_id != run.import_id:
        return None  # an older held import; the district points at the newest one
    reason = f"import {run.import_id} held by its checks: {run.hold_reason or 'checks failed'}"
    if not pause_district(
        warehouse.engine,
        run.district_id,
        by=SENSOR_ACTOR,
        reason=reason,
        import_id=run.import_id,
        run_id=run.run_id,
    ):
        return None
    store.record_action(
        warehouse.engine,
        run.district_id,
        "pause",
        SENSOR_ACTOR,
        import_id=run.import_id,
        outcome=reason[:2000],
    )
    return f"district {run.district_id} paused: {reason}"


def resume_after_reprocess(warehouse: Warehouse, run: ImportRun) -> str | None:
    """A paused district whose newer import published (a reprocess run) resumes."""
    state = get_state(warehouse.engine, run.district_id)
    if not state.paused or run.import_id <= (state.import_id or 0):
        return None
    if state.paused_at is not None and run.started_at is not None:
        started = (
            run.started_at if run.started_at.tzinfo else run.started_at.replace(tzinfo=state.paused_at.tzinfo)
        )
        if started < state.paused_at:
            return None
    resume_district(warehouse.engine, run.district_id)
    outcome = f"import {run.import_id} (reprocess) passed its checks and was published; district resumed"
    store.record_action(
        warehouse.engine, run.district_id, "resume", SENSOR_ACTOR, import_id=run.import_id, outcome=outcome
    )
    return f"district {run.district_id}: {outcome}"


def settle_if_dead(
    warehouse: Warehouse,
    district: District,
    run: ImportRun,
    observe: Observer,
    sender: Callable[[], Sender],
    settings: NotifySettings,
    now: datetime,
) -> tuple[ImportRun, list[str]]:
    """An open import whose run is over is failed, its staging cleared, the district paused and emailed."""
    if run.status not in OPEN_IMPORT_STATUSES or not run.run_id:
        return run, []
    dead = dead_run(run, observe(run.run_id), now, settings.missing_run_grace)
    if dead is None:
        return run, []
    lines = settle_dead_run(warehouse, district, dead, sender, settings, now)
    return warehouse.get_import(run.import_id), lines


def process_imports(
    warehouse: Warehouse,
    registry: Registry,
    sender: Callable[[], Sender],
    settings: NotifySettings,
    floor: int | None,
    now: datetime | None = None,
    observe: Observer | None = None,
) -> TickReport:
    """``observe`` (the run's state in the orchestrator) lets open imports of dead runs be settled."""
    now = now or now_utc()
    report = TickReport(floor=floor)
    runs = warehouse.imports_from(floor, now - settings.lookback)
    unsettled: list[int] = []
    for run in runs:
        district = registry.districts.get(run.district_id)
        if district is None:
            continue  # removed from the registry: nobody to email, nothing to pause
        if observe is not None:
            run, lines = settle_if_dead(warehouse, district, run, observe, sender, settings, now)
            if lines:
                report.lines += lines
                report.changed = True
        if run.status == "held":
            line = pause_for_held(warehouse, run)
            if line:
                report.lines.append(line)
                report.changed = True
            delivery = email_about_import("check_your_data", warehouse, district, run, sender, settings, now)
        elif run.status == "published":
            line = resume_after_reprocess(warehouse, run)
            if line:
                report.lines.append(line)
                report.changed = True
            if observe is not None and run.run_id and still_running(observe(run.run_id)):
                delivery = None  # the derived tables are still being rebuilt: email on a later tick
            else:
                delivery = email_about_import(
                    "import_results", warehouse, district, run, sender, settings, now
                )
        else:
            delivery = None
        if delivery is not None:
            report.deliveries.append(delivery)
            report.lines.append(delivery.line())
        if not _settled(warehouse.engine, run, settings):
            unsettled.append(run.import_id)
    if unsettled:
        report.floor = min(unsettled)
    elif runs:
        report.floor = runs[-1].import_id + 1
    return report
