"""Paging against real HTTP: complete, ordered, de-duplicated pulls, drift handling, concurrency bounds.

Most tests talk to the project's OneRoster simulator over loopback. A few server behaviours the
simulator never shows (no X-Total-Count, no Link, duplicates across pages) come from
``ScriptedSIS`` below: a few lines of stdlib http.server, still real HTTP, no mocks.
"""

from __future__ import annotations

import gc
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from roster_pipeline.oneroster import (
    ClientConfig,
    OneRosterClient,
    PagingInconsistentError,
)
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.simulator import SimulatorServer, mutations, running_simulator

from .client_helpers import simulator_client_config

APP = "demo"
CLIENT_ID = "cid"
CLIENT_SECRET = "s3cret-for-tests"


def config_for(server: SimulatorServer, **overrides: Any) -> ClientConfig:
    settings: dict[str, Any] = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **overrides}
    return simulator_client_config(server, APP, **settings)


def pull(client: OneRosterClient, name: str, **kwargs: Any) -> list[dict[str, Any]]:
    return [record for batch in client.iter_batches(name, **kwargs) for record in batch]


@pytest.fixture(scope="module")
def small_sim() -> Iterator[SimulatorServer]:
    """Read-only tests share one small district; nobody mutates it or adds faults."""
    with running_simulator(
        size="small", seed=1, app_name=APP, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ) as s:
        yield s


@pytest.fixture(scope="module")
def tiny_sim() -> Iterator[SimulatorServer]:
    with running_simulator(
        size="tiny", seed=1, app_name=APP, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ) as s:
        yield s


@pytest.fixture()
def fresh_sim() -> Iterator[SimulatorServer]:
    """A district of its own, for tests that mutate it."""
    with running_simulator(
        size="small", seed=2, app_name=APP, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ) as s:
        yield s


def settled_requests(server: SimulatorServer) -> list[Any]:
    """The request log once it stops growing: the server logs a request after sending its response,
    so the client can be a step ahead of the log."""
    previous = -1
    while True:
        current = server.requests
        if len(current) == previous:
            return current
        previous = len(current)
        time.sleep(0.05)


def expected_ids(server: SimulatorServer, collection: str) -> list[str]:
    return sorted(server.tenant(APP).district.collections[collection])


# ----------------------------------------------------------------------------------------- full pulls


