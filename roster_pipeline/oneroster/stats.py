"""Counters for one pull, shaped for Dagster materialization metadata.

Updated from the page-fetching threads, hence the lock; read with ``snapshot()`` to get a consistent,
immutable copy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass
class FetchStats:
    """What one ``iter_batches`` call cost.

    ``requests`` counts API attempts, retries included (token requests are counted in
    ``token_requests``); ``bytes`` is response body bytes received; ``seconds`` is wall time from the
    first request to the last batch, which includes time the consumer spent between batches.
    ``parse_seconds`` is the time spent turning bodies into JSON, summed over the fetching threads (so it
    can exceed ``seconds``): with ``seconds`` it tells a slow API from a slow parse.
    ``peak_parsed_ahead`` is the most pages the concurrent window held parsed, or was parsing, ahead of
    the consumer at once (at most ``ClientConfig.parse_ahead``): the memory bound, observed.
    """

    district_id: str
    endpoint: str
    pages: int = 0
    requests: int = 0
    retries: int = 0
    records: int = 0
    duplicates_dropped: int = 0  # identical repeats within a pass (paging overlap), dropped
    conflicting_duplicates: int = 0  # copies of sourcedIds served with different content: to quarantine
    invalid_utf8_pages: int = 0  # responses with bytes that are not UTF-8, decoded leniently
    bytes: int = 0
    seconds: float = 0.0
    parse_seconds: float = 0.0
    peak_parsed_ahead: int = 0
    restarts: int = 0
    reported_total: int | None = None
    token_requests: int = 0
    complete: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **increments: float) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)

    def raise_to(self, **values: int) -> None:
        """Keep the highest value seen of each named peak."""
        with self._lock:
            for name, value in values.items():
                setattr(self, name, max(getattr(self, name), value))

    def snapshot(self) -> FetchStats:
        with self._lock:
            return replace(self, _lock=threading.Lock())

    def as_metadata(self) -> dict[str, Any]:
        """Plain values for ``MaterializeResult(metadata=...)``."""
        snap = self.snapshot()
        return {
            "endpoint": snap.endpoint,
            "pages": snap.pages,
            "requests": snap.requests,
            "retries": snap.retries,
            "records": snap.records,
            "duplicates_dropped": snap.duplicates_dropped,
            "conflicting_duplicates": snap.conflicting_duplicates,
            "invalid_utf8_pages": snap.invalid_utf8_pages,
            "bytes": snap.bytes,
            "seconds": round(snap.seconds, 3),
            "parse_seconds": round(snap.parse_seconds, 3),
            "peak_parsed_ahead": snap.peak_parsed_ahead,
            "paging_restarts": snap.restarts,
            "reported_total": snap.reported_total,
            "token_requests": snap.token_requests,
            "complete": snap.complete,
        }
