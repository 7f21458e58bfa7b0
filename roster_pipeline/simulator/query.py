"""OneRoster 1.1 query parameters: filter, sort/orderBy, fields, limit/offset.

Parsing is separate from evaluation so a bad request is rejected (400 with the spec's imsx code
minor) before any index is built, and so a parsed query can serve as a cache key: two requests
that mean the same thing (``filter=status='active'`` vs ``filter=status = 'active'``) share one
sorted/filtered index.

Leniency, documented because real SIS/consumer traffic needs it (the SDS Postman collection sends
``limit =100``):
- query-parameter *names* are stripped of surrounding whitespace;
- ``AND``/``OR`` are accepted in any case; values may be single- or double-quoted, or bare words;
- a quote inside a value is written doubled (``name='O''Brien'``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Record = dict[str, Any]

# Top-level fields of each base collection (OneRoster 1.1 information model). Filter, sort and
# fields are validated against these, not against whatever a record happens to contain, so an
# optional field that no record carries (``middleName``) is still a valid filter field.
_BASE_FIELDS = ("sourcedId", "status", "dateLastModified", "metadata")
FIELDS: dict[str, frozenset[str]] = {
    "orgs": frozenset(_BASE_FIELDS + ("name", "type", "identifier", "parent", "children")),
    "academicSessions": frozenset(
        _BASE_FIELDS + ("title", "startDate", "endDate", "type", "parent", "children", "schoolYear")
    ),
    "courses": frozenset(
        _BASE_FIELDS
        + ("title", "schoolYear", "courseCode", "grades", "subjects", "org", "subjectCodes", "resources")
    ),
    "classes": frozenset(
        _BASE_FIELDS
        + (
            "title",
            "classCode",
            "classType",
            "location",
            "grades",
            "subjects",
            "course",
            "school",
            "terms",
            "subjectCodes",
            "periods",
            "resources",
        )
    ),
    "users": frozenset(
        _BASE_FIELDS
        + (
            "username",
            "userIds",
            "enabledUser",
            "givenName",
            "familyName",
            "middleName",
            "role",
            "identifier",
            "email",
            "sms",
            "phone",
            "agents",
            "orgs",
            "grades",
            "password",
        )
    ),
    "enrollments": frozenset(
        _BASE_FIELDS + ("user", "class", "school", "role", "primary", "beginDate", "endDate")
    ),
    "demographics": frozenset(
        _BASE_FIELDS
        + (
            "birthDate",
            "sex",
            "americanIndianOrAlaskaNative",
            "asian",
            "blackOrAfricanAmerican",
            "nativeHawaiianOrOtherPacificIslander",
            "white",
            "demographicRaceTwoOrMoreRaces",
            "hispanicOrLatinoEthnicity",
            "countryOfBirthCode",
            "stateOfBirthAbbreviation",
            "cityOfBirth",
            "publicSchoolResidenceStatus",
        )
    ),
    "lineItems": frozenset(
        _BASE_FIELDS
        + (
            "title",
            "description",
            "assignDate",
            "dueDate",
            "class",
            "category",
            "gradingPeriod",
            "resultValueMin",
            "resultValueMax",
        )
    ),
    "categories": frozenset(_BASE_FIELDS + ("title",)),
    "results": frozenset(
        _BASE_FIELDS + ("lineItem", "student", "scoreStatus", "score", "scoreDate", "comment")
    ),
    "resources": frozenset(
        _BASE_FIELDS + ("title", "roles", "importance", "vendorResourceId", "vendorId", "applicationId")
    ),
}

# Fields compared as instants rather than strings: a delta filter written with another offset or
# precision (``2026-11-25T00:00:00Z`` vs a record's ``...00.000Z``) must still compare correctly.
DATETIME_FIELDS = frozenset({"dateLastModified"})

DEFAULT_LIMIT = 100
OPERATORS = ("=", "!=", ">", ">=", "<", "<=", "~")


class QueryError(ValueError):
    """A request parameter the server refuses; ``code_minor`` is the imsx_CodeMinor to report."""

    def __init__(self, code_minor: str, description: str) -> None:
        super().__init__(description)
        self.code_minor = code_minor
        self.description = description


@dataclass(frozen=True)
class Predicate:
    field: str  # possibly dotted: "school.sourcedId"
    op: str
    value: str


@dataclass(frozen=True)
class Filter:
    predicates: tuple[Predicate, ...]
    joiner: str | None  # "AND" | "OR" | None for a single predicate

    def key(self) -> tuple[Any, ...]:
        return (self.predicates, self.joiner)


@dataclass(frozen=True)
class Query:
    """Everything of a list request that shapes its result, normalised (usable as a cache key)."""

    filter: Filter | None
    sort: str | None
    descending: bool
    fields: tuple[str, ...] | None
    limit: int
    offset: int

    def index_key(self) -> tuple[Any, ...]:
        """The part that decides which records and in what order (not which page or columns)."""
        return (self.filter.key() if self.filter else None, self.sort, self.descending)


_PREDICATE = re.compile(
    r"""\s*(?P<field>[A-Za-z_][\w.]*)\s*
        (?P<op>!=|>=|<=|=|>|<|~)\s*
        (?P<value>'(?:[^']|'')*'|"(?:[^"]|"")*"|[^\s'"]+)\s*""",
    re.VERBOSE,
)
_JOINER = re.compile(r"\s*(AND|OR)\s+", re.IGNORECASE)