@pytest.mark.parametrize(
    ("sim_name", "page_size", "concurrent"),
    [
        ("tiny_sim", 1, True),
        ("tiny_sim", 7, False),
        ("small_sim", 100, True),
        ("small_sim", 50_000, True),
        ("small_sim", 333, False),
    ],
)
def test_full_pull_of_every_resource_matches_the_district(
    request: pytest.FixtureRequest, sim_name: str, page_size: int, concurrent: bool
) -> None:
    server: SimulatorServer = request.getfixturevalue(sim_name)
    with OneRosterClient(config_for(server, page_size=page_size, concurrent_paging=concurrent)) as client:
        for resource in RESOURCES:
            records = pull(client, resource.name)
            ids = [r["sourcedId"] for r in records]
            want = expected_ids(server, resource.collection)
            assert ids == want, resource.name  # same ids, each once, in sourcedId order across pages
            stats = client.stats_for(resource.name)
            assert stats.complete and stats.records == len(want) and stats.duplicates_dropped == 0
            assert stats.pages == max(1, -(-len(want) // page_size)), resource.name
            assert stats.reported_total == len(want)
            assert stats.bytes > 0 and stats.retries == 0 and stats.restarts == 0


def test_page_size_7_over_users_streams_in_small_ordered_batches(small_sim: SimulatorServer) -> None:
    with OneRosterClient(config_for(small_sim, page_size=7)) as client:
        batches = list(client.iter_batches("users"))
        stats = client.stats_for("users")
    assert all(len(b) == 7 for b in batches[:-1]) and 1 <= len(batches[-1]) <= 7
    ids = [r["sourcedId"] for b in batches for r in b]
    assert ids == expected_ids(small_sim, "users")
    assert stats.requests == stats.pages == len(batches)


def test_derived_endpoints_use_their_base_envelope(small_sim: SimulatorServer) -> None:
    district = small_sim.tenant(APP).district
    with OneRosterClient(config_for(small_sim, page_size=50)) as client:
        students = pull(client, "students")
        schools = pull(client, "schools")
    assert {r["sourcedId"] for r in students} == {
        k for k, r in district.collections["users"].items() if r["role"] == "student"
    }
    assert {r["sourcedId"] for r in schools} == {
        k for k, r in district.collections["orgs"].items() if r["type"] == "school"
    }


def test_server_page_cap_below_requested_size_is_followed_not_mistaken_for_the_end() -> None:
    with running_simulator(
        size="small", seed=1, app_name=APP, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, max_page_size=40
    ) as server:
        for concurrent in (True, False):
            with OneRosterClient(config_for(server, page_size=1000, concurrent_paging=concurrent)) as client:
                ids = [r["sourcedId"] for r in pull(client, "users")]
                stats = client.stats_for("users")
            assert ids == expected_ids(server, "users")
            assert stats.pages == -(-len(ids) // 40) and stats.restarts == 0


def test_link_rel_next_is_followed_when_paging_sequentially(small_sim: SimulatorServer) -> None:
    small_sim.clear_requests()
    with OneRosterClient(config_for(small_sim, page_size=150, concurrent_paging=False)) as client:
        ids = [r["sourcedId"] for r in pull(client, "courses", filter="status='active'")]
    assert ids == sorted(
        k for k, r in small_sim.tenant(APP).district.collections["courses"].items() if r["status"] == "active"
    )
    queries = [parse_qs(r.query) for r in settled_requests(small_sim) if r.path.endswith("/courses")]
    assert [q["offset"] for q in queries] == [["0"], ["150"]]
    # The second request is the simulator's own rel=next URL: it carries the filter and sort along.
    assert queries[1]["filter"] == ["status='active'"] and queries[1]["sort"] == ["sourcedId"]


# ----------------------------------------------------------------------------------------- delta reads


def test_since_sends_a_utc_date_last_modified_filter_and_gets_only_newer_records(
    small_sim: SimulatorServer,
) -> None:
    users = small_sim.tenant(APP).district.collections["users"].values()
    since = datetime(2026, 8, 3, 0, 0, tzinfo=UTC)
    newer = sorted(r["sourcedId"] for r in users if r["dateLastModified"] > "2026-08-03T00:00:00.000Z")
    assert 0 < len(newer) < len(users)  # the cut really splits the district
    small_sim.clear_requests()
    with OneRosterClient(config_for(small_sim, page_size=200)) as client:
        ids = [r["sourcedId"] for r in pull(client, "users", since=since)]
        teachers = pull(client, "users", since=since, filter="role='teacher'")
    assert ids == newer
    assert teachers and all(r["role"] == "teacher" and r["dateLastModified"] > "2026-08-03" for r in teachers)
    filters = {parse_qs(r.query)["filter"][0] for r in settled_requests(small_sim) if "filter=" in r.query}
    assert filters == {
        "dateLastModified>'2026-08-03T00:00:00Z'",
        "role='teacher' AND dateLastModified>'2026-08-03T00:00:00Z'",
    }


def test_bad_filter_arguments_fail_at_the_call_not_mid_stream(small_sim: SimulatorServer) -> None:
    with OneRosterClient(config_for(small_sim)) as client:
        with pytest.raises(ValueError, match="timezone-aware"):
            client.iter_batches("users", since=datetime(2026, 1, 1))
        with pytest.raises(KeyError, match="unknown OneRoster resource"):
            client.iter_batches("gradebook")


# ----------------------------------------------------------------------------------------- drift


def _district(server: SimulatorServer) -> Any:
    return server.tenant(APP).district


@pytest.mark.parametrize("concurrent", [True, False])
def test_records_added_mid_pull_trigger_a_re_read_that_includes_them(
    fresh_sim: SimulatorServer, concurrent: bool
) -> None:
    before = expected_ids(fresh_sim, "users")
    with OneRosterClient(config_for(fresh_sim, page_size=50, concurrent_paging=concurrent)) as client:
        seen: list[str] = []
        for number, batch in enumerate(client.iter_batches("users")):
            seen.extend(r["sourcedId"] for r in batch)
            if number == 1:
                # Ten new students: some sort before offset 100 and would be missed by a single pass.
                added = mutations.add_students(_district(fresh_sim), 10, seed=5).changes["users"].added
        stats = client.stats_for("users")
    assert any(sourced_id < seen[99] for sourced_id in added)  # the test really exercises a skip
    assert sorted(seen) == sorted([*before, *added])
    assert len(seen) == len(set(seen))  # the re-read yields only what was not yielded yet
    assert stats.restarts == 1 and stats.complete and stats.records == len(before) + len(added)


def test_records_removed_mid_pull_never_cause_a_skip(fresh_sim: SimulatorServer) -> None:
    before = expected_ids(fresh_sim, "users")
    with OneRosterClient(config_for(fresh_sim, page_size=50)) as client:
        seen: list[str] = []
        for number, batch in enumerate(client.iter_batches("users")):
            seen.extend(r["sourcedId"] for r in batch)
            if number == 0:
                result = mutations.remove_students(_district(fresh_sim), 5, seed=3, mode="vanish")
        stats = client.stats_for("users")
    gone = result.changes["users"].removed
    assert gone and set(seen) >= set(before) - gone  # nothing that still exists was skipped
    assert set(expected_ids(fresh_sim, "users")) <= set(seen)
    assert stats.restarts == 1


def test_collection_that_never_settles_fails_clearly(fresh_sim: SimulatorServer) -> None:
    with OneRosterClient(config_for(fresh_sim, page_size=100, max_paging_restarts=2)) as client:
        with pytest.raises(PagingInconsistentError) as caught:
            for number, _batch in enumerate(client.iter_batches("users")):
                mutations.add_students(_district(fresh_sim), 1, seed=100 + number)
        stats = client.stats_for("users")
    message = str(caught.value)
    assert "springfield" in message and "/users" in message and "X-Total-Count" in message
    assert caught.value.expected_total is not None and caught.value.observed_total is not None
    assert stats.restarts == 2 and not stats.complete


def test_delta_after_a_mutation_returns_exactly_the_touched_records(fresh_sim: SimulatorServer) -> None:
    district = _district(fresh_sim)
    last_stamp = max(r["dateLastModified"] for r in district.collections["users"].values())
    since = datetime.fromisoformat(last_stamp.replace("Z", "+00:00"))
    result = mutations.change_users(district, 2, seed=9)
    with OneRosterClient(config_for(fresh_sim, page_size=10)) as client:
        ids = {r["sourcedId"] for r in pull(client, "users", since=since)}
    assert ids == result.touched("users") and len(ids) >= 2


# ----------------------------------------------------------------------------------------- concurrency


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


@pytest.mark.parametrize("limit", [1, 3])
def test_never_more_than_max_concurrency_requests_in_flight(limit: int) -> None:
    with running_simulator(
        size="small", seed=1, app_name=APP, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, latency_ms=20
    ) as server:
        with OneRosterClient(config_for(server, page_size=100, max_concurrency=limit)) as client:
            ids = [r["sourcedId"] for r in pull(client, "users")]
            peak_client_side = client.peak_in_flight
        served = [(r.started, r.started + r.seconds) for r in settled_requests(server)]
    assert ids == expected_ids(server, "users")
    peak_server_side = _max_overlap(served)
    assert peak_server_side <= limit and peak_client_side <= limit
    assert peak_server_side == limit  # and the pool really does run `limit` requests at once


def test_concurrent_paging_is_faster_than_sequential_under_latency() -> None:
    with running_simulator(
        size="small", seed=1, app_name=APP, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, latency_ms=25
    ) as server:
        timings = {}
        # Other tests' districts are still on the heap; a full GC pass mid-pull costs ~0.3 s and would
        # measure the collector, not the client. Freezing moves existing objects out of its reach.
        gc.collect()
        gc.freeze()
        try:
            for concurrent in (False, True):
                with OneRosterClient(
                    config_for(server, page_size=100, concurrent_paging=concurrent)
                ) as client:
                    pull(client, "users")
                    timings[concurrent] = client.stats_for("users").seconds
        finally:
            gc.unfreeze()
    assert timings[True] < timings[False] / 2  # 20 pages of 25 ms: 5 at a time vs one at a time


def test_fetching_runs_one_window_ahead_and_stops_when_the_consumer_does() -> None:
    with running_simulator(
        size="small", seed=1, app_name=APP, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, latency_ms=5
    ) as server:
        with OneRosterClient(config_for(server, page_size=10, max_concurrency=3)) as client:
            batches = client.iter_batches("enrollments")
            taken = [next(batches), next(batches)]  # page 1, then the first page of the window
            time.sleep(0.3)  # a slow consumer: the client may fetch ahead only by one window
            ahead = len(settled_requests(server))
            batches.close()  # GeneratorExit inside the window
            assert not [t for t in threading.enumerate() if t.name.startswith("oneroster-springfield")]
            after_close = len(settled_requests(server))
        assert [len(b) for b in taken] == [10, 10]
        assert ahead == 1 + 2 + 3  # token, the two pages handed out, and a window of 3 — not ~1240 pages
        assert after_close == ahead


# ----------------------------------------------------------------------------------------- no total, no Link


class ScriptedSIS:
    """A bare OneRoster list endpoint for shapes the simulator never produces.

    ``total_header``/``link`` switch X-Total-Count and Link on; ``cap`` limits page size silently;
    ``total`` makes X-Total-Count say something other than the number of rows served.
    """

    def __init__(
        self,
        records: list[dict[str, Any]],
        *,
        total_header: bool = False,
        link: bool = False,
        cap: int | None = None,
        total: int | None = None,
    ) -> None:
        self.records, self.total_header, self.link, self.cap = records, total_header, link, cap
        self.total = len(records) if total is None else total
        self.offsets: list[int] = []
        sis = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # token endpoint
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._json(
                    {"access_token": f"tok-{uuid.uuid4()}", "token_type": "Bearer", "expires_in": 3600}, {}
                )

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                offset, limit = int(query["offset"][0]), int(query["limit"][0])
                sis.offsets.append(offset)
                if sis.cap:
                    limit = min(limit, sis.cap)
                headers = {}
                if sis.total_header:
                    headers["X-Total-Count"] = str(sis.total)
                if sis.link:
                    url = f"http://{self.headers['Host']}/api/users?limit={limit}"
                    parts = [f'<{url}&offset=0>; rel="first"']
                    if offset + limit < len(sis.records):
                        parts.append(f'<{url}&offset={offset + limit}>; rel="next"')
                    headers["Link"] = ", ".join(parts)
                self._json({"users": sis.records[offset : offset + limit]}, headers)

            def _json(self, body: Any, headers: dict[str, str]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> ScriptedSIS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def config(self, **overrides: Any) -> ClientConfig:
        port = self._httpd.server_address[1]
        return ClientConfig(
            district_id="shelbyville",
            base_url=f"http://127.0.0.1:{port}/api",
            token_url=f"http://127.0.0.1:{port}/token",
            client_id="c",
            client_secret="s",
            backoff_base_seconds=0.01,
            **overrides,
        )


def _users(n: int) -> list[dict[str, Any]]:
    return [{"sourcedId": f"u{i:04d}", "status": "active"} for i in range(n)]


@pytest.mark.parametrize(
    ("count", "cap", "expected_offsets"),
    [
        (
            25,
            None,
            [0, 10, 20, 25],
        ),  # a short page is no proof (a record may be missing from it): an empty one is
        (20, None, [0, 10, 20]),  # an exact multiple: the same one empty page
        (25, 4, [0, 4, 8, 12, 16, 20, 24, 25]),  # a silent cap (4 < 10) is not mistaken for the end
        (3, None, [0, 3]),  # a first page shorter than asked may be a cap: one more look
        (0, None, [0]),
    ],
)
def test_without_total_or_link_paging_stops_on_an_empty_page(
    count: int, cap: int | None, expected_offsets: list[int]
) -> None:
    with ScriptedSIS(_users(count), cap=cap) as sis, OneRosterClient(sis.config(page_size=10)) as client:
        ids = [r["sourcedId"] for r in pull(client, "users")]
    assert ids == [f"u{i:04d}" for i in range(count)]
    assert sis.offsets == expected_offsets


def test_link_without_total_is_followed_and_its_absence_ends_the_pull() -> None:
    with ScriptedSIS(_users(23), link=True) as sis, OneRosterClient(sis.config(page_size=10)) as client:
        ids = [r["sourcedId"] for r in pull(client, "users")]
    assert ids == [f"u{i:04d}" for i in range(23)]
    assert sis.offsets == [0, 10, 20]


def test_a_repeat_that_the_total_accounts_for_is_dropped_and_counted() -> None:
    """12 records, u0009 served again at the start of page 2 and X-Total-Count 12: the pull is complete."""
    records = _users(12)
    records.insert(10, dict(records[9]))
    with ScriptedSIS(records, total_header=True, total=12) as sis:
        with OneRosterClient(sis.config(page_size=10, concurrent_paging=False)) as client:
            ids = [r["sourcedId"] for r in pull(client, "users")]
            stats = client.stats_for("users")
    assert ids == [f"u{i:04d}" for i in range(12)]
    assert stats.duplicates_dropped == 1 and stats.records == 12 and stats.complete


@pytest.mark.parametrize("concurrent", [True, False])
def test_a_repeat_in_place_of_a_record_the_total_counts_is_never_a_complete_pull(concurrent: bool) -> None:
    """13 rows but 12 distinct sourcedIds for an X-Total-Count of 13, the repeat on the next page: as far
    as the client can tell, the row the repeat took the place of is missing (offset paging over a shifting
    or unstably sorted table does exactly that), so no re-read that keeps showing it is returned as
    complete."""
    records = _users(12)
    records.insert(10, dict(records[9]))
    with ScriptedSIS(records, total_header=True) as sis:
        with OneRosterClient(
            sis.config(page_size=10, concurrent_paging=concurrent, max_paging_restarts=1)
        ) as client:
            with pytest.raises(PagingInconsistentError) as caught:
                pull(client, "users")
    assert caught.value.expected_total == 13 and caught.value.observed_total == 12
    assert "13 but 12 distinct records arrived" in str(caught.value) and "shelbyville" in str(caught.value)


@pytest.mark.parametrize("concurrent", [True, False])
def test_a_row_served_twice_in_one_response_is_the_sis_own_and_harmless(concurrent: bool) -> None:
    """The same row twice in one page, counted by X-Total-Count: one response is one snapshot, so this is
    no paging artefact; the copy is dropped and counted, and the pull is complete."""
    records = _users(12)
    records.insert(4, dict(records[3]))
    with ScriptedSIS(records, total_header=True) as sis:
        with OneRosterClient(
            sis.config(page_size=10, concurrent_paging=concurrent, max_paging_restarts=0)
        ) as client:
            ids = [r["sourcedId"] for r in pull(client, "users")]
            stats = client.stats_for("users")
    assert ids == [f"u{i:04d}" for i in range(12)]
    assert stats.duplicates_dropped == 1 and stats.restarts == 0 and stats.complete


# ----------------------------------------------------------------------------------------- duplicates


@pytest.mark.parametrize("concurrent", [True, False])
def test_a_conflicting_duplicate_on_a_later_page_is_reported_with_its_batch_not_handed_out(
    concurrent: bool,
) -> None:
    with running_simulator(
        size="tiny", seed=1, app_name=APP, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ) as sim:
        target = expected_ids(sim, "users")[1]  # page 1; the copy comes last, on page 5 at page size 7
        sim.faults.add(
            kind="duplicate", sourced_id=target, field="givenName", times=None, path_contains="/users"
        )
        with OneRosterClient(config_for(sim, page_size=7, concurrent_paging=concurrent)) as client:
            batches = list(client.iter_batches("users"))
            stats = client.stats_for("users")
    handed_out = [r["sourcedId"] for batch in batches for r in batch]
    assert handed_out == expected_ids(sim, "users")  # the first copy, before anyone could know
    assert [batch.issues for batch in batches[:-1]] == [[]] * (len(batches) - 1)
    [issue] = batches[-1].issues
    assert (issue.sourced_id, issue.check, issue.withdraw_earlier) == (target, "conflicting_duplicate", True)
    assert issue.record["givenName"].endswith("(other record)")
    assert stats.conflicting_duplicates == 1 and stats.duplicates_dropped == 0 and stats.complete


def test_an_identical_row_served_twice_is_dropped_and_counted() -> None:
    with running_simulator(
        size="tiny", seed=1, app_name=APP, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ) as sim:
        target = expected_ids(sim, "users")[1]
        sim.faults.add(kind="duplicate", sourced_id=target, times=None, path_contains="/users")
        with OneRosterClient(config_for(sim, page_size=7)) as client:
            batches = list(client.iter_batches("users"))
            stats = client.stats_for("users")
    assert [r["sourcedId"] for batch in batches for r in batch] == expected_ids(sim, "users")
    assert all(not batch.issues for batch in batches)
    assert stats.duplicates_dropped == 1 and stats.conflicting_duplicates == 0


def test_a_conflicting_duplicate_within_one_page_hands_out_neither_copy() -> None:
    records = _users(6)
    records.insert(3, dict(records[1], status="tobedeleted"))  # u0001 again, different, same page
    with ScriptedSIS(records, total_header=True) as sis:
        with OneRosterClient(sis.config(page_size=10)) as client:
            [batch] = list(client.iter_batches("users"))
            stats = client.stats_for("users")
    assert [r["sourcedId"] for r in batch] == ["u0000", "u0002", "u0003", "u0004", "u0005"]
    assert [(i.sourced_id, i.record["status"], i.withdraw_earlier) for i in batch.issues] == [
        ("u0001", "active", False),
        ("u0001", "tobedeleted", False),
    ]
    assert stats.conflicting_duplicates == 2 and stats.records == 5
