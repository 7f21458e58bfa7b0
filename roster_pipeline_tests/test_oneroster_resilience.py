"""Auth, retries and errors against the simulator over loopback HTTP: what a misbehaving SIS does to us.

Every scenario uses the simulator's own fault injection (429 with Retry-After, 5xx, resets,
truncated bodies, expired/revoked tokens), so the client is exercised over real sockets.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import parse_qs

import pytest

from roster_pipeline.oneroster import (
    AuthenticationError,
    ClientConfig,
    EnvelopeError,
    OneRosterClient,
    OneRosterError,
    OneRosterHTTPError,
    RetriesExhaustedError,
)
from roster_pipeline.simulator import SimulatorServer, running_simulator

from .client_helpers import simulator_client_config

APP = "demo"
CLIENT_ID = "cid"
CLIENT_SECRET = "Zx9-very-secret-value-Q7"


def config_for(server: SimulatorServer, **overrides: Any) -> ClientConfig:
    settings: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "page_size": 10,
        "backoff_max_seconds": 2.0,
        **overrides,
    }
    return simulator_client_config(server, APP, **settings)


def pull(client: OneRosterClient, name: str, **kwargs: Any) -> list[dict[str, Any]]:
    return [record for batch in client.iter_batches(name, **kwargs) for record in batch]


def settled_requests(server: SimulatorServer) -> list[Any]:
    """The request log once it stops growing (the server logs after it has answered)."""
    previous = -1
    while True:
        current = server.requests
        if len(current) == previous:
            return current
        previous = len(current)
        time.sleep(0.05)


@pytest.fixture()
def sim() -> Iterator[SimulatorServer]:
    with running_simulator(
        size="tiny", seed=1, app_name=APP, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ) as s:
        yield s


def token_posts(server: SimulatorServer) -> list[Any]:
    return [r for r in settled_requests(server) if r.path.endswith("/oauth2/token")]


def users(server: SimulatorServer) -> list[str]:
    return sorted(server.tenant(APP).district.collections["users"])


# ----------------------------------------------------------------------------------------- auth


@pytest.mark.parametrize("token_auth", ["basic", "form"])
def test_token_is_fetched_once_and_reused_across_pulls(sim: SimulatorServer, token_auth: str) -> None:
    with OneRosterClient(config_for(sim, token_auth=token_auth)) as client:
        assert [r["sourcedId"] for r in pull(client, "users")] == users(sim)
        pull(client, "enrollments")
        assert client.stats_for("users").token_requests == 1
    assert len(token_posts(sim)) == 1


def test_token_is_renewed_before_it_expires_without_a_401() -> None:
    with running_simulator(
        size="tiny",
        seed=1,
        app_name=APP,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        token_ttl_seconds=2,
    ) as server:
        with OneRosterClient(config_for(server)) as client:
            pull(client, "users")
            time.sleep(1.2)  # past ttl minus margin (min(60 s, ttl / 2) = 1 s), still before the 2 s expiry
            pull(client, "users")
        log = settled_requests(server)
    assert len([r for r in log if r.path.endswith("/oauth2/token")]) == 2
    assert not [r for r in log if r.status == 401]


@pytest.mark.parametrize("how", ["expire_tokens", "revoke_tokens"])
def test_token_killed_mid_pull_is_renewed_once_and_the_pull_completes(sim: SimulatorServer, how: str) -> None:
    with OneRosterClient(config_for(sim, page_size=5)) as client:
        ids: list[str] = []
        for number, batch in enumerate(client.iter_batches("enrollments")):
            ids.extend(r["sourcedId"] for r in batch)
            if number == 2:
                getattr(sim, how)()
        stats = client.stats_for("enrollments")
    assert ids == sorted(sim.tenant(APP).district.collections["enrollments"])
    log = settled_requests(sim)
    assert len([r for r in log if r.path.endswith("/oauth2/token")]) == 2  # one renewal, even with 5 threads
    rejected = [r for r in log if r.status == 401]
    assert 1 <= len(rejected) <= 5 and stats.token_requests == 2 and stats.complete


def test_a_second_401_after_renewal_is_an_authentication_error_not_a_loop(sim: SimulatorServer) -> None:
    sim.faults.add(status=401, times=2, path_contains="/users")
    with OneRosterClient(config_for(sim)) as client, pytest.raises(AuthenticationError) as caught:
        pull(client, "users")
    assert caught.value.status == 401 and "springfield" in str(caught.value) and "/users" in str(caught.value)
    log = settled_requests(sim)
    assert len([r for r in log if r.path.endswith("/users")]) == 2
    assert len([r for r in log if r.path.endswith("/oauth2/token")]) == 2


@pytest.mark.parametrize("token_auth", ["basic", "form"])
def test_wrong_secret_is_an_authentication_error_naming_the_district(
    sim: SimulatorServer, token_auth: str
) -> None:
    wrong = "not-the-right-secret-123"
    with OneRosterClient(config_for(sim, client_secret=wrong, token_auth=token_auth)) as client:
        with pytest.raises(AuthenticationError) as caught:
            pull(client, "users")
    error = caught.value
    assert error.district_id == "springfield" and error.endpoint == "token" and error.status in (400, 401)
    assert error.oauth_error == "invalid_client"
    assert wrong not in str(error) and wrong not in repr(error)
    assert isinstance(error, OneRosterError)


def test_token_endpoint_refusing_connections_is_retried_and_named(sim: SimulatorServer) -> None:
    dead = "http://127.0.0.1:1/campus/oauth2/token?appName=demo"  # port 1: connection refused
    with (
        OneRosterClient(config_for(sim, token_url=dead, max_retries=2)) as client,
        pytest.raises(RetriesExhaustedError) as caught,
    ):
        pull(client, "users")
    error = caught.value
    assert error.attempts == 3 and error.last_failure == "token endpoint ConnectError"
    assert "district 'springfield'" in str(error) and "token endpoint" in str(error)
    assert not [
        r for r in settled_requests(sim) if r.path.endswith("/users")
    ]  # no request went out tokenless


# ----------------------------------------------------------------------------------------- retries


def test_429_retry_after_is_honoured(sim: SimulatorServer) -> None:
    sim.faults.add(status=429, retry_after=1, times=1, path_contains="/users", after=1)  # page 2
    with OneRosterClient(config_for(sim)) as client:
        assert [r["sourcedId"] for r in pull(client, "users")] == users(sim)
        stats = client.stats_for("users")
    log = [r for r in settled_requests(sim) if r.path.endswith("/users")]
    busy = next(i for i, r in enumerate(log) if r.status == 429)
    same_page = [
        r for r in log[busy + 1 :] if parse_qs(r.query)["offset"] == parse_qs(log[busy].query)["offset"]
    ]
    gap = same_page[0].started - (log[busy].started + log[busy].seconds)
    assert gap >= 0.95  # Retry-After: 1 (the backoff alone would be ~10 ms)
    assert stats.retries == 1 and stats.requests == stats.pages + 1


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500},
        {"status": 502},
        {"status": 503},
        {"status": 504},
        {"status": 429},
        {"kind": "reset"},
        {"kind": "truncate"},
        {"kind": "incomplete"},
    ],
)
def test_transient_failures_are_retried_until_the_pull_is_complete(
    sim: SimulatorServer, fault: dict[str, Any]
) -> None:
    sim.faults.add(**fault, times=2, path_contains="/enrollments", after=3)
    with OneRosterClient(config_for(sim)) as client:
        ids = [r["sourcedId"] for r in pull(client, "enrollments")]
        stats = client.stats_for("enrollments")
    assert ids == sorted(sim.tenant(APP).district.collections["enrollments"])
    assert stats.retries == 2 and stats.complete and stats.duplicates_dropped == 0


def test_retries_exhausted_names_district_endpoint_and_last_failure(sim: SimulatorServer) -> None:
    sim.faults.add(status=503, times=None, path_contains="/courses")
    with OneRosterClient(config_for(sim, max_retries=2)) as client:
        with pytest.raises(RetriesExhaustedError) as caught:
            pull(client, "courses")
        stats = client.stats_for("courses")
    error = caught.value
    assert error.attempts == 3 and error.status == 503 and error.last_failure == "HTTP 503"
    assert str(error).startswith("district 'springfield', endpoint '/courses': gave up after 3 attempts")
    assert stats.requests == 3 and stats.retries == 2 and not stats.complete


def test_501_is_not_retried_and_carries_the_imsx_codes(sim: SimulatorServer) -> None:
    """500 is retried like 502-504 (see test_oneroster_completeness); a 501 names a permanent condition."""
    sim.faults.add(status=501, times=1, path_contains="/classes")
    with OneRosterClient(config_for(sim)) as client, pytest.raises(OneRosterHTTPError) as caught:
        pull(client, "classes")
    assert caught.value.status == 501 and caught.value.code_minor == "internal_server_error"
    assert len([r for r in settled_requests(sim) if r.path.endswith("/classes")]) == 1


# ----------------------------------------------------------------------------------------- errors and reads


def test_imsx_4xx_becomes_an_exception_with_its_codes(sim: SimulatorServer) -> None:
    with OneRosterClient(config_for(sim)) as client, pytest.raises(OneRosterHTTPError) as caught:
        pull(client, "users", filter="shoeSize='9'")
    error = caught.value
    assert error.status == 400 and error.code_major == "failure" and error.severity == "error"
    assert error.code_minor == "invalid_filter_field" and error.description
    text = str(error)
    assert "springfield" in text and "/users" in text and "CodeMinor=invalid_filter_field" in text


def test_a_200_without_the_envelope_key_is_an_error_not_an_empty_list(sim: SimulatorServer) -> None:
    sim.faults.add(status=200, times=1, path_contains="/users")  # the simulator answers 200 with {}
    with OneRosterClient(config_for(sim)) as client, pytest.raises(EnvelopeError) as caught:
        pull(client, "users")
    error = caught.value
    assert error.field == "users" and error.district_id == "springfield" and error.endpoint == "/users"
    assert "without the 'users' key" in str(error)


def test_get_one_and_its_404(sim: SimulatorServer) -> None:
    some_id = users(sim)[3]
    with OneRosterClient(config_for(sim)) as client:
        record = client.get_one("users", some_id)
        student = next(
            u for u in sim.tenant(APP).district.collections["users"].values() if u["role"] == "student"
        )
        assert client.get_one("students", student["sourcedId"])["role"] == "student"
        with pytest.raises(OneRosterHTTPError) as caught:
            client.get_one("users", "no-such-user")
    assert record["sourcedId"] == some_id
    assert caught.value.status == 404 and caught.value.code_minor == "unknownobject"
    assert caught.value.endpoint == "/users/no-such-user"


def test_current_school_year_is_one_filtered_request(sim: SimulatorServer) -> None:
    district = sim.tenant(APP).district
    sim.clear_requests()
    with OneRosterClient(config_for(sim)) as client:
        assert client.current_school_year(today=date(2026, 10, 1)) == district.school_year
        # Outside every school year (summer): the latest one the SIS serves.
        assert client.current_school_year(today=date(2031, 7, 15)) == district.school_year
    log = [r for r in settled_requests(sim) if "academicSessions" in r.path]
    assert len(log) == 2 and all(parse_qs(r.query)["filter"] == ["type='schoolYear'"] for r in log)


# ----------------------------------------------------------------------------------------- secrets


def test_secrets_never_reach_logs_exceptions_or_reprs(
    sim: SimulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, httpcore, the simulator's
    texts: list[str] = []
    tokens: set[str] = set()
    sim.faults.add(status=429, retry_after=0, times=1, path_contains="/users")
    sim.faults.add(status=401, times=1, path_contains="/users", after=2)
    config = config_for(sim)
    with OneRosterClient(config) as client:
        for _batch in client.iter_batches("users"):
            tokens.add(client._tokens.access_token())
        # Expired between two pulls: expiring mid-pull could land between the simulated 401's renewal and
        # its retry, which then (rightly) fails as "refused a freshly issued token" and makes this test flaky.
        sim.expire_tokens()
        pull(client, "courses")
        tokens.add(client._tokens.access_token())
        texts += [
            repr(client),
            str(client),
            repr(client._tokens),
            repr(client._auth),
            repr(config),
            str(config),
            repr(client.stats_for("users")),
            str(client.stats_for("users").as_metadata()),
        ]
        sim.faults.add(status=503, times=None, path_contains="/orgs")
        for failing in (lambda: pull(client, "orgs"), lambda: pull(client, "users", filter="bogus='1'")):
            with pytest.raises(OneRosterError) as caught:
                failing()
            texts += [str(caught.value), repr(caught.value), repr(caught.value.args)]
    with OneRosterClient(config_for(sim, client_secret="another-Secret-999")) as bad:
        with pytest.raises(AuthenticationError) as caught_auth:
            pull(bad, "users")
        texts += [str(caught_auth.value), repr(caught_auth.value)]
    assert len(tokens) >= 2  # the renewal really happened, so both tokens are checked
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    haystack = caplog.text + "\n".join(texts) + "\n".join(str(r.__dict__) for r in caplog.records)
    assert "retry 1 of 6" in caplog.text  # logging was really captured at the levels we care about
    for secret in [CLIENT_SECRET, "another-Secret-999", basic, *tokens]:
        assert secret not in haystack


# ----------------------------------------------------------------------------------------- bad bytes


def test_invalid_utf8_in_one_record_is_read_leniently_without_spending_retries(sim: SimulatorServer) -> None:
    target = users(sim)[12]  # page 2 of 4 at page size 10
    sim.faults.add(
        kind="invalid_utf8", sourced_id=target, field="givenName", times=None, path_contains="/users"
    )
    with OneRosterClient(config_for(sim)) as client:
        records = pull(client, "users")
        stats = client.stats_for("users")
    assert [r["sourcedId"] for r in records] == users(sim)  # the rest of the page, and the pull, go on
    [bad] = [r for r in records if r["sourcedId"] == target]
    name = sim.tenant(APP).district.collections["users"][target]["givenName"]
    assert bad["givenName"] == name + "\udce9"  # the byte, kept (surrogateescape) for validation to report
    assert (
        stats.complete
        and stats.retries == 0
        and stats.requests == stats.pages
        and stats.invalid_utf8_pages == 1
    )


def test_a_body_garbled_beyond_json_is_read_twice_then_refused_naming_the_byte(sim: SimulatorServer) -> None:
    sim.faults.add(kind="truncate", times=None, path_contains="/users")  # cut in half, after the bad byte
    sim.faults.add(
        kind="invalid_utf8", sourced_id=users(sim)[0], field="givenName", times=None, path_contains="/users"
    )
    with OneRosterClient(config_for(sim)) as client:
        with pytest.raises(EnvelopeError) as caught:
            pull(client, "users")
        stats = client.stats_for("users")
    message = str(caught.value)
    assert message.startswith(
        "district 'springfield', endpoint '/users': the response body is not valid UTF-8"
    )
    assert "byte offset" in message and "0xe9" in message and "read 2 times" in message
    assert stats.requests == 2 and stats.retries == 1


def test_truncated_json_is_still_retried_as_a_transient_failure(sim: SimulatorServer) -> None:
    sim.faults.add(kind="truncate", times=None, path_contains="/users")
    with OneRosterClient(config_for(sim, max_retries=2)) as client:
        with pytest.raises(RetriesExhaustedError) as caught:
            pull(client, "users")
    assert caught.value.attempts == 3 and "truncated" in caught.value.last_failure
