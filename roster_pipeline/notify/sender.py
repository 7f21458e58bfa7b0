"""Sending: SMTP with bounded retries, an outbox folder of .eml files, and ``deliver`` that never raises.

Email is a side effect of an import, never part of it: ``deliver`` turns every failure into a
``DeliveryOutcome`` the caller records (Dagster metadata, the control table) instead of an exception
that could fail or roll back the import.  Temporary trouble (connection refused/reset, timeouts, 4xx
replies) is retried with exponential backoff; permanent trouble (5xx, bad login, certificate mismatch)
is reported at once.  The SMTP password is read from its environment variable at login and is scrubbed
from every error text and log line (the server's reply to a failed AUTH could echo what it received).
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import Literal, Protocol

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from roster_pipeline.notify.render import DISTRICT_HEADER, IDEMPOTENCY_HEADER, IMPORT_HEADER, KIND_HEADER
from roster_pipeline.notify.scrub import assert_no_secrets, redact
from roster_pipeline.notify.settings import SmtpConfigError, SmtpSettings, load_smtp_settings

log = logging.getLogger("roster_pipeline.notify")

Transport = Literal["smtp", "outbox"]


class EmailDeliveryError(RuntimeError):
    """An email could not be delivered. Names the server and recipients; never contains the password."""

    def __init__(
        self, text: str, *, address: str, recipients: list[str], attempts: int, transient: bool
    ) -> None:
        self.address = address
        self.recipients = recipients
        self.attempts = attempts
        self.transient = transient
        super().__init__(text)


@dataclass(frozen=True)
class SendResult:
    """What a sender did: which transport, the Message-ID, where it went, how many attempts."""

    transport: Transport
    message_id: str
    recipients: list[str]
    attempts: int = 1
    path: Path | None = None
    refused: dict[str, str] = field(default_factory=dict)  # recipient -> server reply, when some were refused


class Sender(Protocol):
    def send(self, message: EmailMessage) -> SendResult: ...


def recipients_of(message: EmailMessage) -> list[str]:
    pairs = getaddresses([str(v) for key in ("To", "Cc", "Bcc") for v in message.get_all(key, [])])
    return [address for _, address in pairs if address]


def _is_transient(exc: BaseException) -> bool:
    """Worth another attempt: network trouble and 4xx replies. Everything else is permanent."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(400 <= code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPException):  # "no suitable auth mechanism", STARTTLS unsupported ...
        return False
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False
    return isinstance(exc, OSError)  # refused, reset, timeout, DNS


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        return f"{type(exc).__name__}: server replied {exc.smtp_code} {reply}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return f"SMTPRecipientsRefused: {', '.join(f'{r} ({c})' for r, (c, _) in exc.recipients.items())}"
    return f"{type(exc).__name__}: {exc}"


class SmtpSender:
    """Sends through an SMTP server: STARTTLS / implicit TLS / plain, optional AUTH, bounded retries."""

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        attempts: int = 3,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 20.0,
        secret_env_names: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.secret_env_names = [*settings.secret_env_names(), *secret_env_names]
        self._environ = environ

    def __repr__(self) -> str:
        return f"SmtpSender({self.settings.address}, security={self.settings.security})"

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.ca_file)

    def _send_once(self, message: EmailMessage, password: str | None) -> dict[str, tuple[int, bytes]]:
        s = self.settings
        if s.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout, context=self._tls_context()
            )
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        with client:
            client.ehlo()
            if s.security == "starttls":
                client.starttls(context=self._tls_context())
                client.ehlo()
            if s.username:
                client.login(s.username, password or "")
            return client.send_message(message)

    def send(self, message: EmailMessage) -> SendResult:
        """Send once, retrying temporary failures; raise EmailDeliveryError when it cannot be delivered."""
        s = self.settings
        recipients = recipients_of(message)
        assert_no_secrets(message, self.secret_env_names, self._environ)
        password = s.password(self._environ)
        if s.username and password is None:
            raise EmailDeliveryError(
                f"cannot send email via SMTP {s.address}: ROSTER_SMTP_USER is set but the password variable "
                f"{s.password_env!r} is empty",
                address=s.address,
                recipients=recipients,
                attempts=0,
                transient=False,
            )
        secrets = [password]
        label = (
            f"{message.get(KIND_HEADER, 'email')} for {message.get(DISTRICT_HEADER, '?')} import "
            f"{message.get(IMPORT_HEADER, '?')}"
        )

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "SMTP %s: attempt %d of %d to send %s to %s failed (%s); retrying",
                s.address,
                state.attempt_number,
                self.attempts,
                label,
                ", ".join(recipients),
                redact(_describe(exc), secrets) if exc else "?",
            )

        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_seconds, max=self.max_backoff_seconds),
            retry=retry_if_exception(_is_transient),
            before_sleep=before_sleep,
            reraise=True,
        )
        attempts = 0
        try:
            for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    refused = self._send_once(message, password)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear, password-free error
            transient = _is_transient(exc)
            text = (
                f"could not send {label} to {', '.join(recipients)} via SMTP {s.address} "
                f"({s.security}) after {attempts} attempt(s): {_describe(exc)}"
            )
            if isinstance(exc, smtplib.SMTPAuthenticationError):
                text += f" (check ROSTER_SMTP_USER and the password in {s.password_env})"
            text = redact(text, secrets)
            log.error("%s", text)
            raise EmailDeliveryError(
                text, address=s.address, recipients=recipients, attempts=attempts, transient=transient
            ) from None
        refused_text = {
            r: redact(f"{code} {reply.decode('utf-8', 'replace')}", secrets)
            for r, (code, reply) in refused.items()
        }
        if refused_text:
            log.warning("SMTP %s refused some recipients of %s: %s", s.address, label, refused_text)
        message_id = str(message.get("Message-ID", ""))
        log.info(
            "sent %s to %s via SMTP %s (Message-ID %s, %d attempt(s))",
            label,
            ", ".join(recipients),
            s.address,
            message_id,
            attempts,
        )
        return SendResult("smtp", message_id, recipients, attempts, None, refused_text)


