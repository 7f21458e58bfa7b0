"""Scripted misbehaviour, so client tests can prove they recover from what real SISes do.

A rule matches requests by method and a path substring; it may skip the first ``after`` matches
(fail page 3, not page 1) and fire ``times`` times (None = forever). Kinds:

- ``status``: answer with ``status`` (429 carries ``Retry-After`` and imsx ``server_busy``;
  502/503/504 answer with an HTML body, as the load balancer in front of a real SIS does);
- ``reset``: close the connection without any response (RST);
- ``truncate``: a well-formed HTTP response whose JSON body is cut in half;
- ``incomplete``: headers promise the full body, the connection closes halfway;
- ``slow``: sleep ``delay_seconds`` and then answer normally;
- ``no_envelope``: the real 200 answer, headers (``X-Total-Count``, ``Link``) intact, with the plural
  envelope key (``users``, ``orgs`` ...) taken out of the body, as a broken SIS release or a proxy's
  rewritten body does: a client reading it as "no records" would delete the whole collection.

Paging faults (see ``paging_faults``) answer normally and then change what a list page says, so
a client's completeness rules can be tested against an SIS that lies or changes mid-pull:

- ``total_count``: X-Total-Count becomes ``total``, or the true count plus ``total_delta``;
- ``drop``: ``count`` records are cut from the middle of the page (a short page), the total kept;
- ``mutate``: the simulator mutation ``mutation`` (with ``mutation_params``) is applied to the
  district right after the page is rendered, so the next page is served from the changed district.

``offset`` narrows any rule to requests at that ``offset`` query parameter (absent = 0): with
``offset=0, times=None`` a rule hits every page 1 and nothing else.

Data faults change what a list endpoint serves rather than how; they target one record by
``sourced_id``, fire on every list response that carries it (``times`` counts those, ``after`` skips
the first ones) and never take the place of a transport fault:

- ``nul``: a NUL character (``\u0000`` in the JSON) inside the record's text ``field``;
- ``invalid_utf8``: a byte that is not UTF-8 (0xE9, Latin-1 "é") at the end of the record's ``field``;
- ``duplicate``: the record served twice, ``X-Total-Count`` one higher on every page: without
  ``field`` an identical copy right after the original (a SIS's own duplicate row, on the same page
  unless the original ends one); with ``field`` a changed copy (a different record under the same
  sourcedId) at the end of the listing.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson

PAGING_KINDS = ("total_count", "drop", "mutate")
DATA_KINDS = ("nul", "invalid_utf8", "duplicate")
KINDS = ("status", "reset", "truncate", "incomplete", "slow", "no_envelope", *PAGING_KINDS, *DATA_KINDS)
#: The settings only paging faults take (the admin endpoint accepts them in a fault's JSON).
PAGING_SETTINGS = frozenset({"offset", "total", "total_delta", "count", "mutation", "mutation_params"})
#: The settings only data faults take.
DATA_SETTINGS = frozenset({"sourced_id", "field"})

Record = dict[str, Any]
_MARK = "\ue000"  # stands in for the invalid byte until the page is rendered
_MARK_BYTES = _MARK.encode()
INVALID_BYTE = b"\xe9"


@dataclass
class FaultRule:
    kind: str
    status: int | None = None
    retry_after: float | None = None
    times: int | None = 1
    after: int = 0
    path_contains: str | None = None
    method: str | None = None
    delay_seconds: float = 0.0
    # paging faults
    offset: int | None = None
    total: int | None = None
    total_delta: int = 0
    count: int = 1
    mutation: str | None = None
    mutation_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    results: list[Any] = dataclasses.field(
        default_factory=list, repr=False
    )  # the MutationResult of each ``mutate``
    sourced_id: str | None = None  # data faults: the record they change
    field: str | None = None  # data faults: the field they change
    fired: int = 0
    seen: int = dataclasses.field(default=0, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "status": self.status,
            "retry_after": self.retry_after,
            "times": self.times,
            "after": self.after,
            "path_contains": self.path_contains,
            "method": self.method,
            "delay_seconds": self.delay_seconds,
            "offset": self.offset,
            "total": self.total,
            "total_delta": self.total_delta,
            "count": self.count,
            "mutation": self.mutation,
            "mutation_params": self.mutation_params,
            "sourced_id": self.sourced_id,
            "field": self.field,
            "fired": self.fired,
        }

    def _matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        if self.path_contains and self.path_contains not in path:
            return False
        return self.times is None or self.fired < self.times


class Faults:
    """The server's fault rules; rules are tried in the order added and the first that fires wins."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(
        self,
        status: int | None = None,
        *,
        kind: str | None = None,
        retry_after: float | None = None,
        times: int | None = 1,
        after: int = 0,
        path_contains: str | None = None,
        method: str | None = None,
        delay_seconds: float = 0.0,
        offset: int | None = None,
        total: int | None = None,
        total_delta: int = 0,
        count: int = 1,
        mutation: str | None = None,
        mutation_params: dict[str, Any] | None = None,
        sourced_id: str | None = None,
        field: str | None = None,
    ) -> FaultRule:
        kind = kind or ("status" if status is not None else None)
        if kind not in KINDS:
            raise ValueError(f"fault kind must be one of {KINDS} (or give status=...), got {kind!r}")
        if kind == "status" and status is None:
            raise ValueError("a status fault needs status=")
        if kind == "slow" and delay_seconds <= 0:
            raise ValueError("a slow fault needs delay_seconds > 0")
        if kind in PAGING_KINDS:
            _check_paging_fault(kind, offset, total, total_delta, count, mutation, mutation_params)
        if kind in DATA_KINDS and not sourced_id:
            raise ValueError(f"a {kind} fault needs sourced_id= (the record it changes)")
        if kind in ("nul", "invalid_utf8") and not field:
            raise ValueError(f"a {kind} fault needs field= (the text field it corrupts)")
        rule = FaultRule(
            kind,
            status,
            retry_after,
            times,
            after,
            path_contains,
            method.upper() if method else None,
            delay_seconds,
            offset=offset,
            total=total,
            total_delta=total_delta,
            count=count,
            mutation=mutation,
            mutation_params=dict(mutation_params or {}),
            sourced_id=sourced_id,
            field=field,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, method: str, path: str, query: str = "") -> FaultRule | None:
        """The rule that fires for this request, counting it as fired (atomic across threads)."""
        with self._lock:
            for rule in self._rules:
                if rule.kind in DATA_KINDS or not rule._matches(method, path):
                    continue
                if rule.offset is not None and _offset_of(query) != rule.offset:
                    continue
                rule.seen += 1
                if rule.seen <= rule.after:
                    continue
                rule.fired += 1
                return rule
        return None

    # -------------------------------------------------------------------------------- data faults

    def _fire_data(self, kind: str, method: str, path: str, carries: Any) -> list[FaultRule]:
        """The data rules of ``kind`` for this response whose record it ``carries``, counted as fired."""
        fired = []
        with self._lock:
            for rule in self._rules:
                if rule.kind != kind or not rule._matches(method, path) or not carries(rule.sourced_id):
                    continue
                rule.seen += 1
                if rule.seen <= rule.after:
                    continue
                rule.fired += 1
                fired.append(rule)
        return fired

    def rewrite_listing(self, method: str, path: str, records: list[Record]) -> list[Record]:
        """``duplicate`` rules: the listing with a copy of each target record: an identical copy right after
        its twin (the SIS's own duplicate row), a conflicting one at the end of the listing."""
        if not any(r.kind == "duplicate" for r in self.rules):
            return records
        by_id = {r.get("sourcedId"): r for r in records}
        rules = self._fire_data("duplicate", method, path, lambda sid: sid in by_id)
        if not rules:
            return records
        conflicting: list[Record] = []
        identical: dict[str | None, int] = {}  # sourcedId -> extra identical copies
        for rule in rules:
            copy = dict(by_id[rule.sourced_id])
            if rule.field:
                copy[rule.field] = f"{copy.get(rule.field) or ''} (other record)"
                conflicting.append(copy)
            else:
                identical[rule.sourced_id] = identical.get(rule.sourced_id, 0) + 1
        listing: list[Record] = []
        for record in records:  # an identical row comes right after its twin, as a sorted listing has it
            listing.append(record)
            listing.extend(dict(record) for _ in range(identical.get(record.get("sourcedId"), 0)))
        return [*listing, *conflicting]

    def corrupt_page(self, method: str, path: str, page: list[Record]) -> tuple[list[Record], bool]:
        """``nul`` / ``invalid_utf8`` rules whose record is on this page: the page with that record's field
        corrupted (a copy; the district is untouched), and whether ``finish_body`` must run on the body."""
        if not any(r.kind in ("nul", "invalid_utf8") for r in self.rules):
            return page, False
        ids = {r.get("sourcedId") for r in page}
        rules = [
            *self._fire_data("nul", method, path, lambda sid: sid in ids),
            *self._fire_data("invalid_utf8", method, path, lambda sid: sid in ids),
        ]
        if not rules:
            return page, False
        out = list(page)
        for rule in rules:
            for index, record in enumerate(out):
                if record.get("sourcedId") != rule.sourced_id:
                    continue
                copy = dict(record)
                assert rule.field is not None  # a data fault names its field (checked when it is added)
                text = str(copy.get(rule.field) or "")
                middle = len(text) // 2
                copy[rule.field] = (
                    text[:middle] + "\x00" + text[middle:] if rule.kind == "nul" else text + _MARK
                )
                out[index] = copy
        return out, any(r.kind == "invalid_utf8" for r in rules)


