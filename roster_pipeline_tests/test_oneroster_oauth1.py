"""Import method ``oneroster_rest_oauth1``: OneRoster 1.1 REST with two-legged OAuth 1.0a HMAC-SHA256 signing.

The client signs every request with its consumer key and secret (no token endpoint); the project's
simulator, started in OAuth1 mode, verifies each signature and refuses a wrong secret, an unknown key, a
stale timestamp or a replayed nonce with a 401 and an imsx body. Most tests are client + simulator over
loopback; one sync goes through the warehouse to show both auth schemes publish the same rows.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import sqlalchemy as sa
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_HMAC_SHA256, Client

from roster_pipeline.oneroster import AuthenticationError, ClientConfig, OneRosterClient
from roster_pipeline.oneroster.config import MissingTokenURLError
from roster_pipeline.oneroster.oauth1 import OAuth1Auth
from roster_pipeline.pipeline.sync import sync_district
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.registry.districts import RegistryError, parse_registry
from roster_pipeline.simulator import (
    SimulatorProcess,
    SimulatorServer,
    Tenant,
    generate_district,
    running_simulator,
)
from roster_pipeline.simulator.endpoints import TOKEN_PATH
from roster_pipeline.simulator.oauth1 import SignatureVerifier
from roster_pipeline.sources.factory import client_config_for
from roster_pipeline.warehouse import TABLES, Warehouse

APP = "demo"
KEY = "oauth1-consumer"
SECRET = "oauth1-S3cret-t6Yp2"
WRONG_SECRET = "oauth1-wrong-k3Vb9"
SIGNATURE = re.compile(r'oauth_signature="([^"]+)"')


@pytest.fixture()
def sim() -> Iterator[SimulatorServer]:
    """tiny (31 users, 22 of them students): a page size of 5 gives several pages."""
    with running_simulator(
        size="tiny", seed=1, app_name=APP, client_id=KEY, client_secret=SECRET, auth_mode="oauth1"
    ) as server:
        yield server


def oauth1_config(server: SimulatorServer, **settings: Any) -> ClientConfig:
    values: dict[str, Any] = {
        "district_id": "springfield",
        "base_url": server.base_url(APP),
        "auth_scheme": "oauth1",
        "client_id": KEY,
        "client_secret": SECRET,
        "page_size": 5,
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.05,
        **settings,
    }
    return ClientConfig(**values)


def signed(
    server: SimulatorServer, path: str = "/users", params: dict[str, str] | None = None, secret: str = SECRET
) -> httpx.Request:
    """A request signed by the client's auth flow, to be sent (and re-sent) by hand."""
    request = httpx.Request("GET", server.base_url(APP) + path, params=params)
    return next(OAuth1Auth(KEY, secret).auth_flow(request))


def signed_by_hand(
    server: SimulatorServer,
    *,
    timestamp: int | None = None,
    key: str = KEY,
    method: str = SIGNATURE_HMAC_SHA256,
) -> dict[str, str]:
    """Headers of a request signed directly with oauthlib: for a chosen timestamp, key or method."""
    client = Client(
        key,
        client_secret=SECRET,
        signature_method=method,
        timestamp=None if timestamp is None else str(timestamp),
    )
    _, headers, _ = client.sign(server.base_url(APP) + "/orgs", http_method="GET")
    return headers


def refusal(response: httpx.Response) -> str:
    """The imsx description of a 401, after checking the status body is the OneRoster one."""
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["imsx_codeMajor"] == "failure" and body["imsx_severity"] == "error"
    assert (
        body["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"] == "unauthorisedrequest"
    )
    return str(body["imsx_description"])


# ------------------------------------------------------------------------------------------ client + simulator


