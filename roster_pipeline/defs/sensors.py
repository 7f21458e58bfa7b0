"""The control sensor: pauses districts whose import was held or whose sync run failed or died (killed,
canceled: its open import is failed and its staging cleared), emails the admins (Check Your Data, Import
Results), launches requested reprocess runs, and keeps the ``district_status`` asset up to date.

Running by default, every 30 s (``ROSTER_CONTROL_SENSOR_INTERVAL_SECONDS``, read when the code location
loads, changes that; Dagster's sensor daemon looks at its sensors every 5 s, so less than 5 s gains
nothing).  Its cursor holds the lowest import not yet settled and the event
storage cursor of RUN_FAILURE events; emails are exactly-once through the notifications ledger's unique
idempotency keys (see ``roster_pipeline.control.store`` for the at-most-once choice), so a lost or reset
cursor (sensor or daemon restart) never sends an email twice.  Email trouble never fails anything: it
is a ``failed`` ledger row retried on later ticks, a warning in the sensor log and the skip reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import dagster as dg

from roster_pipeline.control import store
from roster_pipeline.control.dead_runs import OPEN_IMPORT_STATUSES, dead_run, step_label
from roster_pipeline.control.notifier import Delivery
from roster_pipeline.control.run_failures import handle_run_failure, retry_run_failure_emails, settle_dead_run
from roster_pipeline.control.store import all_states, clear_pending, now_utc
from roster_pipeline.control.tick import process_imports
from roster_pipeline.control.undo_emails import email_undone_imports
from roster_pipeline.notify import SmtpSender, sender_from_env
from roster_pipeline.notify.sender import Sender
from roster_pipeline.notify.settings import NotifySettings
from roster_pipeline.pipeline.run_tags import (
    PARTITION_TAG,
    REVIEW_ACTION_ID_TAG,
    REVIEW_ACTION_TAG,
    ROOT_RUN_TAG,
    WILL_RETRY_TAG,
)
from roster_pipeline.registry.districts import Registry
from roster_pipeline.warehouse import Warehouse

from .district_status import district_status_event
from .jobs import SYNC_JOB_NAME
from .resources import DistrictRegistryResource, WarehouseResource
from .run_watch import observe_run
from .schedules import district_tags

CONTROL_SENSOR_NAME = "district_control"
FAILURES_PER_TICK = 100
CONTROL_SENSOR_INTERVAL_ENV = "ROSTER_CONTROL_SENSOR_INTERVAL_SECONDS"
DEFAULT_CONTROL_SENSOR_INTERVAL_SECONDS = 30


def control_sensor_interval(environ: Mapping[str, str] | None = None) -> int:
    """Seconds between two ticks of the control sensor: ``ROSTER_CONTROL_SENSOR_INTERVAL_SECONDS``, else 30.

    A shorter interval pauses a district and sends its emails sooner after an import is held (the
    end-to-end test runs the daemon at 5 s); every tick reads the warehouse's import and state tables, so
    production keeps the default.  A malformed value stops the code location from loading with a message
    naming the variable, rather than silently falling back to a default nobody chose.
    """
    env = os.environ if environ is None else environ
    text = env.get(CONTROL_SENSOR_INTERVAL_ENV, "").strip()
    if not text:
        return DEFAULT_CONTROL_SENSOR_INTERVAL_SECONDS
    try:
        seconds = int(text)
    except ValueError:
        raise ValueError(
            f"{CONTROL_SENSOR_INTERVAL_ENV} must be a whole number of seconds, got {text!r}"
        ) from None
    if seconds < 1:
        raise ValueError(f"{CONTROL_SENSOR_INTERVAL_ENV} must be at least 1, got {seconds}")
    return seconds


@dataclass
class ControlCursor:
    import_floor: int | None = None
    failures: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> ControlCursor:
        if not text:
            return cls()
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError):
            return cls()  # an unreadable cursor is a reset: the ledger keeps emails exactly-once

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def smtp_sender_factory(settings: NotifySettings) -> Callable[[], Sender]:
    """One sender per tick, built on first use; SMTP gets one attempt per tick (retries are across ticks)."""
    made: list[Sender] = []

    def get() -> Sender:
        if not made:
            sender = sender_from_env(settings.outbox_dir)
            if isinstance(sender, SmtpSender):
                sender.attempts = 1
            made.append(sender)
        return made[0]

    return get


def _error_chain(error: object) -> list[object]:
    chain: list[object] = []
    while error is not None and len(chain) < 10:
        chain.append(error)
        error = getattr(error, "cause", None)
    return chain


@dataclass(frozen=True)
class RunFailureText:
    """What a failed run's events say: the first failed step, its error, and whether it was the refusal of
    a paused district's run (already paused and emailed)."""

    step_key: str | None
    error: str
    refused: bool = False