def finish_body(body: bytes) -> bytes:
    """Put the byte that is not UTF-8 where ``invalid_utf8`` left its placeholder."""
    return body.replace(_MARK_BYTES, INVALID_BYTE)


def _offset_of(query: str) -> int | None:
    """The request's ``offset`` parameter (0 when absent, as the API reads it); None if not a number."""
    value = dict(parse_qsl(query, keep_blank_values=True)).get("offset", "0").strip() or "0"
    try:
        return int(value)
    except ValueError:
        return None


def _check_paging_fault(
    kind: str,
    offset: int | None,
    total: int | None,
    total_delta: int,
    count: int,
    mutation: str | None,
    mutation_params: dict[str, Any] | None,
) -> None:
    """Refuse a paging fault that could not do what it says, when it is added rather than when it fires."""
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int) or offset < 0):
        raise ValueError(f"offset must be an int >= 0, got {offset!r}")
    if kind == "total_count":
        if total is None and not total_delta:
            raise ValueError(
                "a total_count fault needs total= (the header's value) or total_delta= (added to it)"
            )
        if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
            raise ValueError(f"total must be an int >= 0, got {total!r}")
        if isinstance(total_delta, bool) or not isinstance(total_delta, int):
            raise ValueError(f"total_delta must be an int, got {total_delta!r}")
    if kind == "drop" and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"a drop fault needs count >= 1 records to drop, got {count!r}")
    if kind == "mutate":
        if not isinstance(mutation, str):
            raise ValueError("a mutate fault needs mutation= (a simulator mutation, e.g. 'add_students')")
        # Imported when needed (as endpoints.py does): the fault rules themselves need no mutations.
        from roster_pipeline.simulator.admin import mutation_arguments

        mutation_arguments(mutation, mutation_params)  # raises ValueError naming the bad parameter


def strip_envelope(body: bytes) -> bytes:
    """The JSON body without its list-valued top-level keys (the OneRoster envelope); other bodies as they are."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(payload, dict):
        return body
    return orjson.dumps({key: value for key, value in payload.items() if not isinstance(value, list)})
