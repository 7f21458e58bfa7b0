"""The client's pure rules: Retry-After, backoff bounds, Link headers, delta filters, imsx bodies, dedupe."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from roster_pipeline.oneroster import ClientConfig, ImsxStatus, OneRosterClient
from roster_pipeline.oneroster.paging import (
    SeenRecords,
    build_filter,
    endpoint_for,
    format_since,
    parse_link_header,
    parse_total_count,
)
from roster_pipeline.oneroster.retry import (
    RetryPolicy,
    TransientFailure,
    backoff_delay,
    parse_retry_after,
    wait_seconds,
)

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        ("Wed, 25 Nov 2026 12:00:07 GMT", 7.0),
        ("Wed, 25 Nov 2026 11:00:00 GMT", 0.0),  # in the past: go now
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_accepts_seconds_and_http_dates(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == expected


def test_backoff_grows_exponentially_stays_jittered_and_capped() -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        step = min(8.0, 0.5 * 2 ** (attempt - 1))
        samples = [backoff_delay(attempt, base=0.5, cap=8.0, rng=rng) for _ in range(200)]
        assert all(step / 2 <= s <= step for s in samples), attempt
        assert max(samples) - min(samples) > step / 10  # really jittered, not a constant
    with pytest.raises(ValueError):
        backoff_delay(0, base=1, cap=1)


def test_retry_after_wins_over_shorter_backoff_but_not_over_the_cap() -> None:
    rng = random.Random(1)
    assert wait_seconds(1, 5.0, base=0.1, cap=60.0, rng=rng) == 5.0
    assert wait_seconds(1, 500.0, base=0.1, cap=30.0, rng=rng) == 30.0
    assert wait_seconds(1, None, base=0.1, cap=30.0, rng=rng) <= 0.1


def test_retry_policy_retries_transient_failures_then_gives_up() -> None:
    slept: list[float] = []
    calls = 0

    def always_busy() -> str:
        nonlocal calls
        calls += 1
        raise TransientFailure("HTTP 503", status=503, retry_after=2.0)

    retries: list[str] = []
    policy = RetryPolicy(max_retries=3, backoff_base_seconds=0.01, backoff_max_seconds=10, sleep=slept.append)
    with pytest.raises(TransientFailure):
        policy.run(always_busy, on_retry=lambda failure, wait: retries.append(failure.reason))
    assert calls == 4
    assert retries == ["HTTP 503"] * 3
    assert slept == [2.0, 2.0, 2.0]

    outcomes = iter([TransientFailure("ReadTimeout"), "ok"])

    def flaky() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert RetryPolicy(2, 0.0, 0.0, sleep=lambda s: None).run(flaky, on_retry=lambda f, w: None) == "ok"


def test_retry_policy_does_not_retry_other_errors() -> None:
    calls = 0

    def broken() -> None:
        nonlocal calls
        calls += 1
        raise KeyError("bug")

    with pytest.raises(KeyError):
        RetryPolicy(5, 0.0, 0.0, sleep=lambda s: None).run(broken, on_retry=lambda f, w: None)
    assert calls == 1


def test_link_header_parsing() -> None:
    header = (
        '<https://sis.example/ims/oneroster/v1p1/users?limit=2&offset=2>; rel="next", '
        '<https://sis.example/ims/oneroster/v1p1/users?limit=2&offset=8>; rel="last",'
        "</users?offset=0>; rel=first"
    )
    links = parse_link_header(header)
    assert links["next"] == "https://sis.example/ims/oneroster/v1p1/users?limit=2&offset=2"
    assert links["last"].endswith("offset=8")
    assert links["first"] == "/users?offset=0"
    assert parse_link_header('<https://a/x>; title="t"; rel="prev next"')["next"] == "https://a/x"
    assert parse_link_header(None) == {}
    assert parse_link_header('<https://a/x>; rel="last"').get("next") is None


def test_total_count_parsing() -> None:
    assert parse_total_count("42") == 42
    assert parse_total_count(" 0") == 0
    assert parse_total_count(None) is None
    assert parse_total_count("lots") is None
    assert parse_total_count("-1") is None


def test_delta_filter_is_utc_and_combined_with_callers_filter() -> None:
    since = datetime(2026, 11, 24, 19, 0, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert format_since(since) == "2026-11-25T00:00:00Z"
    assert format_since(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)) == "2026-01-02T03:04:05.678Z"
    assert build_filter(None, since) == "dateLastModified>'2026-11-25T00:00:00Z'"
    assert (
        build_filter("role='student'", since) == "role='student' AND dateLastModified>'2026-11-25T00:00:00Z'"
    )
    assert build_filter("role='student'", None) == "role='student'"
    assert build_filter(None, None) is None
    # an AND inside a quoted value is not a second predicate
    assert build_filter("title='Rock AND Roll'", since).endswith(
        "AND dateLastModified>'2026-11-25T00:00:00Z'"
    )
    with pytest.raises(ValueError, match="at most two predicates"):
        build_filter("role='student' AND status='active'", since)
    with pytest.raises(ValueError, match="timezone-aware"):
        build_filter(None, datetime(2026, 11, 25))


def test_endpoint_names_resolve_to_collections_and_envelopes() -> None:
    assert endpoint_for("academic_sessions").collection == "academicSessions"
    assert endpoint_for("academicSessions").envelope == "academicSessions"
    assert endpoint_for("schools").envelope == "orgs"
    assert endpoint_for("students").envelope == "users"
    assert endpoint_for("terms").singular == "academicSession"
    with pytest.raises(KeyError):
        endpoint_for("gradebooks")


def test_imsx_bodies_in_the_shapes_servers_send() -> None:
    bare = {
        "imsx_codeMajor": "failure",
        "imsx_severity": "error",
        "imsx_description": "no such user",
        "imsx_CodeMinor": {
            "imsx_codeMinorField": [
                {"imsx_codeMinorFieldName": "TargetEndSystem", "imsx_codeMinorFieldValue": "unknownobject"}
            ]
        },
    }
    status = ImsxStatus.from_body(bare)
    assert status == ImsxStatus("failure", "error", "unknownobject", "no such user")
    assert ImsxStatus.from_body({"imsx_statusInfoSet": [bare]}) == status
    assert (
        ImsxStatus.from_body({"imsx_CodeMinor": "server_busy", "imsx_codeMajor": "failure"}).code_minor
        == "server_busy"
    )
    assert ImsxStatus.from_body("<html>bad gateway</html>") is None
    assert ImsxStatus.from_body({"users": []}) is None
    assert "CodeMinor=unknownobject" in status.summary()


def test_seen_records_keep_the_first_copy_and_tell_repeats_from_conflicts() -> None:
    seen = SeenRecords()
    page = seen.keep_new([{"sourcedId": "a"}, {"sourcedId": "b"}, {"sourcedId": "a"}])
    assert [r["sourcedId"] for r in page.fresh] == ["a", "b"] and page.duplicates == 1 and page.issues == []
    page = seen.keep_new([{"sourcedId": "b"}, {"sourcedId": "c"}, {"sourcedId": "a", "x": 1}])
    assert [r["sourcedId"] for r in page.fresh] == ["c"] and page.duplicates == 1
    [issue] = page.issues  # "a" again, other content: a conflict; the copy handed out before is withdrawn
    assert (issue.sourced_id, issue.check, issue.record, issue.withdraw_earlier) == (
        "a",
        "conflicting_duplicate",
        {"sourcedId": "a", "x": 1},
        True,
    )
    page = seen.keep_new([{"sourcedId": "a"}])  # every later copy of a conflicted id is reported too
    assert page.fresh == [] and [i.withdraw_earlier for i in page.issues] == [False]
    # rows of the SIS's total: a, b, a again in the same response, c, both later copies of the conflicted
    # a; b repeated on a later page is not one (it may stand in for a record that shifted away)
    assert seen.in_pass == 6 and seen.repeats_in_pass == 2
    seen.start_pass()  # a re-read after a restart: earlier copies stand, nothing counts as a duplicate
    page = seen.keep_new([{"sourcedId": "b", "changed": True}, {"sourcedId": "c"}, {"sourcedId": "d"}])
    assert [r["sourcedId"] for r in page.fresh] == ["d"] and page.duplicates == 0 and page.issues == []
    assert seen.in_pass == 3 and seen.repeats_in_pass == 0
    assert len(seen) == 4


def test_config_and_client_reprs_hide_the_secret() -> None:
    config = ClientConfig(
        district_id="springfield",
        base_url="https://sis.example/ims/oneroster/v1p1/",
        token_url="https://sis.example/campus/oauth2/token?appName=x",
        client_id="cid",
        client_secret="hunter2-very-secret",
    )
    with OneRosterClient(config) as client:
        texts = [
            repr(config),
            str(config),
            str(config.model_dump()),
            repr(client),
            str(client),
            repr(client._tokens),
            repr(client._auth),
        ]
    for text in texts:
        assert "hunter2" not in text
    assert config.base_url == "https://sis.example/ims/oneroster/v1p1"
    assert config.client_secret.get_secret_value() == "hunter2-very-secret"
