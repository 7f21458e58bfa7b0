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
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import orjson

KINDS = ("status", "reset", "truncate", "incomplete", "slow", "no_envelope")


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
    fired: int = 0
    seen: int = field(default=0, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "status": self.status, "retry_after": self.retry_after, "times": self.times,
            "after": self.after, "path_contains": self.path_contains, "method": self.method,
            "delay_seconds": self.delay_seconds, "fired": self.fired,
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
    ) -> FaultRule:
        kind = kind or ("status" if status is not None else None)
        if kind not in KINDS:
            raise ValueError(f"fault kind must be one of {KINDS} (or give status=...), got {kind!r}")
        if kind == "status" and status is None:
            raise ValueError("a status fault needs status=")
        if kind == "slow" and delay_seconds <= 0:
            raise ValueError("a slow fault needs delay_seconds > 0")
        rule = FaultRule(
            kind, status, retry_after, times, after, path_contains, method.upper() if method else None, delay_seconds
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

    def take(self, method: str, path: str) -> FaultRule | None:
        """The rule that fires for this request, counting it as fired (atomic across threads)."""
        with self._lock:
            for rule in self._rules:
                if rule.method and rule.method != method:
                    continue
                if rule.path_contains and rule.path_contains not in path:
                    continue
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                rule.seen += 1
                if rule.seen <= rule.after:
                    continue
                rule.fired += 1
                return rule
        return None


def strip_envelope(body: bytes) -> bytes:
    """The JSON body without its list-valued top-level keys (the OneRoster envelope); other bodies as they are."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(payload, dict):
        return body
    return orjson.dumps({key: value for key, value in payload.items() if not isinstance(value, list)})
