"""Send one email through the ledger: claim the key, render, deliver, record. Never raises.

Rendering happens *after* the claim and inside the same guard as sending, so a report that cannot be
built (no admin_emails, a secret found in it) is a visible ``failed`` row, not a crash of the sensor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING

from roster_pipeline.control import store
from roster_pipeline.notify import IDEMPOTENCY_HEADER, deliver
from roster_pipeline.notify.render import message_id_for
from roster_pipeline.notify.sender import Sender
from roster_pipeline.notify.settings import NotifySettings

if TYPE_CHECKING:  # a type only: the SQL is in control.store and warehouse/
    from roster_pipeline.warehouse.engine import Engine

log = logging.getLogger("roster_pipeline.control")


@dataclass(frozen=True)
class Delivery:
    key: str
    kind: str
    district_id: str
    import_id: int | None
    ok: bool
    where: str | None  # outbox path or Message-ID
    error: str | None

    def line(self) -> str:
        if self.ok:
            return f"{self.kind} email for {self.district_id} (import {self.import_id}) sent: {self.where}"
        return f"{self.kind} email for {self.district_id} (import {self.import_id}) NOT sent: {self.error}"


def send_once(
    engine: Engine,
    key: str,
    *,
    kind: str,
    district_id: str,
    import_id: int | None,
    build: Callable[[], EmailMessage],
    sender: Callable[[], Sender],
    settings: NotifySettings,
    now: datetime | None = None,
    detail: dict | None = None,
) -> Delivery | None:
    """None when there is nothing to do (already sent, in flight, given up, or a retry not yet due)."""
    if not store.claim_notification(
        engine,
        key,
        district_id=district_id,
        import_id=import_id,
        kind=kind,
        max_attempts=settings.max_attempts,
        retry_after=settings.retry_after,
        now=now,
        detail=detail,
    ):
        return None
    try:
        message = build()
        if message.get(IDEMPOTENCY_HEADER) != key:  # run_failure reuses the Check Your Data layout
            message.replace_header(IDEMPOTENCY_HEADER, key)
            message.replace_header("Message-ID", message_id_for(key, str(message.get("From", ""))))
        outcome = deliver(message, sender())
    except Exception as exc:  # noqa: BLE001 - a notification never breaks the sensor or the import
        error = f"could not build or send the {kind} email: {type(exc).__name__}: {exc}"
        store.mark_failed(engine, key, error)
        log.error("%s", error)
        return Delivery(key, kind, district_id, import_id, False, None, error)
    if outcome.ok:
        store.mark_sent(engine, key, outcome.path_or_id, outcome.error_text)
    else:
        store.mark_failed(engine, key, outcome.error_text or "unknown delivery error")
    delivery = Delivery(key, kind, district_id, import_id, outcome.ok, outcome.path_or_id, outcome.error_text)
    (log.info if outcome.ok else log.warning)("%s", delivery.line())
    return delivery
