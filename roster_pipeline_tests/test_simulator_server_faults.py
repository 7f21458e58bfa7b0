"""Fault injection, the request log, latency, the admin endpoint and secrets staying out of logs."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import httpx
import pytest

from roster_pipeline.simulator import SimulatorServer, Tenant, running_simulator
from roster_pipeline_tests.simulator_data import hand_made_district

CID, SECRET = "fault-client", "fault-secret-Zx9"


@pytest.fixture()
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer([Tenant("demo", CID, SECRET, hand_made_district())]) as srv:
        yield srv


@pytest.fixture()
def api(server: SimulatorServer) -> Iterator[httpx.Client]:
    token = httpx.post(
        server.token_url("demo"), data={"grant_type": "client_credentials"}, auth=(CID, SECRET)
    ).json()
    with httpx.Client(
        base_url=server.base_url("demo"),
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    ) as client:
        yield client


def test_429_with_retry_after_fires_the_given_number_of_times(
    server: SimulatorServer, api: httpx.Client
) -> None:
    server.faults.add(status=429, retry_after=1, times=2, path_contains="/users")
    assert api.get("/orgs").status_code == 200  # other paths untouched
    first, second, third = (api.get("/users") for _ in range(3))
    assert first.status_code == second.status_code == 429 and third.status_code == 200
    assert first.headers["retry-after"] == "1"
    assert (
        first.json()["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"] == "server_busy"
    )
    log = [r for r in server.requests if "/users" in r.path]
    assert [r.status for r in log] == [429, 429, 200] and [r.fault for r in log] == ["status", "status", None]


def test_after_skips_the_first_matches(server: SimulatorServer, api: httpx.Client) -> None:
    server.faults.add(status=500, after=2, times=1, path_contains="/enrollments")
    codes = [api.get("/enrollments", params={"offset": i * 5, "limit": 5}).status_code for i in range(4)]
    assert codes == [200, 200, 500, 200]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_answer_html(server: SimulatorServer, api: httpx.Client, status: int) -> None:
    server.faults.add(status=status)
    r = api.get("/users")
    assert r.status_code == status and r.headers["content-type"].startswith("text/html")
    assert api.get("/users").status_code == 200


def test_connection_reset(server: SimulatorServer, api: httpx.Client) -> None:
    server.faults.add(kind="reset", path_contains="/classes")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.get("/classes")
    assert api.get("/classes").status_code == 200  # a fresh connection works again
    # Each connection has its own handler thread, so the reset request's log entry may land after the
    # next request's: look it up rather than by position.
    resets = [r for r in server.requests if r.path.endswith("/classes") and r.fault == "reset"]
    assert len(resets) == 1 and resets[0].status == 0


def test_truncated_json_body(server: SimulatorServer, api: httpx.Client) -> None:
    server.faults.add(kind="truncate", path_contains="/users")
    r = api.get("/users")
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)
    assert len(api.get("/users").json()["users"]) == 13


def test_missing_envelope_keeps_the_headers_and_drops_the_plural_key(
    server: SimulatorServer, api: httpx.Client
) -> None:
    server.faults.add(kind="no_envelope", path_contains="/users")
    r = api.get("/users", params={"limit": 5})
    assert r.status_code == 200 and r.headers["x-total-count"] == "13" and "link" in r.headers
    assert "users" not in r.json()
    assert len(api.get("/users", params={"limit": 5}).json()["users"]) == 5


def test_incomplete_body_breaks_the_connection(server: SimulatorServer, api: httpx.Client) -> None:
    server.faults.add(kind="incomplete", path_contains="/users")
    with pytest.raises(httpx.RemoteProtocolError):
        api.get("/users")
    assert api.get("/users").status_code == 200


def test_slow_response_and_latency(server: SimulatorServer, api: httpx.Client) -> None:
    server.faults.add(kind="slow", delay_seconds=0.3, path_contains="/orgs")
    started = time.monotonic()
    assert api.get("/orgs").status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        server.faults.add(kind="slow", delay_seconds=1.0, path_contains="/orgs")
        api.get("/orgs", timeout=0.2)
    server.latency_ms = 150
    started = time.monotonic()
    api.get("/terms")
    assert time.monotonic() - started >= 0.15


def test_faults_can_hit_the_token_endpoint(server: SimulatorServer) -> None:
    server.faults.add(status=503, retry_after=2, path_contains="/oauth2/token")
    r = httpx.post(server.token_url("demo"), data={"grant_type": "client_credentials"}, auth=(CID, SECRET))
    assert r.status_code == 503 and r.headers["retry-after"] == "2"


def test_fault_validation(server: SimulatorServer) -> None:
    with pytest.raises(ValueError):
        server.faults.add(kind="explode")
    with pytest.raises(ValueError):
        server.faults.add(kind="slow")
    with pytest.raises(ValueError):
        server.faults.add()


def test_request_log_is_bounded_and_redacted() -> None:
    with SimulatorServer([Tenant("demo", CID, SECRET, hand_made_district())], request_log_size=3) as srv:
        for _ in range(5):
            httpx.post(
                srv.token_url("demo") + f"&client_secret={SECRET}", data={"grant_type": "client_credentials"}
            )
        assert len(srv.requests) == 3
        assert all(SECRET not in r.query and "[REDACTED]" in r.query for r in srv.requests)
        assert all(r.auth_ok is None for r in srv.requests)
        srv.clear_requests()
        assert srv.requests == []


def test_secrets_and_tokens_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="roster_pipeline.simulator")
    district = hand_made_district()
    with SimulatorServer([Tenant("demo", CID, SECRET, district)]) as srv:
        form = {"grant_type": "client_credentials", "client_id": CID, "client_secret": SECRET}
        token = httpx.post(srv.token_url("demo"), data=form).json()["access_token"]
        httpx.post(srv.token_url("demo"), data={"grant_type": "client_credentials"}, auth=(CID, SECRET))
        httpx.get(srv.base_url("demo") + "/users", headers={"Authorization": f"Bearer {token}"})
        httpx.get(srv.base_url("demo") + f"/users?access_token={token}")
        httpx.post(
            srv.token_url("demo"), data={"grant_type": "client_credentials"}, auth=(CID, "wrong-" + SECRET)
        )
        assert SECRET not in repr(srv.tenant("demo"))
        assert len(srv.requests) == 5
    text = caplog.text + "".join(repr(r) for r in caplog.records)
    assert "/users" in text  # the request lines are logged...
    assert SECRET not in text and token not in text  # ...without credentials


# ------------------------------------------------------------------------------------------ paging faults


def _user_ids(response: httpx.Response) -> list[str]:
    return [u["sourcedId"] for u in response.json()["users"]]


def test_total_count_fault_lies_about_the_total_and_nothing_else(
    server: SimulatorServer, api: httpx.Client
) -> None:
    truth = api.get("/users", params={"limit": 5})
    server.faults.add(kind="total_count", total_delta=7, path_contains="/users")
    server.faults.add(kind="total_count", total=2, path_contains="/orgs")
    high, after = api.get("/users", params={"limit": 5}), api.get("/users", params={"limit": 5})
    low = api.get("/orgs")
    assert truth.headers["x-total-count"] == after.headers["x-total-count"] == "13"
    assert high.headers["x-total-count"] == "20" and low.headers["x-total-count"] == "2"
    assert _user_ids(high) == _user_ids(truth) and high.headers["link"] == truth.headers["link"]
    assert len(low.json()["orgs"]) == 4  # the records are all there: only the header lies
    assert [r.fault for r in server.requests if r.path.endswith("/users")] == [None, "total_count", None]


def test_offset_narrows_a_rule_to_one_page_every_time(server: SimulatorServer, api: httpx.Client) -> None:
    server.faults.add(kind="total_count", total=5, offset=0, times=None, path_contains="/users")
    totals = [
        api.get("/users", params=params).headers["x-total-count"]
        for params in (
            {"limit": 5},
            {"limit": 5, "offset": 5},
            {"limit": 5, "offset": 0},
            {"limit": 5, "offset": 10},
        )
    ]
    assert totals == ["5", "13", "5", "13"]


def test_drop_fault_serves_a_short_page_with_the_true_total(
    server: SimulatorServer, api: httpx.Client
) -> None:
    full = _user_ids(api.get("/users", params={"limit": 6}))
    server.faults.add(kind="drop", count=2, path_contains="/users")
    short = api.get("/users", params={"limit": 6})
    assert short.headers["x-total-count"] == "13"
    assert _user_ids(short) == full[:2] + full[4:]  # two records from the middle are missing
    assert _user_ids(api.get("/users", params={"limit": 6})) == full


def test_mutate_fault_changes_the_district_between_two_pages(
    server: SimulatorServer, api: httpx.Client
) -> None:
    rule = server.faults.add(
        kind="mutate",
        mutation="remove_students",
        mutation_params={"count": 2, "mode": "vanish"},
        path_contains="/users",
        after=1,
    )
    first, second = (
        api.get("/users", params={"limit": 5}),
        api.get("/users", params={"limit": 5, "offset": 5}),
    )
    third = api.get("/users", params={"limit": 5, "offset": 10})
    assert (
        first.headers["x-total-count"] == second.headers["x-total-count"] == "13"
    )  # page 2 was served, then...
    (result,) = rule.results
    gone = result.changes["users"].removed  # two students (and a guardian left without a child)
    assert len(gone) >= 2 and not gone & set(server.tenant("demo").district.collections["users"])
    assert third.headers["x-total-count"] == str(13 - len(gone))  # ...the district changed under the client
    assert rule.fired == 1


def test_paging_faults_are_checked_when_added(server: SimulatorServer) -> None:
    for bad in (
        {"kind": "total_count"},
        {"kind": "total_count", "total": -1},
        {"kind": "drop", "count": 0},
        {"kind": "mutate"},
        {"kind": "mutate", "mutation": "explode"},
        {"kind": "mutate", "mutation": "add_students", "mutation_params": {"count": "2"}},
        {"kind": "drop", "offset": -5},
    ):
        with pytest.raises(ValueError):
            server.faults.add(**bad)
        assert httpx.post(f"{server.url}/_simulator/faults", json=bad).status_code == 400, bad
    assert server.faults.rules == []


def test_admin_endpoint_adds_paging_faults(server: SimulatorServer, api: httpx.Client) -> None:
    r = httpx.post(
        f"{server.url}/_simulator/faults",
        json={
            "kind": "total_count",
            "total_delta": -3,
            "offset": 0,
            "times": None,
            "path_contains": "/users",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["total_delta"] == -3 and r.json()["offset"] == 0
    assert api.get("/users").headers["x-total-count"] == "10"
    r = httpx.post(
        f"{server.url}/_simulator/faults",
        json={
            "kind": "mutate",
            "mutation": "change_users",
            "mutation_params": {"percent": 50},
            "path_contains": "/orgs",
        },
    )
    assert r.status_code == 200, r.text
    version = httpx.get(f"{server.url}/_simulator/demo/stats").json()["version"]
    api.get("/orgs")
    assert httpx.get(f"{server.url}/_simulator/demo/stats").json()["version"] == version + 1


# ------------------------------------------------------------------------------------------ admin


def test_admin_stats_and_mutation(server: SimulatorServer, api: httpx.Client) -> None:
    stats = httpx.get(f"{server.url}/_simulator/demo/stats").json()
    assert stats["counts"]["users"] == 13 and stats["derived"]["students"] == 9 and stats["version"] == 0
    before = api.get("/users", params={"filter": "dateLastModified>'2026-11-27T00:00:00Z'"}).json()["users"]
    assert before == []
    r = httpx.post(
        f"{server.url}/_simulator/demo/mutations",
        json={"kind": "change_users", "params": {"percent": 50, "now": "2026-12-01T00:00:00Z"}},
    )
    assert r.status_code == 200, r.text
    summary = r.json()
    assert summary  # the generator's summary, passed through as JSON
    after = api.get("/users", params={"filter": "dateLastModified>'2026-11-27T00:00:00Z'", "limit": 100})
    assert int(after.headers["x-total-count"]) >= 1  # the delta filter sees the mutation
    assert httpx.get(f"{server.url}/_simulator/demo/stats").json()["version"] > 0


def test_admin_rejects_bad_mutations(server: SimulatorServer) -> None:
    url = f"{server.url}/_simulator/demo/mutations"
    assert httpx.post(url, json={"kind": "no_such_mutation"}).status_code == 400
    assert httpx.post(url, json={"kind": "change_users", "params": {"percnt": 5}}).status_code == 400
    assert httpx.post(url, content=b"not json").status_code == 400
    assert (
        httpx.post(f"{server.url}/_simulator/nope/mutations", json={"kind": "change_users"}).status_code
        == 404
    )
    assert httpx.get(f"{server.url}/_simulator/demo/nothing").status_code == 404


def test_admin_faults_and_tokens(server: SimulatorServer, api: httpx.Client) -> None:
    r = httpx.post(
        f"{server.url}/_simulator/faults", json={"status": 429, "retry_after": 3, "path_contains": "/orgs"}
    )
    assert r.status_code == 200 and r.json()["status"] == 429
    assert httpx.get(f"{server.url}/_simulator/faults").json()["faults"][0]["retry_after"] == 3
    assert api.get("/orgs").status_code == 429
    assert httpx.post(f"{server.url}/_simulator/faults", json={"bogus": 1}).status_code == 400
    assert httpx.post(f"{server.url}/_simulator/faults", json={"kind": "nope"}).status_code == 400
    httpx.post(f"{server.url}/_simulator/faults", json={"status": 500, "times": None})
    assert httpx.delete(f"{server.url}/_simulator/faults").json() == {"faults": []}
    assert api.get("/orgs").status_code == 200
    assert httpx.post(f"{server.url}/_simulator/tokens/expire").status_code == 200
    assert api.get("/orgs").status_code == 401
    assert httpx.post(f"{server.url}/_simulator/tokens/revoke").status_code == 200


def test_running_simulator_with_generated_district() -> None:
    with running_simulator(
        size="tiny", seed=1, app_name="tiny", client_id="a", client_secret="b", latency_ms=0
    ) as srv:
        assert srv.base_url("tiny").endswith("/campus/api/oneroster/v1p1/tiny/ims/oneroster/v1p1")
        token = httpx.post(
            srv.token_url("tiny"), data={"grant_type": "client_credentials"}, auth=("a", "b")
        ).json()
        r = httpx.get(
            srv.base_url("tiny") + "/users", headers={"Authorization": f"Bearer {token['access_token']}"}
        )
        assert r.status_code == 200 and int(r.headers["x-total-count"]) == srv.tenant("tiny").district.count(
            "users"
        )
    with pytest.raises(RuntimeError):
        srv.url  # noqa: B018 - stopped servers have no URL


def test_stop_is_quick_with_idle_keepalive_connections() -> None:
    srv = SimulatorServer([Tenant("demo", CID, SECRET, hand_made_district())]).start()
    client = httpx.Client()
    client.post(srv.token_url("demo"), data={"grant_type": "client_credentials"}, auth=(CID, SECRET))
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 2
    client.close()


# ------------------------------------------------------------------------------------------ data faults


def _users_page(api: httpx.Client, offset: int, limit: int = 5) -> httpx.Response:
    return api.get("/users", params={"limit": limit, "offset": offset, "sort": "sourcedId"})


def test_nul_fault_puts_a_nul_into_one_record_field_on_every_page_that_carries_it(
    server: SimulatorServer, api: httpx.Client
) -> None:
    rule = server.faults.add(
        kind="nul", sourced_id="stud2", field="familyName", times=None, path_contains="/users"
    )
    for _ in range(2):  # persistent, like bad data in the SIS
        records = _users_page(api, 0).json()["users"]
        [bad] = [r for r in records if r["sourcedId"] == "stud2"]
        assert "\x00" in bad["familyName"] and bad["familyName"].replace("\x00", "") == "Baker"
        assert all("\x00" not in json.dumps(r) for r in records if r["sourcedId"] != "stud2")
    assert _users_page(api, 5).status_code == 200 and rule.fired == 2  # pages without the record do not count
    assert "\x00" not in server.tenant("demo").district.collections["users"]["stud2"]["familyName"]


def test_invalid_utf8_fault_puts_a_latin1_byte_into_one_record_field(
    server: SimulatorServer, api: httpx.Client
) -> None:
    server.faults.add(
        kind="invalid_utf8", sourced_id="stud1", field="givenName", times=None, path_contains="/users"
    )
    body = _users_page(api, 0).content
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    offset = body.index(b"\xe9")
    assert body[offset - 20 : offset + 1].endswith(b'"givenName":"Smith\xe9')
    assert body.count(b"\xe9") == 1
    json.loads(body.decode("latin-1"))  # the page is sound JSON otherwise


def test_duplicate_fault_serves_the_record_again_at_the_end_with_or_without_a_change(
    server: SimulatorServer, api: httpx.Client
) -> None:
    count = len(server.tenant("demo").district.collections["users"])
    server.faults.add(
        kind="duplicate", sourced_id="guardian-1", field="givenName", times=None, path_contains="/users"
    )
    first, last = _users_page(api, 0, 10), _users_page(api, 10, 10)
    assert first.headers["x-total-count"] == last.headers["x-total-count"] == str(count + 1)
    original = next(r for r in first.json()["users"] if r["sourcedId"] == "guardian-1")
    copy = last.json()["users"][-1]
    assert copy["sourcedId"] == "guardian-1" and copy["givenName"] != original["givenName"]
    assert {k: v for k, v in copy.items() if k != "givenName"} == {
        k: v for k, v in original.items() if k != "givenName"
    }

    server.faults.clear()
    server.faults.add(kind="duplicate", sourced_id="stud1", times=None, path_contains="/users")
    ids = [r["sourcedId"] for r in _users_page(api, 0, 100).json()["users"]]
    assert ids.count("stud1") == 2
    records = _users_page(api, 0, 100).json()["users"]
    at = ids.index("stud1")
    assert records[at + 1] == records[at]  # an identical copy, right after its twin


def test_data_fault_validation_and_admin(server: SimulatorServer) -> None:
    with pytest.raises(ValueError, match="sourced_id"):
        server.faults.add(kind="nul", field="givenName")
    with pytest.raises(ValueError, match="field"):
        server.faults.add(kind="invalid_utf8", sourced_id="stud1")
    admin = f"{server.url}/_simulator/faults"
    r = httpx.post(admin, json={"kind": "nul", "sourced_id": "stud1", "field": "givenName", "times": None})
    assert r.status_code == 200 and r.json()["sourced_id"] == "stud1" and r.json()["field"] == "givenName"