def run_failure_text(instance: dg.DagsterInstance, run_id: str) -> RunFailureText:
    """The first step failure is the cause (later ones are its consequences)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        data = event.step_failure_data
        if data is None or data.error is None:
            continue
        chain = _error_chain(data.error)
        if any(getattr(e, "cls_name", None) == "DistrictPausedError" for e in chain):
            return RunFailureText(event.step_key, "refused: district paused", True)
        deepest = chain[-1]
        text = (getattr(deepest, "message", "") or "").strip().splitlines()
        step = event.step_key or "a step"
        return RunFailureText(
            event.step_key, f"{step}: {text[0] if text else getattr(deepest, 'cls_name', 'error')}"
        )
    failures = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    message = failures[-1].event_log_entry.message if failures else None
    return RunFailureText(None, message or "the run failed (no step reported an error)")


def _run_failure_lines(
    context: dg.SensorEvaluationContext,
    cursor: ControlCursor,
    wh: Warehouse,
    registry: Registry,
    sender: Callable[[], Sender],
    settings: NotifySettings,
) -> list[str]:
    instance = context.instance
    result = instance.fetch_run_status_changes(
        dg.DagsterEventType.RUN_FAILURE, limit=FAILURES_PER_TICK, cursor=cursor.failures, ascending=True
    )
    lines: list[str] = []
    for record in result.records:
        run = instance.get_run_by_id(record.run_id)
        if run is None or run.job_name != SYNC_JOB_NAME:
            continue  # not a district sync
        district = registry.districts.get(run.tags.get(PARTITION_TAG, ""))
        if district is None:
            continue
        import_id = wh.import_for_run(district.id, run.run_id)
        imported = wh.get_import(import_id) if import_id is not None else None
        if imported is not None and imported.status in ("held", "published", "dry_run", "discarded"):
            continue  # the checks decided (held) or it published after all: the import scan handles it
        if run.tags.get(WILL_RETRY_TAG) == "true":
            if imported is not None and imported.status == "failed":
                wh.close_failed_import(imported.import_id, "")  # this attempt is over: its staging goes
            continue  # Dagster retries it: only the final attempt pauses and emails
        if imported is not None and imported.status in OPEN_IMPORT_STATUSES:
            dead = dead_run(
                imported, observe_run(instance, run.run_id), now_utc(), settings.missing_run_grace
            )
            if dead is not None:  # the worker died: the import scan usually gets there first
                lines += settle_dead_run(wh, district, dead, sender, settings)
            continue
        failure = run_failure_text(instance, run.run_id)
        if failure.refused:
            continue  # the guard refused a manual run of a paused district: already paused and emailed
        if imported is not None:
            wh.close_failed_import(imported.import_id, failure.error)  # the run is over: its staging goes
        started = getattr(instance.get_run_record_by_id(run.run_id), "start_time", None)
        lines += handle_run_failure(
            wh,
            district,
            run_id=run.run_id,
            root_run_id=run.tags.get(ROOT_RUN_TAG, run.run_id),
            error=(imported.error if imported is not None and imported.error else failure.error),
            import_id=import_id,
            started_at=_datetime(started),
            step=step_label(failure.step_key),
            sender=sender,
            settings=settings,
        )
    if result.records:
        cursor.failures = result.cursor
    return lines


def _datetime(timestamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else None


def _reprocess_requests(
    context: dg.SensorEvaluationContext, wh: Warehouse, registry: Registry
) -> list[dg.RunRequest]:
    """Reprocess asked by the review_reprocess job: one sync run per request (run_key makes it idempotent)."""
    requests = []
    for district_id, state in all_states(wh.engine).items():
        if (
            state.pending_action != "reprocess"
            or state.pending_action_id is None
            or district_id not in registry.districts
        ):
            continue
        action_id = str(state.pending_action_id)
        launched = context.instance.get_runs(dg.RunsFilter(tags={REVIEW_ACTION_ID_TAG: action_id}), limit=1)
        if launched:
            clear_pending(wh.engine, district_id, state.pending_action_id)
            continue
        requests.append(
            dg.RunRequest(
                partition_key=district_id,
                run_key=f"reprocess-{district_id}-{action_id}",
                tags={
                    REVIEW_ACTION_TAG: "reprocess",
                    REVIEW_ACTION_ID_TAG: action_id,
                    **district_tags(registry.get(district_id)),
                },
            )
        )
    return requests


def email_name(kind: str) -> str:
    """check_your_data -> Check Your Data: the email's name as its subject line says it."""
    return kind.replace("_", " ").title()