def _slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", value).strip("-")[:60] or "x"


class OutboxSender:
    """Writes each message as an ``.eml`` file (open it in any mail client); used when no SMTP is set up."""

    def __init__(
        self,
        folder: str | Path,
        *,
        secret_env_names: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.secret_env_names = list(secret_env_names)
        self._environ = environ

    def __repr__(self) -> str:
        return f"OutboxSender({str(self.folder)!r})"

    def filename_for(self, message: EmailMessage, now: datetime | None = None) -> str:
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
        district = _slug(str(message.get(DISTRICT_HEADER, "district")))
        kind = _slug(str(message.get(KIND_HEADER, "email")))
        import_id = _slug(str(message.get(IMPORT_HEADER, "0")))
        return f"{stamp}_{district}_{kind}_import-{import_id}.eml"

    def send(self, message: EmailMessage) -> SendResult:
        assert_no_secrets(message, self.secret_env_names, self._environ)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / self.filename_for(message)
        data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        # Write then rename: a reader (the demo, a test, a human) never sees a half-written file.
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".eml")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        recipients = recipients_of(message)
        log.info(
            "email written to outbox: %s (to %s, %s)", path, ", ".join(recipients), message.get("Subject")
        )
        return SendResult("outbox", str(message.get("Message-ID", "")), recipients, 1, path)


def sender_from_env(
    outbox_dir: str | Path, *, environ: Mapping[str, str] | None = None, secret_env_names: Iterable[str] = ()
) -> SmtpSender | OutboxSender:
    """SMTP when ``ROSTER_SMTP_HOST`` is set, else the outbox folder.

    Raises SmtpConfigError when SMTP is half-configured: silently falling back to the outbox would
    hide a misconfiguration and admins would never get their email.
    """
    settings = load_smtp_settings(environ)
    if settings is None:
        log.info("no SMTP configured (ROSTER_SMTP_HOST unset): emails go to the outbox %s", outbox_dir)
        return OutboxSender(outbox_dir, secret_env_names=secret_env_names, environ=environ)
    return SmtpSender(settings, secret_env_names=secret_env_names, environ=environ)


@dataclass(frozen=True)
class DeliveryOutcome:
    """The result of ``deliver``: record it where an operator will see it (metadata, control table)."""

    ok: bool
    path_or_id: str | None  # the .eml path (outbox) or the Message-ID (SMTP)
    error_text: str | None
    idempotency_key: str | None = None
    transport: Transport | None = None
    attempts: int = 0


def deliver(message: EmailMessage, sender: Sender) -> DeliveryOutcome:
    """Send and report; never raises (except KeyboardInterrupt/SystemExit), so an import cannot fail on email."""
    key = message.get(IDEMPOTENCY_HEADER)
    key = str(key) if key is not None else None
    try:
        result = sender.send(message)
    except EmailDeliveryError as exc:
        return DeliveryOutcome(False, None, str(exc), key, "smtp", exc.attempts)
    except Exception as exc:  # noqa: BLE001 - the contract is "never raise into the import"
        text = f"could not send email {key or ''}: {type(exc).__name__}: {exc}"
        log.error("%s", text)
        return DeliveryOutcome(False, None, text, key, None, 0)
    where = str(result.path) if result.path is not None else result.message_id
    error = f"refused recipients: {result.refused}" if result.refused else None
    return DeliveryOutcome(True, where, error, key, result.transport, result.attempts)


__all__ = [
    "DeliveryOutcome",
    "EmailDeliveryError",
    "OutboxSender",
    "SendResult",
    "Sender",
    "SmtpConfigError",
    "SmtpSender",
    "deliver",
    "recipients_of",
    "sender_from_env",
]
