"""SIS profiles: each SIS's URLs built from what an admin copies, explicit URLs winning, errors that say what
to copy from where, per-SIS defaults and bounds, and the table in docs/configuration.md rendered from the same profiles."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roster_pipeline.oneroster import OneRosterClient
from roster_pipeline.oneroster.secure_url import url_problem
from roster_pipeline.registry import districts as districts_module
from roster_pipeline.registry.districts import District, RegistryError, parse_registry
from roster_pipeline.registry.sis_profiles import (
    GENERIC,
    INFINITE_CAMPUS,
    PROFILES,
    quirks_markdown,
    setup_table_markdown,
)
from roster_pipeline.simulator import running_simulator
from roster_pipeline.sources.factory import client_config_for
from roster_pipeline_tests.paths import PROJECT_ROOT

CONFIGURATION_DOC = PROJECT_ROOT / "docs" / "configuration.md"
IMPORT_METHODS = ["oneroster_rest", "oneroster_rest_oauth1", "oneroster_v1p2_rest", "csv_bundle"]


def entry(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "springfield",
        "name": "Springfield",
        "client_id_env": "SPRINGFIELD_ID",
        "client_secret_env": "SPRINGFIELD_SECRET",
    }
    base.update(fields)
    if base.get("import_method") == "csv_bundle":
        base.setdefault(
            "csv_bundle", {"path": "/srv/sftp/springfield/oneroster.zip"}
        )  # the method's own setting
    return {k: v for k, v in base.items() if v is not None}


def load(**fields: Any) -> District:
    return parse_registry({"districts": [entry(**fields)]}).get("springfield")


def error_for(**fields: Any) -> str:
    with pytest.raises(RegistryError) as info:
        parse_registry({"districts": [entry(**fields)]})
    return str(info.value)


# --- each profile builds its URLs from the fields an admin copies ---------------------------------------


@pytest.mark.parametrize(
    ("fields", "token_url", "base_url"),
    [
        pytest.param(
            {
                "sis": "infinite_campus",
                "api_host": "springfieldil.infinitecampus.org",
                "app_name": "springfield",
            },
            "https://springfieldil.infinitecampus.org/campus/oauth2/token?appName=springfield",
            "https://springfieldil.infinitecampus.org/campus/api/oneroster/v1p1/springfield/ims/oneroster/v1p1",
            id="infinite_campus 1.1",
        ),
        pytest.param(
            {
                "sis": "infinite_campus",
                "api_host": "springfieldil.infinitecampus.org",
                "app_name": "springfield",
                "import_method": "oneroster_v1p2_rest",
            },
            "https://springfieldil.infinitecampus.org/campus/oauth2/token?appName=springfield",
            "https://springfieldil.infinitecampus.org/campus/api/oneroster/v1p2/springfield/ims/oneroster/rostering/v1p2",
            id="infinite_campus 1.2",
        ),
        pytest.param(
            {"sis": "infinite_campus", "api_host": "http://127.0.0.1:8765", "app_name": "demo"},
            "http://127.0.0.1:8765/campus/oauth2/token?appName=demo",
            "http://127.0.0.1:8765/campus/api/oneroster/v1p1/demo/ims/oneroster/v1p1",
            id="infinite_campus simulator origin",
        ),
        pytest.param(
            {
                "sis": "classlink",
                "api_host": "ogdenville-ca-v2.rosterserver.com",
                "import_method": "oneroster_rest_oauth1",
            },
            None,
            "https://ogdenville-ca-v2.rosterserver.com/ims/oneroster/v1p1",
            id="classlink oauth1",
        ),
        pytest.param(
            {"sis": "powerschool", "base_url": "https://ps.springfield.k12.il.us/ims/oneroster/v1p1"},
            "https://ps.springfield.k12.il.us/oauth/access_token",
            "https://ps.springfield.k12.il.us/ims/oneroster/v1p1",
            id="powerschool token from the base URL's server",
        ),
        pytest.param(
            {
                "sis": "powerschool",
                "api_host": "ps.springfield.k12.il.us",
                "base_url": "https://oneroster.springfield.k12.il.us/ims/oneroster/v1p1",
            },
            "https://ps.springfield.k12.il.us/oauth/access_token",
            "https://oneroster.springfield.k12.il.us/ims/oneroster/v1p1",
            id="powerschool token from api_host",
        ),
        pytest.param(
            {"sis": "aeries", "api_host": "https://springfield.aeries.net/aeries/"},
            "https://springfield.aeries.net/aeries/token",
            "https://springfield.aeries.net/aeries/ims/oneroster/v1p1",
            id="aeries URL with its path",
        ),
        pytest.param(
            {"sis": "aeries", "api_host": "aeries.springfield.org"},
            "https://aeries.springfield.org/token",
            "https://aeries.springfield.org/ims/oneroster/v1p1",
            id="aeries bare host",
        ),
        pytest.param(
            {
                "sis": "skyward",
                "token_url": "https://skyward.springfield.org/oauth/token",
                "base_url": "https://skyward.springfield.org/api/ims/oneroster/v1p1",
            },
            "https://skyward.springfield.org/oauth/token",
            "https://skyward.springfield.org/api/ims/oneroster/v1p1",
            id="skyward explicit",
        ),
        pytest.param(
            {
                "sis": "generic",
                "token_url": "https://auth.vendor.example/token",
                "base_url": "https://api.vendor.example/ims/oneroster/rostering/v1p2",
                "import_method": "oneroster_v1p2_rest",
            },
            "https://auth.vendor.example/token",
            "https://api.vendor.example/ims/oneroster/rostering/v1p2",
            id="generic explicit 1.2",
        ),
    ],
)
def test_each_profile_builds_its_urls_from_what_the_admin_copies(
    fields: dict[str, Any], token_url: str | None, base_url: str
) -> None:
    district = load(**fields)
    assert district.base_url_resolved == base_url
    if token_url is None:
        with pytest.raises(ValueError, match="district 'springfield': no token URL"):
            _ = district.token_url_resolved
    else:
        assert district.token_url_resolved == token_url


@pytest.mark.parametrize(
    ("fields", "token_url", "base_url"),
    [
        pytest.param(
            {
                "sis": "infinite_campus",
                "api_host": "springfieldil.infinitecampus.org",
                "app_name": "springfield",
                "import_method": "oneroster_v1p2_rest",
                "base_url": "https://springfieldil.infinitecampus.org/campus/api/ims/oneroster/rostering/v1p2",
            },
            "https://springfieldil.infinitecampus.org/campus/oauth2/token?appName=springfield",
            "https://springfieldil.infinitecampus.org/campus/api/ims/oneroster/rostering/v1p2",
            id="infinite_campus base URL copied from Campus",
        ),
        pytest.param(
            {
                "sis": "infinite_campus",
                "token_url": "https://ic.example.org/campus/oauth2/token?appName=x",
                "base_url": "https://ic.example.org/campus/api/oneroster/v1p1/x/ims/oneroster/v1p1",
            },
            "https://ic.example.org/campus/oauth2/token?appName=x",
            "https://ic.example.org/campus/api/oneroster/v1p1/x/ims/oneroster/v1p1",
            id="infinite_campus both explicit, no host",
        ),
        pytest.param(
            {
                "sis": "powerschool",
                "api_host": "ps.springfield.k12.il.us",
                "token_url": "https://accounts.powerschool.com/as/token.oauth2",
                "token_auth": "form",
                "base_url": "https://ps.springfield.k12.il.us/ims/oneroster/v1p1",
            },
            "https://accounts.powerschool.com/as/token.oauth2",
            "https://ps.springfield.k12.il.us/ims/oneroster/v1p1",
            id="powerschool cloud token endpoint",
        ),
        pytest.param(
            {
                "sis": "aeries",
                "api_host": "https://springfield.aeries.net/aeries",
                "token_url": "https://springfield.aeries.net/aeries/v2/oauth/token",
            },
            "https://springfield.aeries.net/aeries/v2/oauth/token",
            "https://springfield.aeries.net/aeries/ims/oneroster/v1p1",
            id="aeries older token endpoint",
        ),
        pytest.param(
            {
                "sis": "classlink",
                "api_host": "ogdenville-ca-v2.rosterserver.com",
                "token_url": "https://ogdenville-ca-v2.rosterserver.com/token",
                "base_url": "https://proxy.example.org/ims/oneroster/v1p1",
            },
            "https://ogdenville-ca-v2.rosterserver.com/token",
            "https://proxy.example.org/ims/oneroster/v1p1",
            id="classlink explicit",
        ),
    ],
)
def test_explicit_urls_override_the_derived_ones(
    fields: dict[str, Any], token_url: str, base_url: str
) -> None:
    district = load(**fields)
    assert (district.token_url_resolved, district.base_url_resolved) == (token_url, base_url)


def test_infinite_campus_urls_derived_from_host_and_app_reach_a_campus_layout_sis() -> None:
    # The simulator serves Infinite Campus's layout: the profile's derived URLs must be exactly its URLs.
    with running_simulator(
        size="tiny", app_name="springfield", client_id="cid", client_secret="sim-secret"
    ) as sim:
        district = load(api_host=sim.url, app_name="springfield")
        assert district.token_url_resolved == sim.token_url("springfield")
        assert district.base_url_resolved == sim.base_url("springfield")
        config = client_config_for(district, {"SPRINGFIELD_ID": "cid", "SPRINGFIELD_SECRET": "sim-secret"})
        assert (config.token_auth, config.page_size, config.max_concurrency) == ("basic", 5000, 5)
        with OneRosterClient(config) as client:
            orgs = [record for batch in client.iter_batches("orgs") for record in batch]
    assert len(orgs) == len(sim.tenant("springfield").district.collections["orgs"]) > 0


def test_base_url_follows_the_import_method_version() -> None:
    common = {"api_host": "ic.example.org", "app_name": "app"}
    assert load(**common).base_url_resolved.endswith("/ims/oneroster/v1p1")
    assert load(**common, import_method="oneroster_rest_oauth1").base_url_resolved.endswith(
        "/ims/oneroster/v1p1"
    )
    assert load(**common, import_method="oneroster_v1p2_rest").base_url_resolved.endswith(
        "/app/ims/oneroster/rostering/v1p2"
    )


@pytest.mark.parametrize("sis", list(PROFILES))
def test_a_csv_bundle_needs_no_urls_for_any_sis(sis: str) -> None:
    district = load(sis=sis, import_method="csv_bundle")
    assert district.oneroster_version is None
    with pytest.raises(ValueError, match="district 'springfield': no OneRoster base URL"):
        _ = district.base_url_resolved


def test_a_csv_bundle_still_refuses_an_insecure_url_it_was_given() -> None:
    message = error_for(
        sis="generic", import_method="csv_bundle", base_url="http://sis.example.org/ims/oneroster/v1p1"
    )
    assert "district 'springfield': field 'base_url':" in message and "https" in message


def test_oauth1_needs_only_the_base_url() -> None:
    district = load(
        sis="generic",
        import_method="oneroster_rest_oauth1",
        base_url="https://sis.example.org/ims/oneroster/v1p1",
    )
    assert district.base_url_resolved == "https://sis.example.org/ims/oneroster/v1p1"
    message = error_for(sis="generic", import_method="oneroster_rest_oauth1")
    assert "field 'base_url'" in message and "field 'token_url'" not in message


# --- errors name the district, the field, and what to copy from where -----------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "fragments"),
    [
        pytest.param(
            {"api_host": "ic.example.org"},
            "app_name",
            ["missing", "appName value at the end of that Token URL", "or set token_url and base_url"],
            id="ic without app_name",
        ),
        pytest.param(
            {"app_name": "app"},
            "api_host",
            ["missing", "host of the Token URL under Information to Share"],
            id="ic without api_host",
        ),
        pytest.param(
            {"api_host": "ic.example.org/campus", "app_name": "app"},
            "api_host",
            ["host only", "Token URL"],
            id="ic api_host with a path",
        ),
        pytest.param(
            {"api_host": "https://ic.example.org/campus/oauth2/token?appName=app", "app_name": "app"},
            "api_host",
            ["host only"],
            id="ic token URL pasted as api_host",
        ),
        pytest.param(
            {"api_host": "ic.example.org", "app_name": "app?appName=app"},
            "app_name",
            ["app name alone", "appName value"],
            id="ic app_name with the query",
        ),
        pytest.param(
            {
                "api_host": "ic.example.org",
                "app_name": "app",
                "base_url": "https://ic.example.org/campus/oneroster/app/ims/oneroster/v1p1",
            },
            "base_url",
            ["legacy", "Campus.2651", "Information to Share"],
            id="ic legacy base URL",
        ),
        pytest.param(
            {
                "api_host": "ic.example.org",
                "app_name": "app",
                "import_method": "oneroster_v1p2_rest",
                "base_url": "https://ic.example.org/campus/api/oneroster/v1p1/app/ims/oneroster/v1p1",
            },
            "base_url",
            ["OneRoster 1.1 URL", "rostering/v1p2"],
            id="1.1 base URL for a 1.2 import",
        ),
        pytest.param(
            {
                "sis": "generic",
                "token_url": "https://v.example.org/token",
                "base_url": "https://v.example.org/ims/oneroster/rostering/v1p2",
            },
            "base_url",
            ["OneRoster 1.2 URL", "oneroster_v1p2_rest"],
            id="1.2 base URL for a 1.1 import",
        ),
        pytest.param(
            {"sis": "classlink", "api_host": "ogdenville-ca-v2.rosterserver.com"},
            "token_url",
            ["OAuth 1.0a", "import_method: oneroster_rest_oauth1"],
            id="classlink oauth2 without token",
        ),
        pytest.param(
            {"sis": "powerschool", "api_host": "ps.example.org"},
            "base_url",
            ["plugin", "not derived"],
            id="powerschool without base URL",
        ),
        pytest.param(
            {"sis": "powerschool"},
            "api_host",
            ["PowerSchool server", "base_url's server"],
            id="powerschool without any server",
        ),
        pytest.param(
            {"sis": "skyward", "api_host": "skyward.example.org"},
            "base_url",
            ["API Configuration", "api_host is not used"],
            id="skyward base URL",
        ),
        pytest.param(
            {"sis": "skyward", "api_host": "skyward.example.org"},
            "token_url",
            ["token URL Skyward gives"],
            id="skyward token URL",
        ),
        pytest.param(
            {"sis": "aeries"}, "api_host", ["Aeries URL", "sign-in page"], id="aeries without its URL"
        ),
        pytest.param(
            {"sis": "aeries", "api_host": "aeries.example.org", "import_method": "oneroster_v1p2_rest"},
            "base_url",
            ["only the OneRoster 1.1", "1.2 base URL"],
            id="aeries 1.2",
        ),
        pytest.param(
            {"sis": "generic"}, "token_url", ["the OAuth2 token URL the vendor gives"], id="generic token"
        ),
    ],
)
def test_wrong_or_missing_fields_say_what_to_copy_from_where(
    fields: dict[str, Any], field: str, fragments: list[str]
) -> None:
    message = error_for(**fields)
    assert f"district 'springfield': field {field!r}:" in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_both_urls_derived_from_one_missing_field_give_one_problem() -> None:
    message = error_for(api_host="ic.example.org")
    assert message.count("field 'app_name'") == 1


# --- defaults and bounds --------------------------------------------------------------------------------


def _minimal(sis: str) -> dict[str, Any]:
    return {"sis": sis, "import_method": "csv_bundle"}  # no URLs needed: isolates the settings under test


@pytest.mark.parametrize("sis", list(PROFILES))
def test_unset_settings_come_from_the_profile(sis: str) -> None:
    profile = PROFILES[sis]
    district = load(**_minimal(sis))
    assert (district.token_auth, district.page_size, district.max_concurrency) == (
        profile.token_auth,
        profile.default_page_size,
        profile.default_concurrency,
    )
    assert district.profile is profile


def test_the_districts_own_settings_win_including_registry_defaults() -> None:
    own = load(**_minimal("classlink"), token_auth="form", page_size=250, max_concurrency=1)
    assert (own.token_auth, own.page_size, own.max_concurrency) == ("form", 250, 1)
    registry = parse_registry(
        {"defaults": {"page_size": 3000, "token_auth": "form"}, "districts": [entry(**_minimal("aeries"))]}
    )
    shared = registry.get("springfield")
    assert (shared.token_auth, shared.page_size, shared.max_concurrency) == ("form", 3000, 2)


@pytest.mark.parametrize("sis", list(PROFILES))
def test_the_profile_maximum_loads_and_one_more_is_refused(sis: str) -> None:
    profile = PROFILES[sis]
    at_max = load(**_minimal(sis), page_size=profile.max_page_size, max_concurrency=profile.max_concurrency)
    assert (at_max.page_size, at_max.max_concurrency) == (profile.max_page_size, profile.max_concurrency)
    for field, value in (
        ("page_size", profile.max_page_size + 1),
        ("max_concurrency", profile.max_concurrency + 1),
    ):
        message = error_for(**_minimal(sis), **{field: value})
        assert f"district 'springfield': field {field!r}:" in message
        assert re.search(r"maximum|less than or equal", message), message


def test_infinite_campus_refuses_more_than_five_concurrent_requests_with_the_reason() -> None:
    message = error_for(api_host="ic.example.org", app_name="app", max_concurrency=6)
    assert (
        "district 'springfield': field 'max_concurrency': 6 is above the Infinite Campus maximum of 5"
        in message
    )
    assert "off-peak" in message


def test_a_profile_page_size_maximum_below_the_registry_cap_is_enforced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every shipped profile allows the registry cap (no vendor publishes less); the rule is the same for one that does.
    strict = dataclasses.replace(
        GENERIC, max_page_size=2000, page_size_note="the vendor serves at most 2,000"
    )
    monkeypatch.setattr(districts_module, "PROFILES", {**PROFILES, "generic": strict})
    assert load(**_minimal("generic"), page_size=2000).page_size == 2000
    message = error_for(**_minimal("generic"), page_size=2001)
    assert (
        "district 'springfield': field 'page_size': 2,001 is above the generic OneRoster maximum of 2,000"
        in message
    )
    assert "at most 2,000" in message


# --- every combination: a district or a registry error, never anything else -----------------------------

hosts = st.sampled_from(
    [
        None,
        "ic.example.org",
        "https://sis.example.org",
        "http://127.0.0.1:8000",
        "sis.example.org/aeries",
        "http://sis.example.org",
        "https://sis.example.org/campus/oauth2/token?appName=x",
    ]
)
urls = st.sampled_from(
    [
        None,
        "https://sis.example.org/ims/oneroster/v1p1",
        "https://sis.example.org/ims/oneroster/rostering/v1p2",
        "http://10.1.1.1/ims/oneroster/v1p1",
        "https://sis.example.org/token",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sis=st.sampled_from(list(PROFILES)),
    import_method=st.sampled_from(IMPORT_METHODS),
    api_host=hosts,
    app_name=st.sampled_from([None, "app", "a/b"]),
    token_url=urls,
    base_url=urls,
)
def test_any_combination_loads_with_secure_urls_or_names_a_field(
    sis: str,
    import_method: str,
    api_host: str | None,
    app_name: str | None,
    token_url: str | None,
    base_url: str | None,
) -> None:
    fields = {
        "sis": sis,
        "import_method": import_method,
        "api_host": api_host,
        "app_name": app_name,
        "token_url": token_url,
        "base_url": base_url,
    }
    try:
        district = load(**fields)
    except RegistryError as error:
        assert re.search(r"district 'springfield': field '[a-z_]+':", str(error)), str(error)
        return
    if import_method != "csv_bundle":
        assert url_problem(district.base_url_resolved) is None
    if import_method in ("oneroster_rest", "oneroster_v1p2_rest"):
        assert url_problem(district.token_url_resolved) is None


# --- the documented table is the profiles' own --------------------------------------------------------------


def test_the_documented_per_sis_table_is_rendered_from_the_profiles() -> None:
    text = CONFIGURATION_DOC.read_text(encoding="utf-8")
    heading = text.index("## Setting up a district, per SIS")
    section = text[heading : text.index("\n## ", heading + 1)]
    assert setup_table_markdown() in section, (
        "docs/configuration.md's per-SIS table differs from the profiles: paste the output of "
        "`python3 -c 'from roster_pipeline.registry.sis_profiles import setup_table_markdown; print(setup_table_markdown())'`"
    )
    assert quirks_markdown() in section, (
        "docs/configuration.md's per-SIS quirks differ from the profiles: paste quirks_markdown()"
    )


def test_infinite_campus_profile_keeps_the_registry_behaviour_it_had() -> None:
    # The values every existing Infinite Campus district relied on before profiles existed.
    assert (
        INFINITE_CAMPUS.token_auth,
        INFINITE_CAMPUS.default_page_size,
        INFINITE_CAMPUS.default_concurrency,
    ) == ("basic", 5000, 5)