def tick_summary(
    paused: dict[str, int | None], resumed: list[str], deliveries: list[Delivery], other_lines: int
) -> str:
    """One line for a tick that launched no run: the districts it paused or resumed and the emails it sent
    or could not send, e.g. "paused riverside_usd (held import 12); emailed Check Your Data to
    riverside_usd (import 12); no run to launch"."""
    parts = [f"paused {d}" + (f" (held import {i})" if i is not None else "") for d, i in paused.items()]
    parts += [f"resumed {d}" for d in resumed]
    sent = [
        f"{email_name(d.kind)} to {d.district_id}" + (f" (import {d.import_id})" if d.import_id else "")
        for d in deliveries
        if d.ok
    ]
    if sent:
        parts.append("emailed " + ", ".join(sent))
    failed = [d for d in deliveries if not d.ok]
    if failed:
        parts.append(
            f"{len(failed)} email(s) NOT sent, retried on a later tick: "
            + "; ".join(f"{email_name(d.kind)} to {d.district_id}: {d.error or '?'}" for d in failed)
        )
    if not parts:
        # e.g. a dead run's import failed and its staging cleared: the tick's log has the details
        return (
            f"{other_lines} action(s) taken, see this tick's log; no run to launch"
            if other_lines
            else "nothing new"
        )
    return ("; ".join(parts) + "; no run to launch")[:1500]


def build_control_sensor(interval_seconds: int | None = None) -> dg.SensorDefinition:
    """The control sensor, ticking every ``interval_seconds`` (default: ``control_sensor_interval()``)."""

    @dg.sensor(
        name=CONTROL_SENSOR_NAME,
        job_name=SYNC_JOB_NAME,
        minimum_interval_seconds=interval_seconds or control_sensor_interval(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Pauses a district whose import was held by its checks or whose sync run failed or died (its open "
            "import is then failed and its staging cleared), emails its admins (Check Your Data; Import "
            "Results after every published import; Import Undone after an undo; exactly once per import), "
            "launches "
            "the sync runs that review_reprocess asks for, and records district_status."
        ),
    )
    def district_control(
        context: dg.SensorEvaluationContext, warehouse: WarehouseResource, registry: DistrictRegistryResource
    ) -> dg.SensorResult:
        settings = NotifySettings.from_env()
        wh, reg = warehouse.get(), registry.get()
        cursor = ControlCursor.parse(context.cursor)
        first_tick = context.cursor is None
        sender = smtp_sender_factory(settings)

        paused_before = {d for d, s in all_states(wh.engine).items() if s.paused}
        report = process_imports(
            wh,
            reg,
            sender,
            settings,
            cursor.import_floor,
            observe=lambda run_id: observe_run(context.instance, run_id),
        )
        cursor.import_floor = report.floor
        lines = report.lines + _run_failure_lines(context, cursor, wh, reg, sender, settings)
        retried = retry_run_failure_emails(wh, reg, sender, settings)
        lines += [d.line() for d in retried]
        failed = report.failed + [d for d in retried if not d.ok]
        undone = email_undone_imports(wh, reg, sender, settings)  # Import Undone, after review_undo
        lines += [d.line() for d in undone]
        failed += [d for d in undone if not d.ok]
        requests = _reprocess_requests(context, wh, reg)
        for line in lines:
            (context.log.warning if "NOT sent" in line else context.log.info)(line)
        for row in store.stuck_notifications(wh.engine):
            context.log.warning(
                f"{row.kind} email {row.idempotency_key} was being sent when the process stopped; it is not "
                "re-sent automatically (at most once) — check the recipient's mailbox, then release it with "
                "roster_pipeline.control.store.release_stuck if it never arrived"
            )
        states_now = all_states(wh.engine)
        paused_now = {d for d, s in states_now.items() if s.paused}
        changed = report.changed or first_tick or paused_now != paused_before or bool(requests)
        events = [district_status_event(wh, reg)] if changed else []
        # Dagster 1.13 records every tick without run requests as "Skipped", and its skip reason is the only
        # text the Ticks table shows: it says what this tick did, not how many lines it logged.
        skip = (
            None
            if requests
            else tick_summary(
                paused={d: states_now[d].import_id for d in sorted(paused_now - paused_before)},
                resumed=sorted(paused_before - paused_now),
                deliveries=report.deliveries + retried + undone,
                other_lines=len(lines),
            )
        )
        return dg.SensorResult(
            run_requests=requests, cursor=cursor.dump(), asset_events=events, skip_reason=skip
        )

    return district_control
