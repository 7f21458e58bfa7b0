"""What bounds a pull's memory: the parse gate of the concurrent window and the compact set of seen ids.

The gate tests run the client over the simulator on loopback with a consumer slower than the API (as
validation and staging are), and check from the outside (calls of ``parse_json``) as well as from the
client's own counter (``FetchStats.peak_parsed_ahead``) that no more than ``parse_ahead`` pages are
parsed ahead of it, that requests still run ``max_concurrency`` ahead, and that nothing deadlocks when a
page is retried or the consumer stops.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from roster_pipeline.oneroster import ClientConfig, OneRosterClient
from roster_pipeline.oneroster import client as client_module
from roster_pipeline.oneroster.paging import SeenRecords
from roster_pipeline.oneroster.parse_gate import ParseGate
from roster_pipeline.simulator import SimulatorServer, running_simulator

from .client_helpers import simulator_client_config

APP = "demo"
CLIENT_ID = "cid"
CLIENT_SECRET = "memory-tests-secret"


def config_for(server: SimulatorServer, **overrides: Any) -> ClientConfig:
    settings: dict[str, Any] = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **overrides}
    return simulator_client_config(server, APP, **settings)


@pytest.fixture()
def sim() -> Iterator[SimulatorServer]:
    with running_simulator(
        size="tiny", seed=1, app_name=APP, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ) as s:
        yield s


@pytest.fixture()
def parses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """When each body was parsed (calls of the client's ``parse_json``): the gate seen from outside."""
    seen: list[float] = []
    lock = threading.Lock()
    real = client_module.parse_json

    def counting(content: bytes) -> Any:
        with lock:
            seen.append(time.perf_counter())
        return real(content)

    monkeypatch.setattr(client_module, "parse_json", counting)
    return seen


def slow_pull(client: OneRosterClient, name: str, pause: float, on_batch: Callable[[int], None]) -> list[str]:
    """Consume like validation and staging do: slower than the API serves."""
    ids: list[str] = []
    for taken, batch in enumerate(client.iter_batches(name), start=1):
        ids.extend(r["sourcedId"] for r in batch)
        time.sleep(pause)  # the window fills up meanwhile
        on_batch(taken)
    return ids


def no_window_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("oneroster-springfield")]


# ----------------------------------------------------------------------------------------- the gate


@pytest.mark.parametrize(("parse_ahead", "window"), [(1, 5), (2, 5), (3, 3)])
def test_a_slow_consumer_never_has_more_than_parse_ahead_pages_parsed_ahead_of_it(
    sim: SimulatorServer, parses: list[float], parse_ahead: int, window: int
) -> None:
    over: list[tuple[int, int]] = []

    def check(taken: int) -> None:
        # page 1 and the window pages taken, plus at most parse_ahead more: nothing else has been parsed
        if len(parses) > taken + parse_ahead:
            over.append((taken, len(parses)))

    config = config_for(sim, page_size=5, max_concurrency=window, parse_ahead=parse_ahead)
    with OneRosterClient(config) as client:
        ids = slow_pull(client, "enrollments", 0.02, check)
        stats = client.stats_for("enrollments")
    assert ids == sorted(sim.tenant(APP).district.collections["enrollments"]) and stats.complete
    assert over == []
    assert stats.peak_parsed_ahead == parse_ahead  # the consumer is slower: the gate is full, not wider
    assert len(parses) == stats.requests  # every body parsed once: the gate delays parsing, never repeats it
    assert stats.parse_seconds > 0 and stats.as_metadata()["peak_parsed_ahead"] == parse_ahead