def parse_filter(text: str, base: str) -> Filter:
    """Parse ``field op 'value' [AND|OR field op 'value']`` (the 1.1 spec allows two predicates)."""
    pos = 0
    predicates: list[Predicate] = []
    joiners: list[str] = []
    while True:
        m = _PREDICATE.match(text, pos)
        if m is None:
            raise QueryError("invalid_filter_field", f"cannot parse filter {text!r} at position {pos}")
        raw = m.group("value")
        if raw[0] in "'\"":
            quote = raw[0]
            value = raw[1:-1].replace(quote * 2, quote)
        else:
            value = raw
        field_name = m.group("field")
        _check_field(field_name, base, "invalid_filter_field", "filter")
        if field_name in DATETIME_FIELDS and m.group("op") != "~" and parse_datetime(value) is None:
            raise QueryError(
                "invalid_filter_field", f"{field_name} needs an ISO 8601 datetime, got {value!r}"
            )
        predicates.append(Predicate(field_name, m.group("op"), value))
        pos = m.end()
        if pos >= len(text):
            break
        j = _JOINER.match(text, pos)
        if j is None:
            raise QueryError(
                "invalid_filter_field", f"expected AND or OR in filter {text!r} at position {pos}"
            )
        joiners.append(j.group(1).upper())
        pos = j.end()
    if len(predicates) > 2:
        raise QueryError("invalid_filter_field", "OneRoster 1.1 allows at most two filter predicates")
    return Filter(tuple(predicates), joiners[0] if joiners else None)


def _check_field(name: str, base: str, code_minor: str, what: str) -> None:
    top = name.split(".", 1)[0]
    if top not in FIELDS[base]:
        raise QueryError(code_minor, f"unknown {what} field {name!r} for {base}")


