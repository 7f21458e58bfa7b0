"""The ordered background writer that overlaps a resource's COPY with validating the next page."""

from __future__ import annotations

import threading
import time

import pytest

from roster_pipeline.warehouse.writer import BackgroundWriter


def test_writes_run_in_submission_order_on_another_thread() -> None:
    done: list[tuple[int, str]] = []
    with BackgroundWriter("order") as writer:
        for n in range(50):
            writer.submit(lambda n=n: done.append((n, threading.current_thread().name)))
    assert [n for n, _ in done] == list(range(50))
    assert {name for _, name in done} == {"writer-order"}
    assert writer.busy_seconds >= 0


def test_the_queue_is_bounded_so_a_slow_database_slows_the_pull() -> None:
    release = threading.Event()
    writer = BackgroundWriter("bounded", max_pending=2)
    writer.submit(release.wait)  # taken by the thread at once and blocks there
    time.sleep(0.05)
    writer.submit(lambda: None)
    writer.submit(lambda: None)  # the queue now holds max_pending writes
    blocked = threading.Thread(target=writer.submit, args=(lambda: None,))
    blocked.start()
    blocked.join(timeout=0.5)
    assert blocked.is_alive(), "a third pending write must wait for room"
    release.set()
    blocked.join(timeout=5)
    writer.close()
    assert not blocked.is_alive()


def test_the_first_failure_stops_later_writes_and_is_raised() -> None:
    ran: list[int] = []

    def fail() -> None:
        raise ValueError("COPY failed: district demo, users")

    writer = BackgroundWriter("failing")
    writer.submit(fail)
    with pytest.raises(ValueError, match="district demo, users"):
        for n in range(1000):  # a submission after the failure raises it
            writer.submit(lambda n=n: ran.append(n))
            time.sleep(0.001)
    with pytest.raises(ValueError, match="district demo, users"):
        writer.close()
    assert ran == [] or ran == sorted(ran)  # nothing after the failure ran out of order


def test_a_failing_caller_abandons_the_queue_without_masking_its_own_error() -> None:
    ran: list[int] = []
    release = threading.Event()
    with pytest.raises(RuntimeError, match="validation crashed"):
        with BackgroundWriter("abandoned", max_pending=5) as writer:
            writer.submit(release.wait)
            for n in range(3):
                writer.submit(lambda n=n: ran.append(n))
            release.set()
            raise RuntimeError("validation crashed")
    assert ran == sorted(ran)
