"""SMTP settings from the environment; no SMTP configured means "write .eml files to an outbox".

Environment variables (read by ``load_smtp_settings``):

=========================  ==========================================================================
``ROSTER_SMTP_HOST``       SMTP server. Unset or empty: no SMTP; emails go to the outbox folder.
``ROSTER_SMTP_PORT``       Default: 587 for ``starttls``, 465 for ``ssl``, 25 for ``none``.
``ROSTER_SMTP_SECURITY``   ``starttls`` (default) | ``ssl`` (implicit TLS) | ``none``.
``ROSTER_SMTP_USER``       Login name; unset means no AUTH.
``ROSTER_SMTP_PASSWORD``   The password (the default place it is read from, at send time only).
``ROSTER_SMTP_PASSWORD_ENV`` The NAME of another variable holding the password, for deployments whose
                           secret store injects it under its own name. Default ``ROSTER_SMTP_PASSWORD``.
``ROSTER_SMTP_TIMEOUT``    Seconds per connection attempt (default 30).
``ROSTER_SMTP_CA_FILE``    PEM bundle to trust instead of the system CAs (a private relay's CA).
``ROSTER_EMAIL_FROM``      From address (required with SMTP; the outbox uses it when set).
``ROSTER_DAGSTER_URL``     Base URL of the Dagster UI for run links (see ``content.dagster_run_url``).
=========================  ==========================================================================

The settings object holds the password variable's *name*; the value is read by ``password()`` when a
connection logs in, and never appears in ``repr``, errors or logs.

How the control loop delivers (``NotifySettings.from_env``; all optional, the defaults suit the demo):

=====================================  ==========================================================================
``ROSTER_OUTBOX_DIR``                  Where emails go when no SMTP is configured (default
                                       ``./.roster_pipeline/outbox``; made absolute when read).
``ROSTER_NOTIFY_MAX_ATTEMPTS``         Sends per email before giving up (default 5).
``ROSTER_NOTIFY_RETRY_SECONDS``        Wait after a failed send before the next attempt (default 60).
``ROSTER_NOTIFY_LOOKBACK_DAYS``        A sensor without a cursor (first deploy, reset) only emails about imports
                                       started this recently (default 7), so a new deployment on an old warehouse
                                       does not email every past import.
``ROSTER_MISSING_RUN_GRACE_MINUTES``   An open import whose Dagster run does not exist is taken as dead (and its
                                       admins emailed) this long after it started (default 60), so a sync launched
                                       on another Dagster instance (the CLI without ``DAGSTER_HOME``) is not
                                       judged while it may still be running.
=====================================  ==========================================================================

Both live here so that everything deciding where, when and how often an email goes is read in one place.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_FROM = "roster-pipeline@localhost"
DEFAULT_PASSWORD_ENV = "ROSTER_SMTP_PASSWORD"
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}

Security = Literal["none", "starttls", "ssl"]


class SmtpConfigError(ValueError):
    """SMTP is half-configured (e.g. a host without a from-address); the message names the variable."""


class SmtpSettings(BaseModel):
    """How to reach the SMTP server. Holds the password's env var NAME, never the password."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    port: int = Field(default=0, ge=0, le=65535)  # 0: the usual port for `security`
    security: Security = "starttls"
    username: str | None = None
    password_env: str | None = DEFAULT_PASSWORD_ENV
    from_address: str
    timeout: float = Field(default=30.0, gt=0, le=600)
    ca_file: str | None = None

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(
                "must be the NAME of an environment variable (UPPER_SNAKE_CASE), not the password "
                "(value not shown)"
            )
        return value

    @field_validator("from_address")
    @classmethod
    def _from(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError(f"expected an email address, got {value!r}")
        return value.strip()

    @model_validator(mode="after")
    def _default_port(self) -> SmtpSettings:
        if self.port == 0:
            object.__setattr__(self, "port", _DEFAULT_PORTS[self.security])
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def password(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The password, read from its variable now; None when there is no login or the variable is unset."""
        if not self.username or not self.password_env:
            return None
        env = os.environ if environ is None else environ
        return env.get(self.password_env) or None

    def secret_env_names(self) -> list[str]:
        return [self.password_env] if self.password_env else []


def load_smtp_settings(environ: Mapping[str, str] | None = None) -> SmtpSettings | None:
    """SmtpSettings from ``ROSTER_SMTP_*`` / ``ROSTER_EMAIL_FROM``; None when ``ROSTER_SMTP_HOST`` is unset."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    host = get("ROSTER_SMTP_HOST")
    if host is None:
        return None
    from_address = get("ROSTER_EMAIL_FROM")
    if from_address is None:
        raise SmtpConfigError(
            "ROSTER_SMTP_HOST is set but ROSTER_EMAIL_FROM is not: set the From address too"
        )
    fields: dict[str, object] = {"host": host, "from_address": from_address}
    for field_name, variable in (
        ("port", "ROSTER_SMTP_PORT"),
        ("security", "ROSTER_SMTP_SECURITY"),
        ("username", "ROSTER_SMTP_USER"),
        ("password_env", "ROSTER_SMTP_PASSWORD_ENV"),
        ("timeout", "ROSTER_SMTP_TIMEOUT"),
        ("ca_file", "ROSTER_SMTP_CA_FILE"),
    ):
        value = get(variable)
        if value is not None:
            fields[field_name] = value.lower() if field_name == "security" else value
    try:
        return SmtpSettings.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
            for e in exc.errors()  # never e['input']
        )
        raise SmtpConfigError(f"invalid SMTP settings from ROSTER_SMTP_* variables: {problems}") from None


def email_from(environ: Mapping[str, str] | None = None) -> str:
    """The From address for any transport: ``ROSTER_EMAIL_FROM`` or a local placeholder (the demo)."""
    env = os.environ if environ is None else environ
    return env.get("ROSTER_EMAIL_FROM", "").strip() or DEFAULT_FROM


DEFAULT_OUTBOX = Path(".roster_pipeline") / "outbox"


@dataclass(frozen=True)
class NotifySettings:
    """How the control loop delivers emails: the outbox, retries, the first-deploy lookback, and how long a
    run that cannot be found is given before its import is judged dead (see the table above)."""

    outbox_dir: Path = DEFAULT_OUTBOX
    max_attempts: int = 5
    retry_after: timedelta = timedelta(seconds=60)
    lookback: timedelta = timedelta(days=7)
    missing_run_grace: timedelta = timedelta(hours=1)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NotifySettings:
        env = os.environ if environ is None else environ

        def number(name: str, default: float) -> float:
            text = env.get(name, "").strip()
            try:
                return float(text) if text else default
            except ValueError:
                raise ValueError(f"{name} must be a number, got {text!r}") from None

        return cls(
            # Absolute, so the logs name the folder the emails really went to, whatever the reader's cwd.
            outbox_dir=Path(env.get("ROSTER_OUTBOX_DIR", "").strip() or DEFAULT_OUTBOX).resolve(),
            max_attempts=max(1, int(number("ROSTER_NOTIFY_MAX_ATTEMPTS", 5))),
            retry_after=timedelta(seconds=max(0.0, number("ROSTER_NOTIFY_RETRY_SECONDS", 60))),
            lookback=timedelta(days=max(0.0, number("ROSTER_NOTIFY_LOOKBACK_DAYS", 7))),
            missing_run_grace=timedelta(minutes=max(0.0, number("ROSTER_MISSING_RUN_GRACE_MINUTES", 60))),
        )


__all__ = [
    "DEFAULT_FROM",
    "DEFAULT_OUTBOX",
    "NotifySettings",
    "SmtpConfigError",
    "SmtpSettings",
    "email_from",
    "load_smtp_settings",
]
