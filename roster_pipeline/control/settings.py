"""Control-plane settings from the environment (all optional; the defaults suit the demo).

=================================  =============================================================
``ROSTER_OUTBOX_DIR``              Where emails go when no SMTP is configured (default
                                   ``./.roster_pipeline/outbox``; made absolute when read).
``ROSTER_NOTIFY_MAX_ATTEMPTS``     Sends per email before giving up (default 5).
``ROSTER_NOTIFY_RETRY_SECONDS``    Wait after a failed send before the next attempt (default 60).
``ROSTER_NOTIFY_LOOKBACK_DAYS``    A sensor without a cursor (first deploy, reset) only emails about
                                   imports started this recently (default 7), so a new deployment on
                                   an old warehouse does not email every past import.
``ROSTER_DAGSTER_URL``             Base URL of the Dagster UI for the run links in emails.
=================================  =============================================================
``ROSTER_MISSING_RUN_GRACE_MINUTES``: an open import whose Dagster run does not exist is taken as dead
this long after it started (default 60), so a sync launched on another Dagster instance (the CLI
without ``DAGSTER_HOME``) is not judged while it may still be running.
SMTP itself is configured by the ``ROSTER_SMTP_*`` variables (``roster_pipeline.notify.settings``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

DEFAULT_OUTBOX = Path(".roster_pipeline") / "outbox"


@dataclass(frozen=True)
class NotifySettings:
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
