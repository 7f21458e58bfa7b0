"""Scripted misbehaviour, so client tests can prove they recover from what real SISes do.

A rule matches requests by method and a path substring; it may skip the first ``after`` matches
(fail page 3, not page 1) and fire ``times`` times (None = forever). Kinds:

- ``status``: answer with ``status`` (429 carries ``Retry-After`` and imsx ``server_busy``;
  502/503/504 answer with an HTML body, as the load balancer in front of a real SIS does);
- ``reset``: close the connection without any response (RST);
- ``truncate``: a well-formed HTTP response whose JSON body is cut in half;
- ``incomplete``: headers promise the full body, the connection closes halfway;
- ``slow``: sleep ``delay_seconds`` and then answer normally.

Paging faults (see ``paging_faults``) answer normally and then change what a list page says, so
a client's completeness rules can be tested against an SIS that lies or changes mid-pull:

- ``total_count``: X-Total-Count becomes ``total``, or the true count plus ``total_delta``;
- ``drop``: ``count`` records are cut from the middle of the page (a short page), the total kept;
- ``mutate``: the simulator mutation ``mutation`` (with ``mutation_params``) is applied to the
  district right after the page is rendered, so the next page is served from the changed district.

``offset`` narrows any rule to requests at that ``offset`` query parameter (absent = 0): with
``offset=0, times=None`` a rule hits every page 1 and nothing else.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

PAGING_KINDS = ("total_count", "drop", "mutate")
KINDS = ("status", "reset", "truncate", "incomplete", "slow", *PAGING_KINDS)
#: The settings only paging faults take (the admin endpoint accepts them in a fault's JSON).
PAGING_SETTINGS = frozenset({"offset", "total", "total_delta", "count", "mutation", "mutation_params"})


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
    mutation_params: dict[str, Any] = field(default_factory=dict)
    results: list[Any] = field(default_factory=list, repr=False)  # the MutationResult of each ``mutate``
    fired: int = 0
    seen: int = field(default=0, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "status": self.status, "retry_after": self.retry_after, "times": self.times,
            "after": self.after, "path_contains": self.path_contains, "method": self.method,
            "delay_seconds": self.delay_seconds, "offset": self.offset, "total": self.total,
            "total_delta": self.total_delta, "count": self.count, "mutation": self.mutation,
            "mutation_params": self.mutation_params, "fired": self.fired,
        }


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
        rule = FaultRule(
            kind, status, retry_after, times, after, path_contains, method.upper() if method else None, delay_seconds,
            offset=offset, total=total, total_delta=total_delta, count=count, mutation=mutation,
            mutation_params=dict(mutation_params or {}),
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
                if rule.method and rule.method != method:
                    continue
                if rule.path_contains and rule.path_contains not in path:
                    continue
                if rule.offset is not None and _offset_of(query) != rule.offset:
                    continue
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                rule.seen += 1
                if rule.seen <= rule.after:
                    continue
                rule.fired += 1
                return rule
        return None


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
            raise ValueError("a total_count fault needs total= (the header's value) or total_delta= (added to it)")
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