def _parse_int(params: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise QueryError("invaliddata", f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise QueryError("invaliddata", f"{name} must be >= {minimum}, got {value}")
    return value


def parse_query(params: Mapping[str, str], base: str, *, max_page_size: int | None) -> Query:
    """Validate and normalise one list request's parameters (names already whitespace-stripped)."""
    limit = _parse_int(params, "limit", DEFAULT_LIMIT, 1)
    if max_page_size is not None:
        limit = min(limit, max_page_size)
    offset = _parse_int(params, "offset", 0, 0)

    filter_text = params.get("filter")
    parsed_filter = parse_filter(filter_text, base) if filter_text and filter_text.strip() else None

    sort = params.get("sort")
    sort = sort.strip() if sort else None
    if sort:
        _check_field(sort, base, "invalid_sort_field", "sort")
    order = (params.get("orderBy") or "asc").strip().lower()
    if order not in ("asc", "desc"):
        raise QueryError("invalid_sort_field", f"orderBy must be asc or desc, got {order!r}")

    fields: tuple[str, ...] | None = None
    raw_fields = params.get("fields")
    if raw_fields is not None:
        names = tuple(f.strip() for f in raw_fields.split(","))
        if not any(names):
            raise QueryError("invalid_blank_selection_field", "fields is blank")
        for name in names:
            if name not in FIELDS[base]:
                raise QueryError("invalid_selection_field", f"unknown selection field {name!r} for {base}")
        fields = names
    return Query(parsed_filter, sort or None, order == "desc", fields, limit, offset)


# ---------------------------------------------------------------------------------------- evaluation


def _values(record: Record, path: Sequence[str]) -> list[Any]:
    """Values at a dotted path; lists fan out (``orgs.sourcedId`` matches any of a user's orgs)."""
    current: list[Any] = [record]
    for part in path:
        nxt: list[Any] = []
        for item in current:
            if isinstance(item, dict):
                if part in item:
                    v = item[part]
                    nxt.extend(v if isinstance(v, list) else [v])
            elif isinstance(item, list):
                for sub in item:
                    if isinstance(sub, dict) and part in sub:
                        nxt.append(sub[part])
        current = nxt
    return current


def parse_datetime(text: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    raise AssertionError(op)


def compile_predicate(pred: Predicate) -> Callable[[Record], bool]:
    """Turn a predicate into a function, doing per-query work (value parsing) once, not per record."""
    path = pred.field.split(".")
    op = pred.op
    if pred.field in DATETIME_FIELDS and op != "~":
        wanted = parse_datetime(pred.value)
        if wanted is None:
            raise QueryError("invalid_filter_field", f"{pred.field} needs a datetime, got {pred.value!r}")
        field_name = pred.field
        cache: dict[str, datetime | None] = {}

        def match_datetime(record: Record) -> bool:
            raw = record.get(field_name)
            if not isinstance(raw, str):
                return op == "!="
            got = cache.get(raw)
            if got is None:
                got = parse_datetime(raw)
                cache[raw] = got
            return got is not None and _compare(op, got, wanted)

        return match_datetime

    if op == "~":
        needle = pred.value.lower()

        def match_contains(record: Record) -> bool:
            return any(needle in _text(v).lower() for v in _values(record, path))

        return match_contains

    wanted_text = pred.value
    if len(path) == 1:
        key = path[0]

        def match_flat(record: Record) -> bool:
            v = record.get(key)
            if isinstance(v, list):
                hits = [_compare(op, _text(x), wanted_text) for x in v]
                return all(hits) if op == "!=" else any(hits)
            # A missing field compares as the empty string: "email!='x'" includes users with no email.
            return _compare(op, _text(v), wanted_text)

        return match_flat

    def match_nested(record: Record) -> bool:
        values = _values(record, path) or [""]
        hits = [_compare(op, _text(v), wanted_text) for v in values]
        return all(hits) if op == "!=" else any(hits)

    return match_nested


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def compile_filter(parsed: Filter) -> Callable[[Record], bool]:
    funcs = [compile_predicate(p) for p in parsed.predicates]
    if len(funcs) == 1:
        return funcs[0]
    a, b = funcs
    if parsed.joiner == "OR":
        return lambda r: a(r) or b(r)
    return lambda r: a(r) and b(r)


def sort_key(field_name: str) -> Callable[[Record], Any]:
    path = field_name.split(".")
    if field_name in DATETIME_FIELDS:
        return lambda r: parse_datetime(_text(r.get(field_name))) or datetime.min.replace(tzinfo=UTC)
    if len(path) == 1:
        return lambda r: _text(r.get(field_name))
    return lambda r: _text((_values(r, path) or [""])[0])


def apply(records: list[Record], query: Query) -> list[Record]:
    """Filter then sort (stable, so equal keys keep the district's natural order)."""
    result = records
    if query.filter is not None:
        match = compile_filter(query.filter)
        result = [r for r in result if match(r)]
    if query.sort:
        result = sorted(result, key=sort_key(query.sort), reverse=query.descending)
    elif query.descending:
        result = list(reversed(result))
    return result


def project(records: list[Record], fields: tuple[str, ...] | None) -> list[Record]:
    if fields is None:
        return records
    return [{f: r[f] for f in fields if f in r} for r in records]
