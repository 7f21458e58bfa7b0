"""The pure parts of paging: endpoints and envelopes, query parameters, Link headers, dedupe and the
conflicting duplicates it finds.

Kept free of I/O so the rules that decide whether a pull is complete can be tested in isolation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

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


CONFLICTING_DUPLICATE = "conflicting_duplicate"


@dataclass(frozen=True)
class RecordIssue:
    """A served record the client does not hand out as data: the importing step quarantines it.

    ``withdraw_earlier``: an earlier copy of the same sourcedId was handed out in an earlier batch (and
    may be staged by now), so the importer must withdraw that copy as well.
    """

    sourced_id: str
    check: str
    record: Record
    withdraw_earlier: bool = False


class Batch(list[Record]):
    """One page's records to stage, plus the ``issues`` found on that page.

    A list, so callers that only want records iterate it as before; an importer that quarantines
    reads ``issues`` too.  A page whose every record has an issue still arrives, as an empty batch.
    """

    def __init__(self, records: list[Record] | None = None, issues: list[RecordIssue] | None = None) -> None:
        super().__init__(records or ())
        self.issues: list[RecordIssue] = issues or []


@dataclass(frozen=True)
class PageSort:
    """What ``SeenRecords.keep_new`` made of one page."""

    fresh: list[Record]  # first copies, in page order: hand these out
    duplicates: int  # identical repeats within the pass (paging overlap): dropped, harmless
    issues: list[RecordIssue]  # copies of sourcedIds served with different content: quarantine


_PASS_BITS = 4
_MAX_PASS = (1 << _PASS_BITS) - 1
_DIGEST_MASK = (1 << 56) - 1


def content_digest(record: Record) -> int:
    """A 56-bit digest of the record's content (keys sorted), for telling a repeat from a conflict.

    The text of a body decoded leniently may hold lone surrogates, which orjson refuses; the standard
    library escapes them, so such a record still has a digest (and is quarantined by validation).
    """
    try:
        raw = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        raw = json.dumps(record, sort_keys=True, default=str).encode()
    return hash(raw) & _DIGEST_MASK


class SeenRecords:
    """sourcedId → digest of the content first served under it, so that a pull hands each record out
    once, can tell a harmless repeat from two different records sharing one sourcedId, and can say how
    many of the rows X-Total-Count counts this pass received.

    A repeat with the same content is dropped and counted.  Different content under the same sourcedId
    within one pass means the SIS holds two records with one id: which is right cannot be told, so every
    copy is reported as a ``conflicting_duplicate`` issue (and any copy handed out before is to be
    withdrawn).  A re-read after a restart (``start_pass``) skips what earlier passes handed out, without
    counting it as a duplicate, and does not report a known conflict twice.

    Completeness (see the client) is judged per pass on ``in_pass``: the rows of X-Total-Count this pass
    received.  That is the distinct sourcedIds, plus every extra copy of a conflicting one (the SIS holds
    two records), plus an identical repeat within one page (one response is one snapshot: the SIS
    serves that row twice).  An identical repeat across pages is not counted: it is what offset paging
    over shifting rows produces while it skips another record, and nothing tells the two apart.

    Per pull this holds, per record, its id string (which the record carries anyway) and one small int
    (digest and pass number packed): about 60 bytes more per record than a set of ids.
    """

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}  # digest << _PASS_BITS | pass; a conflict: -(pass found + 1)
        self._pass = 0
        self.in_pass = 0
        self.repeats_in_pass = 0  # identical repeats dropped in this pass

    def __len__(self) -> int:
        return len(self._seen)

    def start_pass(self) -> None:
        """A read from offset 0 begins: what follows an earlier pass is a re-read, not a repeat."""
        if self.in_pass or self.repeats_in_pass:
            self._pass = min(self._pass + 1, _MAX_PASS)
        self.in_pass = self.repeats_in_pass = 0

    def keep_new(self, records: list[Record]) -> PageSort:
        fresh: list[Record] = []
        issues: list[RecordIssue] = []
        duplicates = 0
        here: dict[str, Record] = {}  # first copies handed out from this very page
        conflicted_here: set[str] = set()
        seen, current = self._seen, self._pass
        for record in records:
            sourced_id: str = record.get("sourcedId")  # type: ignore[assignment]
            digest = content_digest(record)
            known = seen.get(sourced_id)
            if known is None:
                seen[sourced_id] = (digest << _PASS_BITS) | current
                here[sourced_id] = record
                fresh.append(record)
                self.in_pass += 1
                continue
            if known < 0:  # a known conflict: every copy is a row the SIS counts
                self.in_pass += 1
                if -known - 1 == current:  # reported by the pass that found it, not again by a re-read
                    issues.append(RecordIssue(sourced_id, CONFLICTING_DUPLICATE, record))
                continue
            if known & _MAX_PASS != current:  # a re-read of an earlier pass: that pass's copy stands
                seen[sourced_id] = (known & ~_MAX_PASS) | current
                self.in_pass += 1
                continue
            if known >> _PASS_BITS == digest:
                duplicates += 1
                self.repeats_in_pass += 1
                if sourced_id in here:  # the same row twice in one response: the SIS's own, counted
                    self.in_pass += 1
                continue
            seen[sourced_id] = -(current + 1)
            self.in_pass += 1
            first = here.get(sourced_id)
            if first is not None:
                conflicted_here.add(sourced_id)
                issues.append(RecordIssue(sourced_id, CONFLICTING_DUPLICATE, first))
            issues.append(RecordIssue(sourced_id, CONFLICTING_DUPLICATE, record, withdraw_earlier=first is None))
        if conflicted_here:
            fresh = [r for r in fresh if r.get("sourcedId") not in conflicted_here]
        return PageSort(fresh, duplicates, issues)
