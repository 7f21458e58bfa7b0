"""The pure parts of paging: endpoints and envelopes, query parameters, Link headers, dedupe and the
conflicting duplicates it finds.

Kept free of I/O so the rules that decide whether a pull is complete can be tested in isolation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from roster_pipeline.oneroster.intmap import SortedInt64Map
from roster_pipeline.records.catalogue import RESOURCES_BY_COLLECTION, resource

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
    utc = since.astimezone(UTC)
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
        raise ValueError(
            f"filter field {field!r} is not a OneRoster field name (letters, digits, _ and dots)"
        )
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

    ``field``, ``value`` and ``detail`` let an issue found by other means than dedupe (a OneRoster 1.2
    record that has no 1.1 shape, ``oneroster.v1p2``) name the field at fault and say why in its own
    words; without ``detail`` the message is the one for ``check`` on the sourcedId.
    """

    sourced_id: str
    check: str
    record: Record
    withdraw_earlier: bool = False
    field: str = "sourcedId"
    value: str | None = None
    detail: str | None = None


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
_MISSING = -(1 << 63)  # no id hashes to a stored value this low: values are >= -(_MAX_PASS + 1)


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

    Memory.  The largest district pulls about a million enrollments, and a dict of a million id strings
    costs ~140 MB, so ids are not kept: each is known by a 64-bit hash (``hash_id``, Python's ``hash``
    by default: randomized per process, which is fine, the set lives for one pull).  Known ids sit in
    two numpy arrays, sorted hashes and packed values (digest and pass, or a conflict marker): 16 bytes
    a record, 32 for a moment while a page is merged in.  A page is looked up with one vectorized
    ``searchsorted``, decided record by record through a page-local dict (so repeats within the page
    see each other), and merged once at its end.

    Collisions.  Two different sourcedIds with the same 64-bit hash look like one id served twice
    (about 3 in 10^8 pulls of a million ids).  Within one pass their contents differ (the digest covers
    the sourcedId), so that is a conflicting duplicate: the later copy, and the earlier one if it came
    on the same page, are quarantined under their own ids, loudly, never dropped in silence.  A copy
    dropped as an identical repeat would need the 56-bit content digest to collide as well.  Across
    passes the later id would pass for a re-read of the earlier and be skipped; the earlier id, read
    again in that pass, then counts as a repeat, not a row, so the pass falls one short of
    X-Total-Count and the pull ends in ``PagingInconsistentError`` rather than with a record missing.
    """

    def __init__(self, hash_id: Callable[[str], int] = hash) -> None:
        self._hash_id = hash_id  # must return a signed 64-bit int (the test injects collisions)
        self._seen = SortedInt64Map(
            missing=_MISSING
        )  # id hash → digest << _PASS_BITS | pass; a conflict: -(pass found + 1)
        self._pass = 0
        self.in_pass = 0
        self.repeats_in_pass = 0  # identical repeats dropped in this pass

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def nbytes(self) -> int:
        """Bytes held for the ids seen so far (the arrays' buffers)."""
        return self._seen.nbytes

    def start_pass(self) -> None:
        """A read from offset 0 begins: what follows an earlier pass is a re-read, not a repeat."""
        if self.in_pass or self.repeats_in_pass:
            self._pass = min(self._pass + 1, _MAX_PASS)
        self.in_pass = self.repeats_in_pass = 0

    def keep_new(self, records: list[Record]) -> PageSort:
        fresh: list[Record] = []
        issues: list[RecordIssue] = []
        duplicates = rows = 0  # identical repeats dropped; rows of X-Total-Count received
        hash_id = self._hash_id
        hashes = [hash_id(record.get("sourcedId")) for record in records]  # type: ignore[arg-type]  # a str: checked by the client (_id_of)
        stored = self._seen.get_many(np.array(hashes, dtype=np.int64)).tolist()
        changed: dict[int, int] = {}  # this page's writes, by id hash: what later records of the page see
        here: dict[int, Record] = {}  # first copies handed out from this very page
        conflicted_here: set[int] = set()
        current = self._pass
        dumps, sort_keys, hand_out = orjson.dumps, orjson.OPT_SORT_KEYS, fresh.append
        for record, key, known in zip(records, hashes, stored, strict=True):
            try:  # content_digest, inlined: this loop runs once per record of the pull
                digest = hash(dumps(record, option=sort_keys)) & _DIGEST_MASK
            except (orjson.JSONEncodeError, TypeError):
                digest = content_digest(record)
            known = changed.get(key, known)
            rows += 1  # every case below is a row of the total, except an identical repeat across pages
            if known == _MISSING:
                changed[key] = (digest << _PASS_BITS) | current
                here[key] = record
                hand_out(record)
                continue
            if known < 0:  # a known conflict: every copy is a row the SIS counts
                if -known - 1 == current:  # reported by the pass that found it, not again by a re-read
                    issues.append(RecordIssue(_id_of(record), CONFLICTING_DUPLICATE, record))
                continue
            if known & _MAX_PASS != current:  # a re-read of an earlier pass: that pass's copy stands
                changed[key] = (known & ~_MAX_PASS) | current
                continue
            if known >> _PASS_BITS == digest:
                duplicates += 1
                if key not in here:  # the same row twice in one response is the SIS's own, counted; across
                    rows -= 1  # pages it may stand in for a record that shifted away: not a row
                continue
            changed[key] = -(current + 1)
            first = here.get(key)
            if first is not None:
                conflicted_here.add(key)
                issues.append(RecordIssue(_id_of(first), CONFLICTING_DUPLICATE, first))
            issues.append(
                RecordIssue(_id_of(record), CONFLICTING_DUPLICATE, record, withdraw_earlier=first is None)
            )
        self.in_pass += rows
        self.repeats_in_pass += duplicates
        if conflicted_here:
            fresh = [r for r in fresh if hash_id(_id_of(r)) not in conflicted_here]
        if changed:
            count = len(changed)
            self._seen.put_many(
                np.fromiter(changed.keys(), dtype=np.int64, count=count),
                np.fromiter(changed.values(), dtype=np.int64, count=count),
            )
        return PageSort(fresh, duplicates, issues)


def _id_of(record: Record) -> str:
    return record.get("sourcedId")  # type: ignore[return-value]  # checked to be a str by the client