def test_the_gate_bounds_parsing_not_requests_the_window_still_fetches_max_concurrency_ahead(
    sim: SimulatorServer, parses: list[float]
) -> None:
    with OneRosterClient(config_for(sim, page_size=5, max_concurrency=5, parse_ahead=1)) as client:
        batches = client.iter_batches("enrollments")
        taken = [next(batches), next(batches)]  # page 1 and the window's first page
        time.sleep(0.5)  # a slow consumer: the window downloads five pages, parses one of them
        requested = len([r for r in sim.requests if "/enrollments" in r.path])
        parsed = len(parses)
        batches.close()
        assert no_window_threads()
    assert [len(b) for b in taken] == [5, 5]
    assert requested == 2 + 5  # the two pages taken and a full window in flight or waiting as raw bodies
    assert parsed == 2 + 1  # ... of which only the next one was parsed


def test_workers_waiting_at_the_gate_are_released_when_the_consumer_stops(sim: SimulatorServer) -> None:
    with OneRosterClient(config_for(sim, page_size=5, max_concurrency=5, parse_ahead=1)) as client:
        batches = client.iter_batches("enrollments")
        next(batches), next(batches)
        time.sleep(0.3)  # four workers hold raw bodies at the gate
        started = time.perf_counter()
        batches.close()
        closed_in = time.perf_counter() - started
        assert no_window_threads()
    assert closed_in < 2.0  # released at once, not after a timeout


@pytest.mark.parametrize("after", [1, 2, 6])  # the page the consumer waits for, or pages well ahead of it
def test_a_truncated_body_is_retried_through_the_gate_without_a_deadlock(
    sim: SimulatorServer, parses: list[float], after: int
) -> None:
    sim.faults.add(kind="truncate", times=2, path_contains="/enrollments", after=after)
    config = config_for(sim, page_size=5, max_concurrency=5, parse_ahead=1)
    result: dict[str, Any] = {}

    def run() -> None:
        with OneRosterClient(config) as client:
            result["ids"] = slow_pull(client, "enrollments", 0.01, lambda taken: None)
            result["stats"] = client.stats_for("enrollments")

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the pull deadlocked"
    stats = result["stats"]
    assert result["ids"] == sorted(sim.tenant(APP).district.collections["enrollments"])
    assert stats.complete and stats.retries == 2 and stats.peak_parsed_ahead <= 1
    assert len(parses) == stats.requests  # a truncated body is parsed (and fails) inside the retry policy


def test_parse_gate_lets_a_page_through_only_within_parse_ahead_of_the_consumer() -> None:
    gate = ParseGate(2)
    assert gate.enter(0) and gate.enter(1)
    passed = threading.Event()
    waiter = threading.Thread(target=lambda: gate.enter(2) and passed.set())
    waiter.start()
    assert not passed.wait(0.2)  # page 2 is three ahead of the consumer, which waits for page 0
    gate.took_next()
    assert passed.wait(2)
    waiter.join()
    assert gate.enter(1)  # a retried page passes again without counting twice
    assert gate.peak_admitted == 2
    closed = threading.Event()
    blocked = threading.Thread(target=lambda: gate.enter(9) or closed.set())
    blocked.start()
    gate.close()
    assert closed.wait(2)  # closing releases a waiter with False
    blocked.join()
    with pytest.raises(ValueError):
        ParseGate(0)


# ----------------------------------------------------------------------------------------- the compact set


def colliding(*groups: tuple[str, ...]) -> Callable[[str], int]:
    """A hash under which each group's ids collide (what a 64-bit hash does about once in 10^8 pulls)."""
    forced = {sourced_id: index for index, group in enumerate(groups) for sourced_id in group}
    return lambda sourced_id: forced[sourced_id] if sourced_id in forced else hash(sourced_id) | (1 << 40)


def test_a_hash_collision_on_one_page_quarantines_both_records_under_their_own_ids() -> None:
    seen = SeenRecords(hash_id=colliding(("x", "y")))
    page = seen.keep_new([{"sourcedId": "x", "v": 1}, {"sourcedId": "a"}, {"sourcedId": "y", "v": 1}])
    assert [r["sourcedId"] for r in page.fresh] == ["a"]
    assert [(i.sourced_id, i.check, i.withdraw_earlier) for i in page.issues] == [
        ("x", "conflicting_duplicate", False),
        ("y", "conflicting_duplicate", False),
    ]
    assert seen.in_pass == 3  # every row is accounted for: the pull stays complete and says why


