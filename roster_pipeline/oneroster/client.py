"""The OneRoster REST client: streams a district's records out in ordered, de-duplicated batches.

It speaks 1.1, and 1.2 rostering when ``ClientConfig.oneroster_version`` is "1.2": the paging, envelopes
and errors are the same, and each 1.2 batch is mapped onto the 1.1 shape (``v1p2``) after de-duplication
and before it is handed out, so whoever reads batches only ever sees 1.1 records; a 1.2 record with no
1.1 shape arrives as one of the batch's ``issues``, to be quarantined.  The 1.1 path does none of that.

Authorisation is the config's ``auth_scheme``: an OAuth2 bearer token (``auth.py``) or an OAuth 1.0a
HMAC-SHA256 signature on every request (``oauth1.py``); everything below is the same for both.

Concurrency model. Page 1 is fetched alone; its ``X-Total-Count`` says which offsets remain, and those
are fetched by a thread pool of ``max_concurrency`` workers through a sliding window: at most
``max_concurrency`` pages are being fetched or waiting to be handed out, and batches leave in offset
order. Only the next ``parse_ahead`` of them (in offset order) may be parsed into dicts; a worker whose
page is further ahead keeps the raw body and waits (``parse_gate``), since a parsed page is 3-4 times
its body and the consumer is the slower side. Memory is therefore bounded, whatever the district's
size, by ``parse_ahead`` parsed pages ahead of the consumer, the page being handed out and the batch
the consumer still holds, plus up to ``max_concurrency - parse_ahead`` raw bodies (at 10,000 records a
page: ~4 × 20-30 MB parsed and ~3 × 5-8 MB raw with the defaults; choose the page size with that in
mind, e.g. for Infinite Campus's 50,000-record pages), and the pull's ``SeenRecords`` (16-32 bytes a
record). A semaphore around every HTTP attempt keeps the per-district limit (Infinite Campus asks for at
most 5) even when several pulls share one client. Without ``X-Total-Count`` the client pages
sequentially by ``Link: rel=next``, or by offset until an empty page.

Completeness. A full pull's missing record becomes a deletion downstream, so a pass over the
collection counts only when it provably received every record: it ended on an empty page, or on a
page shorter than asked that reached X-Total-Count (or on a Link without rel=next), and the records
it received equal X-Total-Count (distinct sourcedIds, plus the extra copies of conflicting
duplicates and of rows one response served twice; see ``SeenRecords``). A count alone never ends
paging (a full page that reaches it is followed by one request that must come back empty), and a
short page 1 is the server's page cap only if every later page is that long. Every page re-reports
the total; if it moves, a page comes back with other than its due number of records, or the distinct
count disagrees with the total, the pass is abandoned and the collection re-read from offset 0
(``max_paging_restarts`` times), yielding only records not yet yielded; if it never adds up,
``PagingInconsistentError`` naming the expected and received counts. Delta pulls follow the same
rules over their filtered set.

Bad data. A record is a record-level problem, never the pull's: a byte that is not UTF-8 is decoded
leniently (``body.py``; the record is quarantined by validation), and two different records under one
sourcedId are reported with the batch (``Batch.issues``) instead of the first silently winning.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from roster_pipeline.oneroster import v1p2
from roster_pipeline.oneroster.auth import BearerAuth, TokenManager
from roster_pipeline.oneroster.body import CorruptBody, parse_json
from roster_pipeline.oneroster.config import ClientConfig
from roster_pipeline.oneroster.errors import (
    AuthenticationError,
    EnvelopeError,
    ImsxStatus,
    OneRosterHTTPError,
    PagingInconsistentError,
    RetriesExhaustedError,
)
from roster_pipeline.oneroster.oauth1 import OAuth1Auth
from roster_pipeline.oneroster.paging import (
    Batch,
    Endpoint,
    Record,
    RecordIssue,
    SeenRecords,
    build_filter,
    endpoint_for,
    parse_link_header,
    parse_total_count,
)
from roster_pipeline.oneroster.parse_gate import ParseGate
from roster_pipeline.oneroster.retry import RetryPolicy, TransientFailure, parse_retry_after
from roster_pipeline.oneroster.secure_url import transport_reason
from roster_pipeline.oneroster.stats import FetchStats
from roster_pipeline.oneroster.tls import verifying_context

log = logging.getLogger(__name__)


@dataclass
class _Page:
    offset: int
    records: list[Record]
    total: int | None
    next_url: str | None
    has_link: bool


class _Drift(Exception):
    """Internal signal: this pass cannot be proven complete; restart it."""

    def __init__(self, reason: str, expected: int | None, observed: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expected = expected
        self.observed = observed


class _Cancelled(Exception):
    """Internal: the consumer stopped iterating, so queued page fetches give up quietly."""


class OneRosterClient:
    """One district's OneRoster API. Use as a context manager so connections are closed."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        timeout = httpx.Timeout(config.timeout_seconds)
        headers = {"Accept": "application/json", "User-Agent": config.user_agent}
        # OAuth2: a token manager with its own connection to the token endpoint. OAuth 1.0a: no token
        # endpoint at all (nothing may be sent to a token URL), every request is signed instead.
        self._token_http: httpx.Client | None = None
        self._tokens: TokenManager | None = None
        self._auth: httpx.Auth
        if config.auth_scheme == "oauth1":
            self._auth = OAuth1Auth(config.client_id, config.client_secret.get_secret_value())
        else:
            self._token_http = httpx.Client(
                timeout=timeout, headers=headers, follow_redirects=False, verify=verifying_context()
            )
            self._tokens = TokenManager(config, self._token_http)
            self._auth = BearerAuth(self._tokens)
        self._http = httpx.Client(
            auth=self._auth,
            timeout=timeout,
            headers=headers,
            follow_redirects=False,  # a redirect to another host must not carry our credentials
            verify=verifying_context(),
            limits=httpx.Limits(
                max_connections=config.max_concurrency, max_keepalive_connections=config.max_concurrency
            ),
        )
        self._base = httpx.URL(config.base_url + "/")
        self._v1p2 = config.oneroster_version == "1.2"  # map each batch onto the 1.1 shape (module v1p2)
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._stats: dict[str, FetchStats] = {}
        self._stats_lock = threading.Lock()
        self._in_flight = 0
        self.peak_in_flight = 0  # highest number of API attempts seen in flight at once (for tests/bench)

    def __repr__(self) -> str:
        return f"OneRosterClient(district_id={self.config.district_id!r}, base_url={self.config.base_url!r})"

    def __enter__(self) -> OneRosterClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        if self._token_http is not None:
            self._token_http.close()

    # ------------------------------------------------------------------ public API

    def iter_batches(
        self,
        name: str,
        since: datetime | None = None,
        filter: str | None = None,
        *,
        fields: list[str] | None = None,
    ) -> Iterator[list[Record]]:
        """Yield the collection's records page by page (``Batch``: a list of record dicts), each record once.

        A sourcedId served twice with different content is not handed out at all: its copies arrive as
        the batch's ``issues`` (``RecordIssue``), for the importer to quarantine.

        ``name`` is a catalogue name (``academic_sessions``), a collection (``academicSessions``) or a
        derived endpoint (``schools``, ``students``, ``teachers``, ``terms``, ``gradingPeriods``).
        ``since`` (timezone-aware) adds ``dateLastModified>'…'`` to ``filter``. Arguments are checked
        now, not at the first ``next()``, so a bad filter fails where it was written.
        """
        endpoint = endpoint_for(name)
        combined_filter = build_filter(filter, since)
        params: dict[str, str] = {}
        if self.config.sort_field:
            params["sort"] = self.config.sort_field
            params["orderBy"] = "asc"
        if combined_filter:
            params["filter"] = combined_filter
        if fields:
            params["fields"] = ",".join(dict.fromkeys([*fields, "sourcedId"]))
        stats = FetchStats(district_id=self.config.district_id, endpoint=self._label(endpoint))
        with self._stats_lock:
            self._stats[endpoint.collection] = stats
        return self._pull(endpoint, params, stats)

    def stats_for(self, name: str) -> FetchStats:
        """A consistent copy of the latest pull's counters for that endpoint."""
        endpoint = endpoint_for(name)
        with self._stats_lock:
            stats = self._stats.get(endpoint.collection)
        if stats is None:
            raise KeyError(f"district {self.config.district_id!r}: no pull of {endpoint.collection!r} yet")
        return stats.snapshot()

    def get_one(self, name: str, sourced_id: str) -> Record:
        """One record by sourcedId (``GET /users/{id}``); an unknown id raises OneRosterHTTPError (404)."""
        endpoint = endpoint_for(name)
        label = f"{self._label(endpoint)}/{sourced_id}"
        stats = FetchStats(district_id=self.config.district_id, endpoint=label)
        url = self._base.join(f"{endpoint.collection}/{quote(sourced_id, safe='')}")
        payload, _ = self._get_json(url, None, label, stats, threading.Event())
        record = payload.get(endpoint.singular) if isinstance(payload, dict) else None
        if not isinstance(record, dict):
            raise EnvelopeError(
                f"response has no {endpoint.singular!r} object",
                district_id=self.config.district_id,
                endpoint=label,
                field=endpoint.singular,
            )
        if self._v1p2:
            try:
                return v1p2.mapper_for(endpoint.envelope)(record)
            except v1p2.UnmappableRecord as problem:
                raise EnvelopeError(
                    f"OneRoster 1.2 record has no 1.1 shape ({problem.check}): {problem.detail}",
                    district_id=self.config.district_id,
                    endpoint=label,
                    field=problem.field,
                ) from None
        return record

    def collection_count(self, name: str) -> int | None:
        """How many records the SIS serves in the whole collection now (its ``X-Total-Count``), or None.

        One request for one record: cheap enough to ask every collection at the start of a delta, which
        cannot see records vanish (see ``sync_mode.escalate_on_vanish``). None when the SIS sends no
        count; the figure only ever makes an import pull *more*, so it is never trusted to prove a pull
        complete.
        """
        endpoint = endpoint_for(name)
        label = self._label(endpoint)
        stats = FetchStats(district_id=self.config.district_id, endpoint=label)
        params = {"limit": "1", "offset": "0"}
        _, response = self._get_json(
            self._base.join(endpoint.collection), params, label, stats, threading.Event()
        )
        return parse_total_count(response.headers.get("X-Total-Count"))

    def current_school_year(self, today: date | None = None) -> int | None:
        """The ending year of the active schoolYear session containing today (else the latest one), or None.

        One filtered request: a district has a handful of schoolYear sessions, far below a page.
        """
        today = today or datetime.now(UTC).date()
        endpoint = endpoint_for("academicSessions")
        label = self._label(endpoint)
        stats = FetchStats(district_id=self.config.district_id, endpoint=label)
        params = {"filter": "type='schoolYear'", "limit": str(self.config.page_size), "offset": "0"}
        url = self._base.join(endpoint.collection)
        payload, response = self._get_json(url, params, label, stats, threading.Event())
        years: list[tuple[int, date | None, date | None]] = []
        records = self._records_of(payload, endpoint, label)
        if self._v1p2:
            records = [v1p2.map_academic_session(record) for record in records]
        for record in records:
            if str(record.get("status", "")).lower() == "tobedeleted":
                continue  # an SIS that rolled over serves the old year's session as tobedeleted: not current
            try:
                year = int(str(record.get("schoolYear", "")).strip())
            except ValueError:
                continue
            years.append((year, _parse_date(record.get("startDate")), _parse_date(record.get("endDate"))))
        if not years:
            return None
        for year, start, end in years:
            if start and end and start <= today <= end:
                return year
        return max(year for year, _, _ in years)

    def _token_fetches(self) -> int:
        return self._tokens.fetches if self._tokens is not None else 0

    # ------------------------------------------------------------------ paging

    def _pull(self, endpoint: Endpoint, params: dict[str, str], stats: FetchStats) -> Iterator[list[Record]]:
        started = time.perf_counter()
        token_fetches_before = self._token_fetches()
        seen = SeenRecords()
        label = self._label(endpoint)
        try:
            restarts = 0
            while True:
                try:
                    if self._v1p2:
                        yield from self._as_v1p1(endpoint, self._one_pass(endpoint, params, seen, stats))
                    else:
                        yield from self._one_pass(endpoint, params, seen, stats)
                    break
                except _Drift as drift:
                    if restarts >= self.config.max_paging_restarts:
                        raise PagingInconsistentError(
                            f"the collection could not be read completely ({drift.reason}); gave up after "
                            f"{restarts + 1} passes so as not to return an incomplete set",
                            district_id=self.config.district_id,
                            endpoint=label,
                            expected_total=drift.expected,
                            observed_total=drift.observed,
                        ) from None
                    restarts += 1
                    stats.add(restarts=1)
                    log.warning(
                        "district %s %s: %s; re-reading from offset 0 (restart %d of %d)",
                        self.config.district_id,
                        label,
                        drift.reason,
                        restarts,
                        self.config.max_paging_restarts,
                    )
            stats.complete = True
        finally:
            stats.seconds = time.perf_counter() - started
            stats.token_requests = self._token_fetches() - token_fetches_before

    def _as_v1p1(self, endpoint: Endpoint, batches: Iterator[list[Record]]) -> Iterator[list[Record]]:
        """A 1.2 pass's batches in 1.1 shape: mapped after de-duplication (so completeness counts what the
        SIS served), each record that has no 1.1 shape moved to the batch's issues with check and field."""
        try:
            for batch in batches:
                records, unmappable = v1p2.map_page(endpoint.envelope, batch)
                served_issues: list[RecordIssue] = [
                    replace(issue, record=v1p2.without_secrets(issue.record))
                    for issue in getattr(batch, "issues", ())
                ]
                for issue in unmappable:
                    log.warning(
                        "district %s %s: record %r has no OneRoster 1.1 shape (%s, field %s); it is quarantined",
                        self.config.district_id,
                        self._label(endpoint),
                        issue.sourced_id,
                        issue.check,
                        issue.field,
                    )
                yield Batch(records, served_issues + unmappable)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # the pass's pool and gate shut down now, not whenever the generator is collected

    def _one_pass(
        self, endpoint: Endpoint, params: dict[str, str], seen: SeenRecords, stats: FetchStats
    ) -> Iterator[list[Record]]:
        """One read from offset 0; raises _Drift unless it provably received every record.

        Proof is two things at once: paging ended on an empty page, or on a page shorter than asked
        that reached X-Total-Count (or the server's Link said there is no next page); and the rows of
        X-Total-Count this pass received (``SeenRecords.in_pass``: distinct sourcedIds and the SIS's own
        extra copies) equal it. A count alone ends nothing: a full page that reaches it is followed by
        one more request, which must come back empty.
        """
        seen.start_pass()
        cancel = threading.Event()
        first = self._fetch_page(endpoint, params, 0, self.config.page_size, stats, cancel)
        stats.reported_total = first.total
        if self.config.concurrent_paging and first.total is not None:
            yield from self._remaining_pages_concurrently(endpoint, params, first, seen, stats)
        else:
            yield from self._hand_out(first, seen, stats)
            yield from self._remaining_pages_sequentially(endpoint, params, first, seen, stats)
        total = first.total
        if total is not None and seen.in_pass != total:
            reason = f"X-Total-Count is {total} but {seen.in_pass} distinct records arrived"
            if seen.repeats_in_pass:
                reason += f" (and {seen.repeats_in_pass} identical repeat(s))"
            raise _Drift(reason, total, seen.in_pass)
        stats.add(duplicates_dropped=seen.repeats_in_pass)

    def _remaining_pages_concurrently(
        self, endpoint: Endpoint, params: dict[str, str], first: _Page, seen: SeenRecords, stats: FetchStats
    ) -> Iterator[list[Record]]:
        total = first.total
        assert total is not None
        received = len(first.records)
        if received > total:
            raise _Drift(
                f"X-Total-Count is {total} but offset 0 returned {received} records", total, received
            )
        if received == 0:
            if total:
                raise _Drift(f"X-Total-Count is {total} but offset 0 returned no records", total, 0)
            return  # an empty page that agrees with a total of 0
        if received == total and received < self.config.page_size:
            yield from self._hand_out(first, seen, stats)  # a short page that reached the count: the end
            return
        # A page 1 shorter than asked, with more to come, is the server's page cap, or records that went
        # missing from it; either way later pages are asked for at that size. Under a real cap each is
        # that long until the last; a missing record shows at the end as a distinct count below the total.
        stride = min(self.config.page_size, received)
        offsets = deque(range(stride, total, stride))
        if total % stride == 0:
            offsets.append(total)  # the last page would be full: only an empty page after it proves the end
        window = self.config.max_concurrency
        cancel = threading.Event()
        gate = ParseGate(self.config.parse_ahead)
        pool = ThreadPoolExecutor(
            max_workers=min(window, len(offsets)), thread_name_prefix=f"oneroster-{self.config.district_id}"
        )
        pending: deque[tuple[int, Future[_Page]]] = deque()
        submitted = 0

        def parse_turn(index: int) -> Callable[[], None]:
            def wait() -> None:
                if not gate.enter(index):
                    raise _Cancelled()

            return wait

        def refill() -> None:
            nonlocal submitted
            while offsets and len(pending) < window:
                offset = offsets.popleft()
                fetch = pool.submit(
                    self._fetch_page,
                    endpoint,
                    params,
                    offset,
                    stride,
                    stats,
                    cancel,
                    before_parse=parse_turn(submitted),
                )
                pending.append((offset, fetch))
                submitted += 1

        try:
            refill()  # the window is already fetching while the consumer works on page 1
            yield from self._hand_out(first, seen, stats)
            first.records = []  # handed out: the consumer holds its batch; page 1 must not stay pinned all pull
            while pending:
                offset, future = pending.popleft()
                page = future.result()
                del future  # the page is ours now; its future would pin it past its hand-out
                gate.took_next()
                refill()
                if page.total is not None and page.total != total:
                    raise _Drift(f"X-Total-Count moved from {total} to {page.total}", total, page.total)
                expected = max(0, min(stride, total - offset))
                if len(page.records) != expected:
                    raise _Drift(
                        f"offset {offset} returned {len(page.records)} records where {expected} were due "
                        f"(X-Total-Count {total})",
                        total,
                        page.total,
                    )
                yield from self._hand_out(page, seen, stats)
                del page  # handed out: not pinned while the next page is awaited
        finally:
            cancel.set()
            gate.close()
            pool.shutdown(wait=True, cancel_futures=True)
            stats.raise_to(peak_parsed_ahead=gate.peak_admitted)

    def _remaining_pages_sequentially(
        self, endpoint: Endpoint, params: dict[str, str], first: _Page, seen: SeenRecords, stats: FetchStats
    ) -> Iterator[list[Record]]:
        """Page by Link rel=next, or by offset until an empty page (or a short one that reached the total).

        Without X-Total-Count a short page proves nothing (a record may have gone missing from it, or
        the server caps pages), so only an empty page ends the pull.
        """
        limit = self.config.page_size
        total = first.total
        page = first
        received = len(first.records)  # rows, duplicates included: the next offset
        largest = 0  # the longest page so far: what a page that is not the last holds under a server's cap
        visited: set[str] = set()
        cancel = threading.Event()
        while True:
            if page.total != total:
                raise _Drift(f"X-Total-Count moved from {total} to {page.total}", total, page.total)
            if total is not None and seen.in_pass > total:
                raise _Drift(
                    f"X-Total-Count is {total} but more distinct records arrived ({seen.in_pass})",
                    total,
                    seen.in_pass,
                )
            if page.has_link:
                # The server pages us; its rel=next is authoritative and its absence means the end.
                if page.next_url is None:
                    break
                if page.next_url in visited:
                    raise PagingInconsistentError(
                        "Link rel=next points back to a page already read (paging loop)",
                        district_id=self.config.district_id,
                        endpoint=self._label(endpoint),
                    )
                visited.add(page.next_url)
                page = self._fetch_page(endpoint, params, received, limit, stats, cancel, url=page.next_url)
            else:
                if not page.records:
                    break
                largest = max(largest, len(page.records))
                short = len(page.records) < (limit if page is first else largest)
                if total is not None and short and seen.in_pass >= total:
                    break  # a short page that reached the count
                page = self._fetch_page(endpoint, params, received, limit, stats, cancel)
            received += len(page.records)
            yield from self._hand_out(page, seen, stats)

    def _hand_out(self, page: _Page, seen: SeenRecords, stats: FetchStats) -> Iterator[list[Record]]:
        """Yield the page's first copies as a ``Batch``, with any conflicting duplicates as its issues."""
        sorted_page = seen.keep_new(page.records)
        # The empty page that proves the end is a request, not a page of the collection. Identical repeats
        # are counted once the pass is complete (a re-read would count them twice).
        stats.add(
            pages=1 if page.records or page.offset == 0 else 0,
            records=len(sorted_page.fresh),
            conflicting_duplicates=len(sorted_page.issues),
        )
        for issue in sorted_page.issues:
            log.warning(
                "district %s %s offset=%d: sourcedId %r served again with different content; every copy is "
                "quarantined",
                self.config.district_id,
                stats.endpoint,
                page.offset,
                issue.sourced_id,
            )
        if sorted_page.fresh or sorted_page.issues:
            yield Batch(sorted_page.fresh, sorted_page.issues)

    def _fetch_page(
        self,
        endpoint: Endpoint,
        params: dict[str, str],
        offset: int,
        limit: int,
        stats: FetchStats,
        cancel: threading.Event,
        *,
        url: str | None = None,
        before_parse: Callable[[], None] | None = None,
    ) -> _Page:
        label = self._label(endpoint)
        if url is None:
            target = self._base.join(endpoint.collection)
            query: dict[str, str] | None = {**params, "limit": str(limit), "offset": str(offset)}
        else:
            target = self._same_origin(url, label)
            query = None
        payload, response = self._get_json(target, query, label, stats, cancel, before_parse)
        records = self._records_of(payload, endpoint, label)
        links = parse_link_header(response.headers.get("Link"))
        next_url = links.get("next")
        log.debug(
            "district %s %s offset=%d: %d records (X-Total-Count=%s)",
            self.config.district_id,
            label,
            offset,
            len(records),
            response.headers.get("X-Total-Count"),
        )
        return _Page(
            offset=offset,
            records=records,
            total=parse_total_count(response.headers.get("X-Total-Count")),
            next_url=str(response.url.join(next_url)) if next_url else None,
            has_link="Link" in response.headers,
        )

    def _records_of(self, payload: Any, endpoint: Endpoint, label: str) -> list[Record]:
        district = self.config.district_id
        if not isinstance(payload, dict) or endpoint.envelope not in payload:
            raise EnvelopeError(
                f"200 response without the {endpoint.envelope!r} key (refusing to read it as an empty list)",
                district_id=district,
                endpoint=label,
                field=endpoint.envelope,
            )
        records = payload[endpoint.envelope]
        if not isinstance(records, list):
            raise EnvelopeError(
                f"{endpoint.envelope!r} is a {type(records).__name__}, not a list",
                district_id=district,
                endpoint=label,
                field=endpoint.envelope,
            )
        for index, record in enumerate(records):
            if not isinstance(record, dict) or not isinstance(record.get("sourcedId"), str):
                raise EnvelopeError(
                    "record without a string sourcedId",
                    district_id=district,
                    endpoint=label,
                    field=f"{endpoint.envelope}[{index}].sourcedId",
                )
        return records

    def _same_origin(self, url: str, label: str) -> httpx.URL:
        """Refuse a Link that leaves the district's API host: it would receive our bearer token."""
        target = httpx.URL(url)
        if (target.scheme, target.host, target.port) != (self._base.scheme, self._base.host, self._base.port):
            raise PagingInconsistentError(
                f"Link rel=next points to another origin ({target.scheme}://{target.host}); not following it",
                district_id=self.config.district_id,
                endpoint=label,
            )
        return target

    # ------------------------------------------------------------------ one request, with retries

    def _get_json(
        self,
        url: httpx.URL,
        params: dict[str, str] | None,
        label: str,
        stats: FetchStats,
        cancel: threading.Event,
        before_parse: Callable[[], None] | None = None,
    ) -> tuple[Any, httpx.Response]:
        """GET with retries; a body is parsed inside the retry policy (a truncated one is re-fetched),
        after ``before_parse`` (the concurrent window's gate: it may wait for the consumer)."""
        district = self.config.district_id
        policy = RetryPolicy(
            max_retries=self.config.max_retries,
            backoff_base_seconds=self.config.backoff_base_seconds,
            backoff_max_seconds=self.config.backoff_max_seconds,
            sleep=lambda seconds: _sleep_unless(cancel, seconds),
        )
        attempts = 0
        corrupt_reads = 0

        def attempt() -> tuple[Any, httpx.Response]:
            nonlocal attempts, corrupt_reads
            if cancel.is_set():
                raise _Cancelled()
            attempts += 1
            stats.add(requests=1)
            response = self._send(url, params)
            stats.add(bytes=len(response.content))
            try:
                return self._decode(response, label, stats, before_parse), response
            except CorruptBody as corrupt:
                corrupt_reads += 1
                if corrupt_reads > 1:  # read twice, same bytes: the SIS serves them, retrying will not help
                    raise EnvelopeError(
                        f"{corrupt.reason} (read {corrupt_reads} times)",
                        district_id=district,
                        endpoint=label,
                        field="body",
                    ) from None
                raise TransientFailure(corrupt.reason, status=response.status_code) from None

        def on_retry(failure: TransientFailure, wait: float) -> None:
            stats.add(retries=1)
            log.warning(
                "district %s %s: %s; retry %d of %d in %.2fs",
                district,
                label,
                failure.reason,
                attempts,
                self.config.max_retries,
                wait,
            )

        try:
            return policy.run(attempt, on_retry=on_retry)
        except TransientFailure as failure:
            raise RetriesExhaustedError(
                f"gave up after {attempts} attempts; last failure: {failure.reason}",
                district_id=district,
                endpoint=label,
                attempts=attempts,
                last_failure=failure.reason,
                status=failure.status,
            ) from None

    def _send(self, url: httpx.URL, params: dict[str, str] | None) -> httpx.Response:
        """One attempt, inside a concurrency slot; transient transport failures become TransientFailure."""
        with self._slots:
            with self._stats_lock:
                self._in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            try:
                return self._http.get(url, params=params)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                # Class names only: httpx messages can quote the URL, never headers, but stay minimal.
                raise TransientFailure(transport_reason(exc)) from None
            finally:
                with self._stats_lock:
                    self._in_flight -= 1

    def _decode(
        self,
        response: httpx.Response,
        label: str,
        stats: FetchStats,
        before_parse: Callable[[], None] | None = None,
    ) -> Any:
        status = response.status_code
        district = self.config.district_id
        if status in self.config.retry_statuses:
            reason = f"HTTP {status}"
            if status >= 500:  # a 500 from the SIS itself says why; a proxy's HTML page carries no imsx
                imsx = ImsxStatus.from_body(_json_or_none(response.content))
                reason += f" ({imsx.summary()})" if imsx else ""
            raise TransientFailure(
                reason, status=status, retry_after=parse_retry_after(response.headers.get("Retry-After"))
            )
        if status >= 300:
            imsx = ImsxStatus.from_body(_json_or_none(response.content))
            summary = f"HTTP {status}" + (f" ({imsx.summary()})" if imsx else "")
            if status == 401:
                raise AuthenticationError(
                    f"{summary}: {self._refusal()}", district_id=district, endpoint=label, status=status
                )
            raise OneRosterHTTPError(summary, district_id=district, endpoint=label, status=status, imsx=imsx)
        if before_parse is not None:
            before_parse()
        started = time.perf_counter()
        try:
            decoded = parse_json(response.content)  # CorruptBody when garbled beyond reading
        except TransientFailure as failure:  # truncated or invalid JSON: retried as before
            raise TransientFailure(failure.reason, status=status) from None
        finally:
            stats.add(parse_seconds=time.perf_counter() - started)
        if decoded.invalid_utf8_offset is not None:
            stats.add(invalid_utf8_pages=1)
            log.warning(
                "district %s %s: invalid UTF-8 at byte offset %d of the response; decoded leniently, the "
                "records holding undecodable bytes are quarantined",
                district,
                label,
                decoded.invalid_utf8_offset,
            )
        return decoded.payload

    def _refusal(self) -> str:
        """What a 401 from the API means under this client's auth scheme (no credential in it)."""
        if self.config.auth_scheme == "oauth1":
            return (
                "the SIS refused the OAuth 1.0a request signature (HMAC-SHA256); check the consumer key and "
                "secret (client_id_env / client_secret_env) and that this machine's clock is correct"
            )
        return "the API refused a freshly issued token; check the application's permissions"

    @staticmethod
    def _label(endpoint: Endpoint) -> str:
        return f"/{endpoint.collection}"


def _sleep_unless(cancel: threading.Event, seconds: float) -> None:
    if cancel.wait(seconds):
        raise _Cancelled()


def _json_or_none(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def _parse_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None
