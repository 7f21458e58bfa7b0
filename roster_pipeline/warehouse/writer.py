"""An ordered background writer: one resource's warehouse writes on a thread of their own.

Why: staging a page is Python work (validate, flatten, hash) followed by a COPY that Postgres parses and
indexes in its own process.  Done one after the other on one thread, the sync waits for Postgres after
every page and Postgres idles while Python works.  With the writes on a thread of their own, Postgres
ingests page n while the sync validates page n+1; the COPY's own Python side (sending rows) releases the
GIL while it waits on the socket.

The writes run strictly in the order they were submitted (a conflicting duplicate withdrawn from staging
must follow the COPY that staged it), each in its own short transaction as before.  The queue is bounded
(``max_pending`` batches), so memory stays a few pages whatever the district's size and a slow database
slows the pull instead of piling rows up.  The first failure stops the writer: later submissions raise it
at once and ``close`` re-raises it, so an error is never lost behind a page that went on.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

_STOP = object()


class BackgroundWriter:
    """Runs submitted calls in order on one thread; ``busy_seconds`` is the time spent running them."""

    def __init__(self, name: str, max_pending: int = 2) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self.busy_seconds = 0.0
        self._thread = threading.Thread(target=self._run, name=f"writer-{name}", daemon=True)
        self._thread.start()

    def submit(self, call: Callable[..., Any], *args: Any) -> None:
        """Queue one write; blocks while ``max_pending`` writes wait. Raises the writer's first failure."""
        while True:
            self._raise_if_failed()
            try:
                self._queue.put((call, args), timeout=0.2)
                return
            except queue.Full:  # the thread may have died meanwhile: check again rather than wait forever
                continue

    def close(self) -> None:
        """Wait for every queued write; re-raise the first failure."""
        if self._thread.is_alive():
            while True:
                try:
                    self._queue.put(_STOP, timeout=0.2)
                    break
                except queue.Full:
                    if not self._thread.is_alive():
                        break
            self._thread.join()
        self._raise_if_failed()

    def abandon(self) -> None:
        """The caller failed: drop what is still queued, let the current write finish, never raise."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=5)
            except queue.Full:
                pass
            self._thread.join(timeout=600)

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
        else:
            self.abandon()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None:
                continue  # failed: drain without running anything more
            call, args = item
            started = time.perf_counter()
            try:
                call(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the submitting thread
                self._error = exc
            finally:
                self.busy_seconds += time.perf_counter() - started