@pytest.mark.parametrize("concurrent", [True, False], ids=["concurrent", "sequential-by-link"])
def test_an_oauth1_client_pulls_every_page_of_a_filtered_delta(
    sim: SimulatorServer, concurrent: bool
) -> None:
    since = datetime(2020, 1, 1, tzinfo=UTC)
    with OneRosterClient(oauth1_config(sim, concurrent_paging=concurrent)) as client:
        ids = [
            r["sourcedId"]
            for batch in client.iter_batches("users", since=since, filter="role='student'")
            for r in batch
        ]
        stats = client.stats_for("users")
    users = sim.tenant(APP).district.collections["users"].values()
    expected = sorted(u["sourcedId"] for u in users if u["role"] == "student")
    assert sorted(ids) == expected and len(expected) > 3 * 5  # more than three pages of 5
    assert stats.complete and stats.pages >= 4 and stats.token_requests == 0
    served = sim.requests
    assert served and all(r.status == 200 and r.auth_ok for r in served)
    assert not any(r.path == TOKEN_PATH for r in served)  # there is no token endpoint in OAuth 1.0a
    # The signed parameters were really on the wire: filter, delta bound, paging and sort, page by page.
    assert all("filter=role%3D%27student%27+AND+dateLastModified%3E%272020-01-01" in r.query for r in served)
    assert {q for r in served for q in r.query.split("&") if q.startswith("offset=")} >= {
        "offset=0",
        "offset=5",
        "offset=10",
        "offset=15",
    }


def test_the_signature_covers_the_query_parameters(sim: SimulatorServer) -> None:
    request = signed(sim, params={"limit": "5", "offset": "0", "filter": "role='student'"})
    altered = httpx.Request("GET", request.url.copy_merge_params({"offset": "5"}), headers=request.headers)
    with httpx.Client() as http:
        assert "does not match" in refusal(http.send(altered))
        assert http.send(signed(sim, params={"limit": "5", "offset": "5"})).status_code == 200


def test_a_wrong_secret_is_an_authentication_error_naming_district_and_endpoint(sim: SimulatorServer) -> None:
    with OneRosterClient(oauth1_config(sim, client_secret=WRONG_SECRET)) as client:
        with pytest.raises(AuthenticationError) as caught:
            list(client.iter_batches("classes"))
    error = caught.value
    assert error.district_id == "springfield" and error.endpoint == "/classes" and error.status == 401
    text = f"{error} {error!r} {error.args!r}"
    assert text.startswith("district 'springfield', endpoint '/classes': HTTP 401")
    assert "refused the OAuth 1.0a request signature" in text and "does not match" in text
    assert WRONG_SECRET not in text and SECRET not in text and "oauth_signature=" not in text
    assert len(sim.requests) == 1  # refused once, not retried: resending the same secret cannot help


def test_the_simulator_refuses_a_replayed_nonce(sim: SimulatorServer) -> None:
    request = signed(sim, params={"limit": "5", "offset": "0"})
    with httpx.Client() as http:
        assert http.send(request).status_code == 200
        assert "nonce already used" in refusal(http.send(request))  # the very same signed request again


def test_the_simulator_refuses_a_timestamp_more_than_five_minutes_off(sim: SimulatorServer) -> None:
    now = int(time.time())
    with httpx.Client() as http:

        def status_at(timestamp: int) -> httpx.Response:
            return http.get(sim.base_url(APP) + "/orgs", headers=signed_by_hand(sim, timestamp=timestamp))

        assert status_at(now - 240).status_code == 200  # a slow clock within the window is fine
        assert "stale oauth_timestamp" in refusal(status_at(now - 360))
        assert "stale oauth_timestamp" in refusal(status_at(now + 360))


def test_the_simulator_refuses_unknown_keys_other_methods_and_bearer_tokens(sim: SimulatorServer) -> None:
    url = sim.base_url(APP) + "/orgs"
    with httpx.Client() as http:
        assert "unknown oauth_consumer_key" in refusal(
            http.get(url, headers=signed_by_hand(sim, key="someone-else"))
        )
        assert "HMAC-SHA256" in refusal(
            http.get(url, headers=signed_by_hand(sim, method=SIGNATURE_HMAC_SHA1))
        )
        assert "missing or malformed" in refusal(http.get(url, headers={"Authorization": "Bearer abc"}))
        token = http.post(
            sim.url + TOKEN_PATH,
            params={"appName": APP},
            auth=(KEY, SECRET),
            data={"grant_type": "client_credentials"},
        )
        assert token.status_code == 404 and "OAuth 1.0a" in token.json()["imsx_description"]


