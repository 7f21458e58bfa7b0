"""Properties of the client's pure parts, over many generated inputs (hypothesis).

The filter builder is checked against the simulator's own filter parser, which reads filters the way
an SIS does: whatever a value holds, it stays inside its predicate, and the delta window is never
swallowed. The header parsers never raise, whatever a server or proxy sends.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roster_pipeline.oneroster.paging import (
    FILTER_OPERATORS,
    build_filter,
    filter_predicate,
    format_since,
    parse_link_header,
    parse_total_count,
    quote_filter_value,
)
from roster_pipeline.oneroster.retry import parse_retry_after
from roster_pipeline.simulator.query import QueryError, parse_datetime, parse_filter

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CONTROL = {chr(c) for c in range(32)} | {"\x7f"}
# Values a caller might pass: any text, weighted towards the characters that break naive quoting.
tricky = st.sampled_from(
    ["'", "''", " AND ", " OR ", "=", '"', "\\", "%", "&", "#", "~", ">", " ", "é", "\u2028"]
)
values = st.lists(st.one_of(tricky, st.text(min_size=1, max_size=4)), max_size=8).map("".join)
clean_values = values.filter(lambda v: not CONTROL & set(v))
fields = st.sampled_from(["givenName", "familyName", "role", "status", "orgs.sourcedId", "username"])
operators = st.sampled_from(FILTER_OPERATORS)
moments = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.timezones()
)


@FAST
@given(field=fields, operator=operators, value=clean_values)
def test_a_value_never_breaks_out_of_its_predicate(field: str, operator: str, value: str) -> None:
    parsed = parse_filter(filter_predicate(field, operator, value), "users")
    assert parsed.joiner is None and len(parsed.predicates) == 1
    (predicate,) = parsed.predicates
    assert (predicate.field, predicate.op, predicate.value) == (field, operator, value)


@FAST
@given(field=fields, operator=operators, value=clean_values, since=moments)
def test_the_delta_predicate_survives_any_value(
    field: str, operator: str, value: str, since: datetime
) -> None:
    combined = build_filter(filter_predicate(field, operator, value), since)
    assert combined is not None
    parsed = parse_filter(combined, "users")
    assert parsed.joiner == "AND" and len(parsed.predicates) == 2
    first, delta = parsed.predicates
    assert (first.field, first.op, first.value) == (field, operator, value)
    assert (delta.field, delta.op, delta.value) == ("dateLastModified", ">", format_since(since))


@FAST
@given(value=st.tuples(values, st.sampled_from(sorted(CONTROL)), values).map("".join))
def test_control_characters_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        quote_filter_value(value)


@FAST
@given(raw=values, since=moments)
def test_a_value_pasted_in_unquoted_is_refused_or_leaves_the_delta_window_intact(
    raw: str, since: datetime
) -> None:
    """The mistake the builder exists to prevent: ``f"familyName='{value}'"``. Whatever it produces is
    either refused here, or read by the SIS with the delta window as its own, intact, last predicate."""
    try:
        combined = build_filter(f"familyName='{raw}'", since)
    except ValueError:
        return
    assert combined is not None
    try:
        parsed = parse_filter(combined, "users")
    except QueryError:
        return  # the SIS refuses it with a 400: nothing is read, nothing is inferred
    assert len(parsed.predicates) <= 2 and parsed.joiner in (None, "AND")
    delta = parsed.predicates[-1]
    assert (delta.field, delta.op, delta.value) == ("dateLastModified", ">", format_since(since))


def test_filter_builder_refuses_what_it_cannot_quote() -> None:
    with pytest.raises(ValueError, match="does not pair up"):
        build_filter("familyName='O'Brien'", None)
    with pytest.raises(ValueError, match="at most two"):
        build_filter("familyName='O''Brien' OR role='student'", datetime(2026, 1, 1, tzinfo=UTC))
    assert build_filter("familyName='O''Brien'", None) == "familyName='O''Brien'"
    assert filter_predicate("familyName", "=", "O'Brien") == "familyName='O''Brien'"
    for field, operator in (("family name", "="), ("x'", "="), ("role", "=="), ("role", " = ")):
        with pytest.raises(ValueError):
            filter_predicate(field, operator, "v")


@FAST
@given(moment=moments)
def test_format_since_is_the_same_instant_in_utc_to_the_millisecond(moment: datetime) -> None:
    text = format_since(moment)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z", text)
    truncated = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    assert parse_datetime(text) == truncated  # as the simulator (and an SIS) reads it back
    assert datetime.fromisoformat(text) == truncated


@FAST
@given(moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)))
def test_format_since_refuses_a_naive_datetime(moment: datetime) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_since(moment)


@FAST
@given(header=st.one_of(st.none(), st.text(max_size=200)))
def test_link_header_parsing_never_raises(header: str | None) -> None:
    links = parse_link_header(header)
    assert isinstance(links, dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in links.items())


url_text = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789/:?&=.,;%-_'\"", min_size=1, max_size=40
).filter(lambda u: u.strip() == u)
rels = st.sampled_from(["next", "prev", "first", "last"])


@FAST
@given(links=st.lists(st.tuples(rels, url_text), min_size=1, max_size=5), quoted=st.booleans())
def test_well_formed_link_headers_round_trip(links: list[tuple[str, str]], quoted: bool) -> None:
    header = ", ".join(f"<{url}>; rel={chr(34) * quoted}{rel}{chr(34) * quoted}" for rel, url in links)
    expected: dict[str, str] = {}
    for rel, url in links:
        expected.setdefault(rel, url)  # the first link of a rel wins
    assert parse_link_header(header) == expected


@FAST
@given(header=st.one_of(st.none(), st.text(max_size=40)))
def test_total_count_parsing_never_raises_and_takes_only_plain_digits(header: str | None) -> None:
    total = parse_total_count(header)
    if header is not None and re.fullmatch(r"[0-9]{1,18}", header.strip()):
        assert total == int(header.strip())
    else:
        assert total is None


@FAST
@given(count=st.integers(min_value=0, max_value=10**15), pad=st.sampled_from(["", " ", "\t", "  "]))
def test_total_count_reads_any_count(count: int, pad: str) -> None:
    assert parse_total_count(f"{pad}{count}{pad}") == count


@pytest.mark.parametrize("header", ["+5", "-1", "1_000", "١٢", "12.0", "1e3", "9" * 19, "9" * 5000, ""])
def test_total_count_refuses_what_is_not_a_plain_count(header: str) -> None:
    assert parse_total_count(header) is None


NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@FAST
@given(
    header=st.one_of(
        st.none(),
        st.text(max_size=60),
        # Almost an HTTP date: the shapes that reach email.utils' date parser and its corner cases.
        st.builds(
            "{}, {} {} {} {}".format,
            st.sampled_from(["Wed", "Sun", "xyz"]),
            st.integers(-5, 40),
            st.sampled_from(["Nov", "Feb", "Foo"]),
            st.integers(-1, 99999),
            st.text(alphabet="0123456789: +-GMTZ", max_size=14),
        ),
    )
)
def test_retry_after_parsing_never_raises(header: str | None) -> None:
    wait = parse_retry_after(header, now=NOW)
    assert wait is None or (isinstance(wait, float) and 0.0 <= wait < float("inf"))


@FAST
@given(
    seconds=st.integers(min_value=0, max_value=10**6), ahead=st.integers(min_value=-(10**6), max_value=10**6)
)
def test_retry_after_reads_seconds_and_http_dates(seconds: int, ahead: int) -> None:
    assert parse_retry_after(str(seconds), now=NOW) == float(seconds)
    date = email.utils.format_datetime(NOW + timedelta(seconds=ahead), usegmt=True)
    assert parse_retry_after(date, now=NOW) == float(max(0, ahead))
