"""The pure parts of paging: endpoints and envelopes, query parameters, Link headers, and dedupe.

Kept free of I/O so the rules that decide whether a pull is complete can be tested in isolation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from roster_pipeline.resources import RESOURCES_BY_COLLECTION, resource

Record = dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    """A OneRoster list endpoint and the keys its responses use."""

    collection: str  # path segment under the base URL, e.g. "academicSessions" or "schools"
    envelope: str  # plural key of list responses
    singular: str  # key of single-record responses


# Derived endpoints answer with their base collection's envelope (GUIDE §4).
_DERIVED: dict[str, str] = {
    "schools": "orgs",
    "students": "users",
    "teachers": "users",
    "terms": "academicSessions",
    "gradingPeriods": "academicSessions",
}


def endpoint_for(name: str) -> Endpoint:
    """Accept a catalogue name (``academic_sessions``), a collection (``academicSessions``) or a derived
    endpoint (``schools``, ``students``, ``teachers``, ``terms``, ``gradingPeriods``)."""
    if name in _DERIVED:
        base = RESOURCES_BY_COLLECTION[_DERIVED[name]]
        return Endpoint(name, base.envelope, base.singular)
    found = resource(name)
    return Endpoint(found.collection, found.envelope, found.singular)


def format_since(since: datetime) -> str:
    """The UTC timestamp form OneRoster servers compare ``dateLastModified`` against.

    A naive datetime is refused: guessing its zone would silently shift a delta window by hours and
    miss changes.
    """
    if since.tzinfo is None or since.tzinfo.utcoffset(since) is None:
        raise ValueError("since must be timezone-aware (e.g. datetime(..., tzinfo=timezone.utc))")
    utc = since.astimezone(timezone.utc)
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


_LOGICAL = re.compile(r"\s(AND|OR)\s")

#: The comparison operators of a OneRoster 1.1 filter predicate.
FILTER_OPERATORS = ("=", "!=", ">", ">=", "<", "<=", "~")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def quote_filter_value(value: str) -> str:
    """``value`` as a filter value: in single quotes, a quote inside written twice (``'O''Brien'``).

    That doubling is how OneRoster 1.1 servers read a quote inside a value, so no value, whatever it
    holds (quotes, `` AND ``, ``OR role='x'``), can end its predicate early and add one of its own.
    Control characters are refused: no SIS stores them in a roster field, and some proxies cut a
    query string at them.
    """
    if _CONTROL.search(value):
        raise ValueError(f"filter value {value!r} contains a control character; no OneRoster field holds one")
    return "'" + value.replace("'", "''") + "'"


def filter_predicate(field: str, operator: str, value: str) -> str:
    """One predicate ``field<op>'value'``, with the value quoted by ``quote_filter_value``.

    Build a filter from a value you did not write yourself (a registry setting, a school id) with
    this, never with an f-string: ``filter_predicate("familyName", "=", "O'Brien")``.
    """
    if not _FIELD_NAME.match(field):
        raise ValueError(f"filter field {field!r} is not a OneRoster field name (letters, digits, _ and dots)")
    if operator not in FILTER_OPERATORS:
        raise ValueError(f"filter operator {operator!r} is not one of {' '.join(FILTER_OPERATORS)}")
    return f"{field}{operator}{quote_filter_value(value)}"


def build_filter(filter: str | None, since: datetime | None) -> str | None:
    """Combine the caller's filter with the delta predicate ``dateLastModified>'…'``.

    OneRoster 1.1 allows at most two predicates joined by one AND or OR, so a caller filter that
    already has two predicates cannot take a third; that is refused here rather than sent and
    rejected (or worse, misread) by the SIS. A caller filter whose quotes do not pair up (a value
    pasted in with its quote not doubled: ``familyName='O'Brien'``) is refused too: sent, the SIS
    would read a different predicate than the one meant, or swallow the delta window.
    """
    delta = f"dateLastModified>'{format_since(since)}'" if since is not None else None
    caller = filter.strip() if filter else None
    if not caller:
        return delta
    _check_quoting(caller)
    if delta is None:
        return caller
    if _LOGICAL.search(_strip_quoted(caller)):
        raise ValueError(
            f"cannot add the delta predicate to filter {caller!r}: OneRoster 1.1 allows at most two "
            "predicates per filter"
        )
    return f"{caller} AND {delta}"


def _check_quoting(text: str) -> None:
    """Refuse a filter with control characters or a single-quoted value left open."""
    if _CONTROL.search(text):
        raise ValueError(f"filter {text!r} contains a control character")
    if _strip_quoted(text).count("'") % 2:
        raise ValueError(
            f"filter {text!r} has a quote that does not pair up: write a quote inside a value twice "
            "(familyName='O''Brien'), or build the predicate with filter_predicate()"
        )


def _strip_quoted(text: str) -> str:
    """Blank out quoted values (a doubled quote stays inside its value) so an ``' AND '`` inside a value
    is not taken for the operator."""
    return re.sub(r"'(?:[^']|'')*'", "''", text)


_LINK_PART = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")


def parse_link_header(value: str | None) -> dict[str, str]:
    """Map each ``rel`` of an RFC 8288 Link header to its URL (``{"next": url, "last": url}``)."""
    links: dict[str, str] = {}
    if not value:
        return links
    for match in _LINK_PART.finditer(value):
        url, params = match.group(1).strip(), match.group(2)
        for param in params.split(";"):
            key, _, raw = param.partition("=")
            if key.strip().lower() != "rel":
                continue
            for rel in raw.strip().strip('"').split():
                links.setdefault(rel.lower(), url)
    return links


_COUNT = re.compile(r"[0-9]{1,18}")


def parse_total_count(value: str | None) -> int | None:
    """X-Total-Count as an int, or None when the server omits it or sends something unusable.

    Only plain ASCII digits count (``int()`` alone would take ``+5``, ``1_000`` or Arabic-Indic
    digits); a count past 18 digits is garbage, not a district.
    """
    if value is None:
        return None
    text = value.strip()
    return int(text) if _COUNT.fullmatch(text) else None


class SeenIds:
    """sourcedIds already yielded in this pull, so overlapping pages never yield a record twice.

    Also counts the distinct ids received in the current pass (``in_pass``): a re-read yields only
    records not yielded before, yet its completeness is judged on everything it received. Holds the
    id strings the records already carry (no copies) with the number of the pass that last saw each,
    which is the one per-pull cost that grows with district size: about 100 bytes per record.
    """

    def __init__(self) -> None:
        self._last_pass: dict[str, int] = {}
        self._pass = 0
        self.in_pass = 0

    def __len__(self) -> int:
        return len(self._last_pass)

    def start_pass(self) -> None:
        """A new read from offset 0 begins: ``in_pass`` counts from zero again."""
        self._pass += 1
        self.in_pass = 0

    def keep_new(self, records: list[Record]) -> tuple[list[Record], int]:
        """The records not seen before (first occurrence wins) and how many duplicates were dropped."""
        fresh: list[Record] = []
        dropped = 0
        for record in records:
            sourced_id = record.get("sourcedId")
            last = self._last_pass.get(sourced_id)
            if last != self._pass:
                self._last_pass[sourced_id] = self._pass
                self.in_pass += 1
            if last is None:
                fresh.append(record)
            else:
                dropped += 1
        return fresh, dropped