def test_a_hash_collision_across_pages_is_a_loud_conflict_never_a_silent_drop() -> None:
    seen = SeenRecords(hash_id=colliding(("x", "y")))
    first = seen.keep_new([{"sourcedId": "x", "status": "active"}])
    later = seen.keep_new([{"sourcedId": "y", "status": "active"}])  # same content but for the id
    assert [r["sourcedId"] for r in first.fresh] == ["x"] and later.fresh == [] and later.duplicates == 0
    [issue] = later.issues
    assert (issue.sourced_id, issue.check, issue.withdraw_earlier) == ("y", "conflicting_duplicate", True)
    assert seen.in_pass == 2


def test_a_hash_collision_across_passes_leaves_the_pass_short_so_the_pull_cannot_complete() -> None:
    seen = SeenRecords(hash_id=colliding(("x", "y")))
    seen.keep_new([{"sourcedId": "x"}, {"sourcedId": "b"}])
    seen.start_pass()  # a re-read in which y has appeared, sorted before x
    page = seen.keep_new([{"sourcedId": "y"}, {"sourcedId": "b"}])
    page_2 = seen.keep_new([{"sourcedId": "x"}])
    assert page.fresh == [] and page_2.fresh == []  # y passed for a re-read of x ...
    assert seen.in_pass == 2  # ... but x then counts as a repeat: 2 rows of 3, the pass is short (drift)


def test_the_compact_set_answers_like_the_dict_it_replaces_across_merges() -> None:
    seen = SeenRecords()
    ids = [str(uuid.UUID(int=i * 7919)) for i in range(150_000)]  # past the point where runs are merged
    for start in range(0, len(ids), 10_000):
        page = seen.keep_new([{"sourcedId": i} for i in ids[start : start + 10_000]])
        assert len(page.fresh) == len(ids[start : start + 10_000])
    again = seen.keep_new([{"sourcedId": i} for i in ids[::997]])
    assert again.fresh == [] and again.duplicates == len(ids[::997]) and len(seen) == len(ids)
    changed = seen.keep_new([{"sourcedId": ids[5], "x": 1}, {"sourcedId": "new"}])
    assert [r["sourcedId"] for r in changed.fresh] == ["new"] and [i.sourced_id for i in changed.issues] == [
        ids[5]
    ]


# ----------------------------------------------------------------------------------------- figures


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.benchmark
def test_bytes_per_record_of_the_seen_set_before_and_after() -> None:
    """1M synthetic sourcedIds in pages of 10,000: what the old dict of id strings cost, and the arrays."""
    count, page_size = 1_000_000, 10_000

    def ids(page: int) -> list[str]:
        return [str(uuid.UUID(int=(i * 2654435761) ** 3 % (1 << 128))) for i in range(page, page + page_size)]

    gc.collect()
    base = _rss_bytes()
    seen = SeenRecords()
    spent = 0.0
    for start in range(0, count, page_size):
        page = [{"sourcedId": sourced_id, "status": "active"} for sourced_id in ids(start)]
        began = time.perf_counter()
        seen.keep_new(page)
        spent += time.perf_counter() - began
    del page
    gc.collect()
    new_bytes = _rss_bytes() - base
    base = _rss_bytes()
    old: dict[str, int] = {}  # what SeenRecords held before: every id string and a packed int
    for start in range(0, count, page_size):
        for sourced_id in ids(start):
            old[sourced_id] = hash(sourced_id) & ((1 << 60) - 1)
    old_bytes = _rss_bytes() - base
    print(
        f"\nseen sourcedIds, {count:,} records: dict of id strings {old_bytes / count:.0f} bytes/record (RSS), "
        f"SeenRecords {new_bytes / count:.0f} bytes/record (RSS; arrays {seen.nbytes / count:.0f}), "
        f"keep_new {spent / count * 1e6:.2f} us/record"
    )
    assert len(seen) == count and new_bytes < old_bytes / 3
