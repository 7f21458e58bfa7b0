"""When and how long to wait before asking a busy SIS again.

Retries are driven by tenacity (a small, dependency-free, well-maintained library) rather than a
hand-written loop: its stop/wait/retry strategies compose, and the part that is ours is only the
policy — which failures are transient, exponential backoff with equal jitter, and ``Retry-After``.
Jitter matters because many districts' runs start on the same cron minute; without it their retries
arrive at the SIS in lock-step.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

T = TypeVar("T")


class TransientFailure(Exception):
    """A failure worth retrying. Internal: callers see RetriesExhaustedError when the budget runs out.

    ``reason`` is a short human description ("HTTP 503", "ReadTimeout", "invalid JSON"); it is built by
    the client from status codes and exception class names only, never from headers or bodies.
    """

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent or garbled.

    A date in the past means "now" (0 seconds), not an error: clocks between us and the SIS drift.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
            return None
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with equal jitter for retry number ``attempt`` (1 = first retry).

    Half the exponential step is fixed and half random, so waits still grow with each attempt (full
    jitter can retry almost immediately) while concurrent clients spread out. Never exceeds ``cap``.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    step = min(cap, base * (2 ** (attempt - 1)))
    source = rng or random
    return min(cap, step / 2 + source.uniform(0, step / 2))


def wait_seconds(
    attempt: int, retry_after: float | None, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """The wait before retry ``attempt``: the server's Retry-After if it asks for longer than our backoff.

    Both are capped at ``cap`` (backoff_max_seconds) so a hostile or buggy header cannot park a run for
    hours; if the SIS is still busy after the cap we simply get another 429 and spend another attempt.
    """
    delay = backoff_delay(attempt, base=base, cap=cap, rng=rng)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


@dataclass
class RetryPolicy:
    """Retry budget for one request. ``sleep`` is injectable so pure tests need not wait."""

    max_retries: int
    backoff_base_seconds: float
    backoff_max_seconds: float
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def run(self, attempt_once: Callable[[], T], *, on_retry: Callable[[TransientFailure, float], None]) -> T:
        """Call ``attempt_once`` until it returns, raises a non-transient error, or the budget is spent.

        On exhaustion the last TransientFailure propagates; the caller turns it into a
        RetriesExhaustedError that names the district and endpoint (this module knows neither).
        """

        def wait(state: RetryCallState) -> float:
            failure = state.outcome.exception() if state.outcome else None
            retry_after = failure.retry_after if isinstance(failure, TransientFailure) else None
            return wait_seconds(
                state.attempt_number,
                retry_after,
                base=self.backoff_base_seconds,
                cap=self.backoff_max_seconds,
                rng=self.rng,
            )

        def before_sleep(state: RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome else None
            if isinstance(failure, TransientFailure):
                on_retry(failure, state.upcoming_sleep)

        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait,
            retry=retry_if_exception_type(TransientFailure),
            before_sleep=before_sleep,
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(attempt_once)
