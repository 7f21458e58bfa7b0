"""The Import Undone email, sent by the control sensor like every other email (exactly once, ledger keyed
``<district>:<import>:import_undone``).

An undone import is usually long settled (its Import Results went out days ago), below the sensor's
import cursor, so undone imports are found by ``undone_at`` within the look-back window instead; the
ledger makes repeated finds harmless and retries a failed delivery on later ticks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING

from roster_pipeline.control.notifier import Delivery, send_once
from roster_pipeline.control.store import get_state, now_utc
from roster_pipeline.notify import email_from, idempotency_key
from roster_pipeline.notify.scrub import secret_env_names_for
from roster_pipeline.notify.sender import Sender
from roster_pipeline.notify.settings import NotifySettings
from roster_pipeline.notify.undo_email import KIND, ImportUndoneReport, UndoCountsRow, render_import_undone
from roster_pipeline.registry.districts import District, Registry
from roster_pipeline.warehouse import ImportRun, Warehouse

if TYPE_CHECKING:  # a type only: the SQL is in control.store and warehouse/
    pass


def undone_imports(warehouse: Warehouse, since: datetime) -> list[ImportRun]:
    return warehouse.undone_since(since)


def import_undone_report(warehouse: Warehouse, district: District, run: ImportRun) -> ImportUndoneReport:
    """The email's content from what the undo recorded (``import_undo_counts``) and the district's state."""
    counts = warehouse.undo_counts(run.import_id)
    after = warehouse.current_school_year(district.id)
    return ImportUndoneReport(
        district_id=district.id,
        district_name=district.name,
        import_id=run.import_id,
        school_year=run.school_year,
        current_school_year=after,
        undone_by=run.undone_by or "?",
        undone_at=run.undone_at,
        note=run.undo_note,
        forced=bool(run.undo_forced),
        paused=get_state(warehouse.engine, district.id).paused,
        resources=[
            UndoCountsRow(
                r.resource, r.published_before, r.published_after, r.restored, r.removed, r.unarchived
            )
            for r in counts.values()
        ],
        timezone=district.timezone,
    )


def email_import_undone(
    warehouse: Warehouse,
    district: District,
    run: ImportRun,
    sender: Callable[[], Sender],
    settings: NotifySettings,
    now: datetime | None = None,
) -> Delivery | None:
    def build() -> EmailMessage:
        return render_import_undone(
            import_undone_report(warehouse, district, run),
            district.admin_emails,
            email_from(),
            secret_env_names=secret_env_names_for(district),
        )

    return send_once(
        warehouse.engine,
        idempotency_key(district.id, run.import_id, KIND),
        kind=KIND,
        district_id=district.id,
        import_id=run.import_id,
        build=build,
        sender=sender,
        settings=settings,
        now=now,
    )


def email_undone_imports(
    warehouse: Warehouse,
    registry: Registry,
    sender: Callable[[], Sender],
    settings: NotifySettings,
    now: datetime | None = None,
) -> list[Delivery]:
    """One Import Undone email per undone import (within the look-back window), retried while it fails."""
    now = now or now_utc()
    deliveries = []
    for run in undone_imports(warehouse, now - settings.lookback):
        district = registry.districts.get(run.district_id)
        if district is None:
            continue
        delivery = email_import_undone(warehouse, district, run, sender, settings, now)
        if delivery is not None:
            deliveries.append(delivery)
    return deliveries