def test_no_secret_or_signature_in_logs_reprs_or_the_request_log(
    sim: SimulatorServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, the simulator's, oauthlib's signing logger
    received: list[str] = []
    verify = SignatureVerifier.refusal

    def recording(self: SignatureVerifier, *args: Any) -> str | None:
        received.append(args[-1]["Authorization"])  # what went over the wire, to look for afterwards
        return verify(self, *args)

    monkeypatch.setattr(SignatureVerifier, "refusal", recording)
    config = oauth1_config(sim)
    with OneRosterClient(config) as client:
        list(client.iter_batches("orgs"))
        client_repr = f"{client!r} {client._auth!r} {config!r} {config.model_dump()!r}"
    with OneRosterClient(oauth1_config(sim, client_secret=WRONG_SECRET)) as client:
        with pytest.raises(AuthenticationError) as caught:
            list(client.iter_batches("orgs"))
    signatures = [m.group(1) for header in received for m in [SIGNATURE.search(header)] if m]
    assert len(signatures) == len(received) >= 2
    sinks = {
        "logging": caplog.text + "\n".join(repr(r.__dict__) for r in caplog.records),
        "simulator request log": "\n".join(repr(r) for r in sim.requests),
        "client reprs": client_repr,
        "error": f"{caught.value} {caught.value!r}",
    }
    # Each signature as sent (percent-encoded in the header) and as computed (base64, what oauthlib would log).
    secrets = [SECRET, WRONG_SECRET, *signatures, *(unquote(s) for s in signatures)]
    leaks = [
        f"{secret[:6]}… in {sink}" for sink, text in sinks.items() for secret in secrets if secret in text
    ]
    assert leaks == []
    assert "oauth_signature" not in sinks["simulator request log"]
    assert "/orgs" in sinks["logging"]  # the logs were really captured


def test_the_console_simulator_serves_oauth1_with_the_auth_flag() -> None:
    with SimulatorProcess(
        size="tiny",
        seed=3,
        app_name=APP,
        client_id=KEY,
        client_secret=SECRET,
        extra_args=["--auth", "oauth1"],
    ) as proc:
        assert proc.token_url == "" and proc.base_url.endswith(f"/{APP}/ims/oneroster/v1p1")
        config = ClientConfig(
            district_id="cli",
            base_url=proc.base_url,
            auth_scheme="oauth1",
            client_id=KEY,
            client_secret=SECRET,
            page_size=10,
        )
        with OneRosterClient(config) as client:
            assert len([r for batch in client.iter_batches("users") for r in batch]) > 10
        unsigned = httpx.get(proc.base_url + "/users")
        assert unsigned.status_code == 401
        assert proc.stop() == 0
        log = proc.log_text()
    assert "/users" in log and SECRET not in log and "oauth_signature" not in log


# ------------------------------------------------------------------------------------------ registry and config


def registry_entry(**fields: Any) -> dict[str, Any]:
    return {
        "id": "north",
        "name": "North USD",
        "client_id_env": "NORTH_KEY",
        "client_secret_env": "NORTH_SECRET",
        **fields,
    }


def test_the_registry_needs_no_token_url_for_oauth1_and_the_client_gets_none() -> None:
    registry = parse_registry(
        {
            "districts": [
                registry_entry(
                    sis="generic",
                    import_method="oneroster_rest_oauth1",
                    base_url="https://sis.example.org/ims/oneroster/v1p1",
                ),
                registry_entry(
                    id="south",
                    import_method="oneroster_rest_oauth1",
                    base_url="https://ic.example.org/campus/api/oneroster/v1p1/app/ims/oneroster/v1p1",
                ),
            ]
        }
    )
    environ = {"NORTH_KEY": KEY, "NORTH_SECRET": SECRET}
    for district in registry:
        config = client_config_for(district, environ)
        assert config.auth_scheme == "oauth1" and config.token_url is None
        assert config.client_id == KEY and config.client_secret.get_secret_value() == SECRET


def test_oauth2_still_needs_a_token_url() -> None:
    with pytest.raises(RegistryError, match="'north'.*field 'token_url'"):
        parse_registry(
            {"districts": [registry_entry(sis="generic", base_url="https://sis.example.org/v1p1")]}
        )
    with pytest.raises(MissingTokenURLError, match="district 'north': token_url is required"):
        ClientConfig(
            district_id="north", base_url="https://sis.example.org/v1p1", client_id=KEY, client_secret=SECRET
        )


# ------------------------------------------------------------------------------------------ one sync, both schemes


def published_rows(wh: Warehouse, district_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every published row of a district, every column but what differs by construction between two
    districts: the district id, import ids, times (deleted_at only as deleted or not), and the raw record
    and its hash, whose hrefs name each simulator's port (the raw records are compared by their columns)."""
    skip = {
        "district_id",
        "raw",
        "record_hash",
        "first_seen_at",
        "updated_at",
        "deleted_at",
        "last_import_id",
        "archived_at",
    }
    out: dict[str, list[tuple[Any, ...]]] = {}
    with wh.engine.connect() as conn:
        for resource in RESOURCES:
            table = TABLES[resource.name].published
            columns = [c for c in table.columns if c.name not in skip] + [table.c.deleted_at.is_(None)]
            rows = conn.execute(sa.select(*columns).where(table.c.district_id == district_id)).all()
            out[resource.name] = sorted(tuple(str(v) for v in row) for row in rows)
    return out


def test_an_oauth1_sync_publishes_the_same_rows_as_the_oauth2_one(warehouse_url: str) -> None:
    district = generate_district("tiny", seed=7)
    oauth2_sim = SimulatorServer([Tenant("alpha", "alpha-client", "alpha-secret", copy.deepcopy(district))])
    oauth1_sim = SimulatorServer([Tenant("alpha", KEY, SECRET, copy.deepcopy(district))], auth_mode="oauth1")
    environ = {"A_KEY": "alpha-client", "A_SECRET": "alpha-secret", "B_KEY": KEY, "B_SECRET": SECRET}
    warehouse = Warehouse(warehouse_url)
    warehouse.create_schema()
    with oauth2_sim, oauth1_sim:
        registry = parse_registry(
            {
                "districts": [
                    {
                        "id": "via_oauth2",
                        "name": "Via OAuth2",
                        "api_host": oauth2_sim.url,
                        "app_name": "alpha",
                        "client_id_env": "A_KEY",
                        "client_secret_env": "A_SECRET",
                        "page_size": 50,
                    },
                    {
                        "id": "via_oauth1",
                        "name": "Via OAuth1",
                        "import_method": "oneroster_rest_oauth1",
                        "base_url": oauth1_sim.base_url("alpha"),
                        "client_id_env": "B_KEY",
                        "client_secret_env": "B_SECRET",
                        "page_size": 50,
                    },
                ]
            }
        )
        results = {
            d.id: sync_district(warehouse, d, f"run-{d.id}", RESOURCES, environ=environ) for d in registry
        }
        oauth1_requests = oauth1_sim.requests
    assert all(result.published for result in results.values())
    assert results["via_oauth1"].published == results["via_oauth2"].published
    via_oauth1, via_oauth2 = published_rows(warehouse, "via_oauth1"), published_rows(warehouse, "via_oauth2")
    assert via_oauth1 == via_oauth2
    assert len(via_oauth1["users"]) == len(district.collections["users"]) > 0
    assert len(via_oauth1["enrollments"]) == len(district.collections["enrollments"]) > 0
    assert oauth1_requests and all(r.auth_ok for r in oauth1_requests)
    assert not any(r.path == TOKEN_PATH for r in oauth1_requests)
    warehouse.dispose()
