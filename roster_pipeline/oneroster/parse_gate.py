"""Which fetched pages of the concurrent window may be parsed now: the memory bound of a pull.

Parsed, a 10,000-record page is 20-30 MB of dicts; its body is 5-8 MB of bytes.  The consumer (validation,
staging) is the slower side, so fetched pages wait for it, and a window of five parsed pages is ~150 MB.
The gate lets the window keep ``max_concurrency`` requests in flight (that limit is about the API) while
only the next ``ahead`` pages in offset order are parsed; a worker whose page is further ahead keeps the
raw body and waits here.

Order-aware, so it cannot deadlock: window page ``k`` (0-based, in offset order) may be parsed while
``k < taken + ahead``, where ``taken`` counts the pages the consumer has taken.  The page the consumer waits
for is page ``taken``, which always passes (``ahead >= 1``); every page before it has been taken.  A
page that is parsed again (its body was truncated, and the request retried) passes again at once.
``close`` releases every waiting worker, for when the consumer stops or the pass is abandoned.
"""

from __future__ import annotations

import threading


class ParseGate:
    def __init__(self, ahead: int) -> None:
        if ahead < 1:
            raise ValueError("ahead must be at least 1: the page the consumer waits for must be parsable")
        self.ahead = ahead
        self._taken = 0
        self._admitted: set[int] = set()  # pages let through and not yet taken: parsed, or being parsed
        self._closed = False
        self._changed = threading.Condition()
        self.peak_admitted = 0  # the most pages held parsed ahead of the consumer at once

    def enter(self, page: int) -> bool:
        """Block until window page ``page`` may be parsed; False when the gate was closed meanwhile."""
        with self._changed:
            while page >= self._taken + self.ahead and not self._closed:
                self._changed.wait()
            if self._closed:
                return False
            if page >= self._taken:
                self._admitted.add(page)
                self.peak_admitted = max(self.peak_admitted, len(self._admitted))
            return True

    def took_next(self) -> None:
        """The consumer has taken the next page in order: one more page may be parsed."""
        with self._changed:
            self._admitted.discard(self._taken)
            self._taken += 1
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
