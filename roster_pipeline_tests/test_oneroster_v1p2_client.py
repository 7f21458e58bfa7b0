"""The OneRoster client in 1.2 mode against the simulator's 1.2 mode: the same district read through 1.2
arrives exactly as through 1.1 (plus what 1.2 says beyond it), and an unmappable record is handed on as
an issue to quarantine, without breaking paging's completeness proof."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from roster_pipeline.oneroster import ClientConfig, EnvelopeError, OneRosterClient, OneRosterHTTPError, v1p2
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district
from roster_pipeline.simulator.district import SimulatedDistrict

CLIENT_ID, SECRET = "v1p2-client", "v1p2-client-secret"


@pytest.fixture(scope="module")
def template() -> SimulatedDistrict:
    return generate_district("small", seed=5)  # 5 schools: itinerant teachers have roles at two


@pytest.fixture(scope="module")
def servers(template: SimulatedDistrict) -> Iterator[dict[str, SimulatorServer]]:
    """The same district behind a 1.1 and a 1.2 simulator (read only: a test that changes it makes its own)."""
    with (
        SimulatorServer([Tenant("d", CLIENT_ID, SECRET, copy.deepcopy(template))]) as v11,
        SimulatorServer(
            [Tenant("d", CLIENT_ID, SECRET, copy.deepcopy(template))], oneroster_version="1.2"
        ) as v12,
    ):
        yield {"1.1": v11, "1.2": v12}


def client(server: SimulatorServer, **settings: Any) -> OneRosterClient:
    return OneRosterClient(
        ClientConfig(
            district_id="springfield",
            base_url=server.base_url("d"),
            token_url=server.token_url("d"),
            client_id=CLIENT_ID,
            client_secret=SECRET,
            oneroster_version=server.oneroster_version,
            **settings,
        )
    )


def pull(server: SimulatorServer, name: str, **settings: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    records: list[dict[str, Any]] = []
    issues: list[Any] = []
    with client(server, **settings) as api:
        for batch in api.iter_batches(name):
            records.extend(batch)
            issues.extend(batch.issues)  # type: ignore[attr-defined]
    return records, issues


def relative_hrefs(value: Any, base: str) -> Any:
    """References with hrefs relative to the API base (the two versions' bases differ)."""
    if isinstance(value, dict):
        return {
            k: (v[len(base) :] if k == "href" and isinstance(v, str) else relative_hrefs(v, base))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [relative_hrefs(v, base) for v in value]
    return value


def test_the_simulator_serves_1p2_only_under_the_1p2_base(servers: dict[str, SimulatorServer]) -> None:
    v12 = servers["1.2"]
    assert v12.base_url("d").endswith("/campus/api/oneroster/v1p2/d/ims/oneroster/rostering/v1p2")
    with client(v12) as api:
        raw = api._http.get(v12.base_url("d") + "/users", params={"limit": "1"}).json()["users"][0]
        klass = api._http.get(v12.base_url("d") + "/classes", params={"limit": "1"}).json()["classes"][0]
    assert "roles" in raw and "role" not in raw and "orgs" not in raw  # 1.2 on the wire
    assert isinstance(klass["periods"], list)
    wrong_base = servers["1.1"].base_url("d").replace(servers["1.1"].url, v12.url)
    with client(v12) as api:
        assert api._http.get(wrong_base + "/users").status_code == 404


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.name)
def test_a_1p2_pull_hands_out_the_1p1_records_of_the_same_district(
    servers: dict[str, SimulatorServer], resource: Any
) -> None:
    v11_records, _ = pull(servers["1.1"], resource.collection, page_size=300)
    v12_records, issues = pull(servers["1.2"], resource.collection, page_size=300)
    assert issues == []
    through_1p1 = {r["sourcedId"]: relative_hrefs(r, servers["1.1"].base_url("d")) for r in v11_records}
    through_1p2 = {r["sourcedId"]: relative_hrefs(r, servers["1.2"].base_url("d")) for r in v12_records}
    assert len(through_1p2) == len(v12_records) == len(through_1p1) > 0
    for sourced_id, record in through_1p2.items():
        if resource.name == "users":
            assert record.pop("roles")  # what 1.2 said on top of 1.1 stays with the record
        assert record == through_1p1[sourced_id], sourced_id
    if (
        resource.name == "users"
    ):  # users of several orgs (one primary role, the others secondary) came through
        assert any(len(r["roles"]) > 1 and len(r["orgs"]) == len(r["roles"]) for r in v12_records)


def test_an_unmappable_user_is_an_issue_and_the_pull_still_proves_complete(
    template: SimulatedDistrict,
) -> None:
    district = copy.deepcopy(template)
    broken = sorted(district.collections["users"])[3]
    district.collections["users"][broken] = {
        **district.collections["users"][broken],
        "orgs": [],
    }  # no roles at all
    with SimulatorServer([Tenant("d", CLIENT_ID, SECRET, district)], oneroster_version="1.2") as v12:
        unmappable_user_pull(v12, district, broken)


def unmappable_user_pull(v12: SimulatorServer, district: SimulatedDistrict, broken: str) -> None:
    with client(v12, page_size=50) as api:
        records: list[dict[str, Any]] = []
        issues: list[Any] = []
        for batch in api.iter_batches("users"):
            records.extend(batch)
            issues.extend(batch.issues)  # type: ignore[attr-defined]
        stats = api.stats_for("users")
    (issue,) = issues
    assert (issue.sourced_id, issue.check, issue.field) == (broken, v1p2.PRIMARY_ROLE, "roles")
    assert issue.record["sourcedId"] == broken and issue.record["roles"] == []
    assert broken not in {r["sourcedId"] for r in records}
    assert len(records) + 1 == len(district.collections["users"])
    assert stats.complete and stats.records == len(district.collections["users"])  # received: counted

    with client(v12) as api:
        with pytest.raises(EnvelopeError) as raised:
            api.get_one("users", broken)
    assert raised.value.field == "roles" and "district 'springfield'" in str(raised.value)
    assert "/users/" in str(raised.value)


def test_single_reads_school_year_deltas_and_errors_through_1p2(servers: dict[str, SimulatorServer]) -> None:
    v12 = servers["1.2"]
    district = v12.tenant("d").district
    teacher = next(u for u in district.collections["users"].values() if u["role"] == "teacher")
    with client(v12) as api:
        one = api.get_one("users", teacher["sourcedId"])
        assert one["role"] == "teacher" and one["orgs"][0]["sourcedId"] == teacher["orgs"][0]["sourcedId"]
        assert api.current_school_year() == district.school_year
        newest = max(u["dateLastModified"] for u in district.collections["users"].values())
        since = datetime.fromisoformat(newest.replace("Z", "+00:00")).astimezone(UTC)
        earlier = [
            r for b in api.iter_batches("users", since=since.replace(hour=0, minute=0, second=0)) for r in b
        ]
        assert earlier and all(r["dateLastModified"][:10] >= newest[:10] for r in earlier)
        assert all("role" in r and "orgs" in r for r in earlier)
        with pytest.raises(OneRosterHTTPError) as missing:
            api.get_one("users", "no-such-user")
    assert missing.value.status == 404 and missing.value.code_minor == "unknownobject"
    assert missing.value.code_major == "failure"
