"""The simulator over real loopback HTTP: auth, envelopes, paging, query engine, nested reads."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from roster_pipeline.simulator import SimulatorServer, Tenant
from roster_pipeline_tests.simulator_data import hand_made_district

CID, SECRET = "client-id", "s3cret-value"


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    tenants = [
        Tenant("demo", CID, SECRET, hand_made_district()),
        Tenant("other", "other-id", "other-secret", hand_made_district()),
    ]
    with SimulatorServer(tenants, max_page_size=10) as srv:
        yield srv


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def get_token(
    http: httpx.Client, server: SimulatorServer, app: str = "demo", cid: str = CID, secret: str = SECRET
) -> str:
    r = http.post(server.token_url(app), data={"grant_type": "client_credentials"}, auth=(cid, secret))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.fixture(scope="module")
def api(server: SimulatorServer, http: httpx.Client) -> Iterator[httpx.Client]:
    token = get_token(http, server)
    with httpx.Client(
        base_url=server.base_url("demo"), headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as c:
        yield c


def code_minor(response: httpx.Response) -> str:
    return response.json()["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"]


def ids(response: httpx.Response, envelope: str) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["sourcedId"] for r in response.json()[envelope]]


# ------------------------------------------------------------------------------------------ auth


def test_token_by_basic_auth_and_by_form_body(server: SimulatorServer, http: httpx.Client) -> None:
    basic = http.post(server.token_url("demo"), data={"grant_type": "client_credentials"}, auth=(CID, SECRET))
    form = http.post(
        server.token_url("demo"),
        data={"grant_type": "client_credentials", "client_id": CID, "client_secret": SECRET},
    )
    for r in (basic, form):
        assert r.status_code == 200
        body = r.json()
        assert (
            body["token_type"] == "Bearer" and body["expires_in"] == 3600 and len(body["access_token"]) > 20
        )
        assert r.headers["cache-control"] == "no-store"


def test_token_failures(server: SimulatorServer, http: httpx.Client) -> None:
    url = server.token_url("demo")
    wrong = http.post(url, data={"grant_type": "client_credentials"}, auth=(CID, "wrong"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    wrong_form = http.post(
        url, data={"grant_type": "client_credentials", "client_id": CID, "client_secret": "x"}
    )
    assert wrong_form.status_code == 401 and wrong_form.json()["error"] == "invalid_client"
    nothing = http.post(url, data={"grant_type": "client_credentials"})
    assert nothing.status_code == 401 and nothing.json()["error"] == "invalid_client"
    no_app = http.post(
        f"{server.url}/campus/oauth2/token", data={"grant_type": "client_credentials"}, auth=(CID, SECRET)
    )
    assert (
        no_app.status_code == 400 and "No Campus Application selected" in no_app.json()["error_description"]
    )
    unknown_app = http.post(
        server.token_url("demo").replace("demo", "nope"),
        data={"grant_type": "client_credentials"},
        auth=(CID, SECRET),
    )
    assert unknown_app.status_code == 400
    other_apps_creds = http.post(
        url, data={"grant_type": "client_credentials"}, auth=("other-id", "other-secret")
    )
    assert other_apps_creds.status_code == 401
    grant = http.post(url, data={"grant_type": "password"}, auth=(CID, SECRET))
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    garbled = http.post(
        url, data={"grant_type": "client_credentials"}, headers={"Authorization": "Basic !!!"}
    )
    assert garbled.status_code == 401
    assert http.get(url).status_code == 405


def test_basic_credentials_are_url_decoded(server: SimulatorServer, http: httpx.Client) -> None:
    # RFC 6749 2.3.1: client id and secret are form-encoded before base64; "%2D" is "-".
    header = "Basic " + base64.b64encode(b"client%2Did:s3cret%2Dvalue").decode()
    r = http.post(
        server.token_url("demo"), data={"grant_type": "client_credentials"}, headers={"Authorization": header}
    )
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("authorization", "why"),
    [
        (None, "no bearer token"),
        ("Bearer not-a-token", "unknown"),
        ("Basic Y2xpZW50LWlkOnMzY3JldC12YWx1ZQ==", "no bearer token"),
    ],
)
def test_api_rejects_missing_or_unknown_token(
    server: SimulatorServer, http: httpx.Client, authorization: str | None, why: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    r = http.get(server.base_url("demo") + "/users", headers=headers)
    assert r.status_code == 401
    body = r.json()
    assert body["imsx_codeMajor"] == "failure" and body["imsx_severity"] == "error"
    assert code_minor(r) == "unauthorisedrequest" and why in body["imsx_description"]
    assert "Bearer" in r.headers["www-authenticate"]


def test_token_is_only_valid_for_its_own_app(server: SimulatorServer, http: httpx.Client) -> None:
    other = get_token(http, server, "other", "other-id", "other-secret")
    r = http.get(server.base_url("demo") + "/orgs", headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 401 and "another application" in r.json()["imsx_description"]
    ok = http.get(server.base_url("other") + "/orgs", headers={"Authorization": f"Bearer {other}"})
    assert ok.status_code == 200


def test_tokens_expire_after_their_ttl(http: httpx.Client) -> None:
    now = [1000.0]
    with SimulatorServer([Tenant("demo", CID, SECRET, hand_made_district())], token_ttl_seconds=60) as srv:
        srv.token_store._clock = lambda: now[0]  # injectable clock: no sleeping in tests
        token = get_token(http, srv)
        assert (
            http.post(
                srv.token_url("demo"), data={"grant_type": "client_credentials"}, auth=(CID, SECRET)
            ).json()["expires_in"]
            == 60
        )
        headers = {"Authorization": f"Bearer {token}"}
        assert http.get(srv.base_url("demo") + "/orgs", headers=headers).status_code == 200
        now[0] += 59.9
        assert http.get(srv.base_url("demo") + "/orgs", headers=headers).status_code == 200
        now[0] += 0.2
        r = http.get(srv.base_url("demo") + "/orgs", headers=headers)
        assert r.status_code == 401 and "expired" in r.json()["imsx_description"]
        assert srv.requests[-1].auth_ok is False


def test_expire_and_revoke_tokens(server: SimulatorServer, http: httpx.Client) -> None:
    token = get_token(http, server)
    headers = {"Authorization": f"Bearer {token}"}
    server.expire_tokens()
    r = http.get(server.base_url("demo") + "/orgs", headers=headers)
    assert r.status_code == 401 and "expired" in r.json()["imsx_description"]
    fresh = get_token(http, server)
    assert (
        http.get(server.base_url("demo") + "/orgs", headers={"Authorization": f"Bearer {fresh}"}).status_code
        == 200
    )
    server.revoke_tokens()
    r = http.get(server.base_url("demo") + "/orgs", headers={"Authorization": f"Bearer {fresh}"})
    assert r.status_code == 401 and "unknown or revoked" in r.json()["imsx_description"]


# ------------------------------------------------------------------------------------------ envelopes


@pytest.mark.parametrize(
    ("path", "envelope", "expected"),
    [
        ("/orgs", "orgs", {"district-1", "school-1", "school-2", "school-3"}),
        ("/schools", "orgs", {"school-1", "school-2", "school-3"}),
        (
            "/academicSessions",
            "academicSessions",
            {"year-2027", "term-1", "term-2", "gp-1-1", "gp-1-2", "gp-2-1", "gp-2-2"},
        ),
        ("/terms", "academicSessions", {"term-1", "term-2"}),
        ("/gradingPeriods", "academicSessions", {"gp-1-1", "gp-1-2", "gp-2-1", "gp-2-2"}),
        ("/courses", "courses", {"course-math", "course-art"}),
        ("/classes", "classes", {"class-a", "class-b", "class-c", "class-d"}),
        ("/teachers", "users", {"teacher-1", "teacher-2", "teacher-3"}),
        ("/demographics", "demographics", {f"stud{n}" for n in range(1, 10)}),
        ("/lineItems", "lineItems", set()),
        ("/categories", "categories", set()),
        ("/results", "results", set()),
        ("/resources", "resources", set()),
    ],
)
def test_collection_envelopes(api: httpx.Client, path: str, envelope: str, expected: set[str]) -> None:
    r = api.get(path, params={"limit": 100})
    assert r.headers["content-type"].startswith("application/json")
    assert set(ids(r, envelope)) == expected or int(r.headers["x-total-count"]) == len(expected)
    assert int(r.headers["x-total-count"]) == len(expected)
    assert list(r.json()) == [envelope]


def test_users_students_enrollments_totals(api: httpx.Client) -> None:
    assert api.get("/users").headers["x-total-count"] == "13"
    assert api.get("/students").headers["x-total-count"] == "9"
    assert api.get("/enrollments").headers["x-total-count"] == "22"


@pytest.mark.parametrize(
    ("path", "singular", "sourced_id"),
    [
        ("/orgs/district-1", "org", "district-1"),
        ("/schools/school-2", "org", "school-2"),
        ("/academicSessions/year-2027", "academicSession", "year-2027"),
        ("/terms/term-1", "academicSession", "term-1"),
        ("/gradingPeriods/gp-2-1", "academicSession", "gp-2-1"),
        ("/courses/course-art", "course", "course-art"),
        ("/classes/class-c", "class", "class-c"),
        ("/users/guardian-1", "user", "guardian-1"),
        ("/students/stud3", "user", "stud3"),
        ("/teachers/teacher-2", "user", "teacher-2"),
        ("/enrollments/e-t1-a", "enrollment", "e-t1-a"),
        ("/demographics/stud4", "demographics", "stud4"),
    ],
)
def test_single_reads(
    api: httpx.Client, server: SimulatorServer, path: str, singular: str, sourced_id: str
) -> None:
    r = api.get(path)
    assert r.status_code == 200, r.text
    assert list(r.json()) == [singular]
    assert r.json()[singular]["sourcedId"] == sourced_id


def test_hrefs_are_absolute(api: httpx.Client, server: SimulatorServer) -> None:
    cls = api.get("/classes/class-a").json()["class"]
    assert cls["school"]["href"] == server.base_url("demo") + "/orgs/school-1"
    assert cls["terms"][0]["href"] == server.base_url("demo") + "/academicSessions/term-1"
    # The stored record keeps its relative href: absolutising happens on the rendered page only.
    assert (
        server.tenant("demo").district.collections["classes"]["class-a"]["school"]["href"] == "/orgs/school-1"
    )


@pytest.mark.parametrize(
    "path",
    [
        "/users/nope",
        "/students/teacher-1",  # a teacher is not a student
        "/schools/district-1",  # the district org is not a school
        "/terms/gp-1-1",
        "/lineItems/anything",
        "/results/anything",
    ],
)
def test_unknown_id_is_404_unknownobject(api: httpx.Client, path: str) -> None:
    r = api.get(path)
    assert r.status_code == 404 and code_minor(r) == "unknownobject"


@pytest.mark.parametrize("path", ["/nope", "/users/stud1/nope", "/a/b/c/d/e/f"])
def test_unknown_path_is_404(api: httpx.Client, path: str) -> None:
    assert api.get(path).status_code == 404


def test_unknown_app_and_non_api_paths_are_404(server: SimulatorServer, http: httpx.Client) -> None:
    assert (
        http.get(server.url + "/campus/api/oneroster/v1p1/nope/ims/oneroster/v1p1/users").status_code == 404
    )
    assert http.get(server.url + "/").status_code == 404


def test_write_methods_are_refused(api: httpx.Client) -> None:
    r = api.put("/lineItems/x", json={})
    assert r.status_code == 405 and r.json()["imsx_codeMajor"] == "unsupported"


# ------------------------------------------------------------------------------------------ nested


@pytest.mark.parametrize(
    ("path", "envelope", "expected"),
    [
        ("/schools/school-1/classes", "classes", ["class-a", "class-b"]),
        ("/schools/school-1/students", "users", ["stud1", "stud2", "stud3", "stud4", "stud5"]),
        ("/schools/school-1/teachers", "users", ["teacher-1", "teacher-3"]),
        (
            "/schools/school-2/enrollments",
            "enrollments",
            ["e-t2-c"] + [f"e-s{n}-{c}" for n in range(6, 10) for c in "cd"],
        ),
        ("/schools/school-2/courses", "courses", ["course-art"]),
        ("/schools/school-1/terms", "academicSessions", ["term-1", "term-2"]),
        ("/classes/class-a/students", "users", ["stud1", "stud2", "stud3", "stud4", "stud5"]),
        ("/classes/class-a/teachers", "users", ["teacher-1", "teacher-3"]),
        ("/classes/class-d/teachers", "users", []),
        ("/students/stud6/classes", "classes", ["class-c", "class-d"]),
        ("/teachers/teacher-1/classes", "classes", ["class-a", "class-b"]),
        ("/users/teacher-2/classes", "classes", ["class-c"]),
        ("/students/teacher-1/classes", "classes", []),
        ("/courses/course-math/classes", "classes", ["class-a", "class-b"]),
        ("/terms/term-2/classes", "classes", ["class-b", "class-d"]),
        ("/terms/term-1/gradingPeriods", "academicSessions", ["gp-1-1", "gp-1-2"]),
        (
            "/schools/school-1/classes/class-a/enrollments",
            "enrollments",
            ["e-t1-a", "e-t3-a"] + [f"e-s{n}-a" for n in range(1, 6)],
        ),
        (
            "/schools/school-1/classes/class-a/students",
            "users",
            ["stud1", "stud2", "stud3", "stud4", "stud5"],
        ),
        ("/schools/school-1/classes/class-a/teachers", "users", ["teacher-1", "teacher-3"]),
        ("/schools/school-2/classes/class-a/teachers", "users", []),
        ("/schools/1000000/classes", "classes", []),  # unknown parent: 200 and empty, as SDS expects
        ("/classes/class-a/lineItems", "lineItems", []),
        ("/classes/class-a/results", "results", []),
        ("/classes/class-a/lineItems/li-1/results", "results", []),
        ("/classes/class-a/students/stud1/results", "results", []),
    ],
)
def test_nested_reads(api: httpx.Client, path: str, envelope: str, expected: list[str]) -> None:
    r = api.get(path, params={"limit": 100})
    assert ids(r, envelope) == expected or sorted(ids(r, envelope)) == sorted(expected)
    assert int(r.headers["x-total-count"]) == len(expected)


def test_repeated_slashes_are_tolerated(server: SimulatorServer, api: httpx.Client) -> None:
    # The SDS collection requests ".../v1p1//classes/{id}/lineItems/{id}/results".
    r = api.get(server.base_url("demo") + "//classes/class-a/lineItems/x/results")
    assert r.status_code == 200 and r.json() == {"results": []}


# ------------------------------------------------------------------------------------------ paging


def test_default_limit_and_server_cap(server: SimulatorServer, api: httpx.Client) -> None:
    r = api.get("/users")  # default limit 100, but this server caps pages at 10
    assert len(r.json()["users"]) == 10 and r.headers["x-total-count"] == "13"
    assert len(api.get("/users", params={"limit": 1000}).json()["users"]) == 10
    assert len(api.get("/users", params={"limit": 3}).json()["users"]) == 3


def test_default_limit_is_100() -> None:
    from roster_pipeline.simulator.query import parse_query

    assert parse_query({}, "users", max_page_size=None).limit == 100


def test_pages_cover_everything_once_and_link_headers(api: httpx.Client) -> None:
    seen: list[str] = []
    url: str | None = "/users?limit=4&sort=sourcedId"
    pages = 0
    while url:
        r = api.get(url)
        seen += ids(r, "users")
        links = httpx.Response(200, headers={"link": r.headers["link"]}).links
        assert "first" in links and "last" in links
        assert links["last"]["url"].endswith("offset=12")
        url = links.get("next", {}).get("url")
        pages += 1
    assert pages == 4
    assert len(seen) == 13 and len(set(seen)) == 13 and seen == sorted(seen)


def test_offset_past_the_end_is_200_and_empty(api: httpx.Client) -> None:
    r = api.get("/users", params={"offset": 500})
    assert r.status_code == 200 and r.json() == {"users": []} and r.headers["x-total-count"] == "13"
    assert 'rel="next"' not in r.headers["link"]


def test_last_page_has_no_next(api: httpx.Client) -> None:
    r = api.get("/users", params={"offset": 12, "limit": 4})
    assert (
        len(r.json()["users"]) == 1
        and 'rel="next"' not in r.headers["link"]
        and 'rel="prev"' in r.headers["link"]
    )


@pytest.mark.parametrize(
    "params", [{"limit": "abc"}, {"limit": "0"}, {"limit": "-1"}, {"offset": "-1"}, {"offset": "x"}]
)
def test_bad_paging_is_400(api: httpx.Client, params: dict[str, str]) -> None:
    r = api.get("/users", params=params)
    assert r.status_code == 400 and code_minor(r) == "invaliddata"


def test_parameter_names_with_spaces_are_accepted(server: SimulatorServer, api: httpx.Client) -> None:
    # SDS sends "limit =100"; a real SIS shrugs it off, and so do we.
    r = api.get(server.base_url("demo") + "/students?offset=0&limit%20=2")
    assert len(r.json()["users"]) == 2


# ------------------------------------------------------------------------------------------ filters


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ("role='teacher'", {"teacher-1", "teacher-2", "teacher-3"}),
        ("role!='student'", {"teacher-1", "teacher-2", "teacher-3", "guardian-1"}),
        ("familyName>'Hill'", {"stud9", "teacher-1", "teacher-2", "teacher-3"}),  # Hopper > Hill
        ("familyName>='Hill'", {"stud8", "stud9", "teacher-1", "teacher-2", "teacher-3"}),
        ("familyName<'Carter'", {"stud1", "stud2", "guardian-1"}),
        ("familyName<='Carter'", {"stud1", "stud2", "stud3", "guardian-1"}),
        (
            "email~'HM.EXAMPLE'",
            {"teacher-1", "teacher-2", "stud1", "stud2", "stud4", "stud5", "stud7", "stud8"},
        ),
        ("givenName='Smith' AND familyName='Azure'", {"stud1"}),
        ("username='stud1' OR email~'grace'", {"stud1", "teacher-2"}),
        ("role='teacher' and familyName='Hopper'", {"teacher-2"}),  # lower-case joiner: lenient
        ('familyName="Azure"', {"stud1", "guardian-1"}),  # double quotes: lenient
        ("status = 'tobedeleted'", {"stud9"}),  # spaces around the operator
        (
            "orgs.sourcedId='school-2'",
            {"teacher-2", "stud6", "stud7", "stud8", "stud9"},
        ),  # dotted, list fan-out
        ("username='norecords'", set()),
        ("dateLastModified>'2026-11-25T00:00:00Z'", {"teacher-2", "stud2", "stud7"}),
        ("dateLastModified>'2026-11-26T08:30:00+00:00'", set()),
        (
            "dateLastModified>='2026-11-26T09:30:00+01:00'",
            {"teacher-2", "stud2", "stud7"},
        ),  # offsets honoured
        (
            "dateLastModified<'2026-11-25'",
            {"teacher-1", "teacher-3", "guardian-1"} | {f"stud{n}" for n in (1, 3, 4, 5, 6, 8, 9)},
        ),
    ],
)
def test_filters(api: httpx.Client, filter_: str, expected: set[str]) -> None:
    r = api.get("/users", params={"filter": filter_, "limit": 100})
    assert set(ids(r, "users")) == expected
    assert r.headers["x-total-count"] == str(len(expected))


def test_quote_inside_value() -> None:
    from roster_pipeline.simulator.query import parse_filter

    f = parse_filter("familyName='O''Brien' OR familyName='x'", "users")
    assert f.predicates[0].value == "O'Brien" and f.joiner == "OR"


def test_filters_on_nested_endpoints_and_enrollments(api: httpx.Client) -> None:
    r = api.get("/schools/school-1/enrollments", params={"filter": "role='teacher'"})
    assert set(ids(r, "enrollments")) == {"e-t1-a", "e-t3-a", "e-t1-b"}
    r = api.get("/enrollments", params={"filter": "role='teacher' AND primary='false'"})
    assert ids(r, "enrollments") == ["e-t3-a"]
    r = api.get("/classes", params={"filter": "school.sourcedId='school-2'"})
    assert ids(r, "classes") == ["class-c", "class-d"]


@pytest.mark.parametrize(
    ("params", "minor"),
    [
        ({"filter": "bogus='x'"}, "invalid_filter_field"),
        ({"filter": "role='x' AND"}, "invalid_filter_field"),
        ({"filter": "role"}, "invalid_filter_field"),
        ({"filter": "role=='x'"}, "invalid_filter_field"),
        ({"filter": "role='a' AND role='b' AND role='c'"}, "invalid_filter_field"),
        ({"filter": "dateLastModified>'yesterday'"}, "invalid_filter_field"),
        ({"sort": "bogus"}, "invalid_sort_field"),
        ({"sort": "familyName", "orderBy": "sideways"}, "invalid_sort_field"),
        ({"fields": "sourcedId,bogus"}, "invalid_selection_field"),
        ({"fields": ""}, "invalid_blank_selection_field"),
    ],
)
def test_bad_query_is_400_with_code_minor(api: httpx.Client, params: dict[str, str], minor: str) -> None:
    r = api.get("/users", params=params)
    assert r.status_code == 400
    assert code_minor(r) == minor and r.json()["imsx_codeMajor"] == "failure"


def test_sort_asc_and_desc(api: httpx.Client) -> None:
    asc = [u["familyName"] for u in api.get("/students", params={"sort": "familyName"}).json()["users"]]
    assert asc == sorted(asc) and len(asc) == 9
    desc = api.get("/students", params={"sort": "familyName", "orderBy": "desc", "limit": 100}).json()[
        "users"
    ]
    names = [u["familyName"] for u in desc]
    assert names == sorted(names, reverse=True) and names[0] == "Ito"
    by_date = api.get("/users", params={"sort": "dateLastModified", "orderBy": "desc", "limit": 3}).json()[
        "users"
    ]
    assert {u["sourcedId"] for u in by_date} == {"teacher-2", "stud2", "stud7"}


def test_fields_projection(api: httpx.Client) -> None:
    users = api.get("/users", params={"fields": "sourcedId,email", "limit": 3}).json()["users"]
    assert users[0] == {"sourcedId": "teacher-1", "email": "ada@hm.example.org"}
    assert users[2] == {"sourcedId": "teacher-3"}  # no email: field simply absent
    single = api.get("/classes/class-a", params={"fields": "title,school"}).json()["class"]
    assert set(single) == {"title", "school"} and single["school"]["href"].startswith("http://")


def test_indexes_are_cached_per_version(server: SimulatorServer, api: httpx.Client) -> None:
    params = {"filter": "role='student'", "sort": "familyName", "limit": 2}
    api.get("/users", params=params)
    builds = server.cache.builds
    for offset in (2, 4, 6):
        api.get("/users", params={**params, "offset": offset})
    assert server.cache.builds == builds  # later pages reuse the sorted index
    district = server.tenant("demo").district
    with district.lock:
        district.collections["users"]["stud5"]["familyName"] = "Aaron"
        district.bump()
    try:
        first = api.get("/users", params=params).json()["users"]
        assert server.cache.builds == builds + 1
        assert first[0]["sourcedId"] == "stud5"
    finally:
        with district.lock:
            district.collections["users"]["stud5"]["familyName"] = "Evans"
            district.bump()
