"""The district registry: the shipped example loads, every error names district and field, secrets stay out."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from roster_pipeline.registry.districts import (
    EXAMPLE_FILE,
    MissingSecretError,
    RegistryError,
    load_registry,
    parse_registry,
)

SECRET = "s3cr3t-V4LUE-never-printed-9f8e7d"


def district(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "springfield",
        "name": "Springfield",
        "api_host": "springfield.infinitecampus.org",
        "app_name": "springfield",
        "client_id_env": "SPRINGFIELD_ID",
        "client_secret_env": "SPRINGFIELD_SECRET",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def error_for(**fields: Any) -> str:
    with pytest.raises(RegistryError) as info:
        parse_registry({"districts": [district(**fields)]})
    return str(info.value)


def test_example_file_is_valid_and_shipped_as_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROSTER_DISTRICTS_FILE", raising=False)
    registry = load_registry()
    assert registry.path == EXAMPLE_FILE
    assert registry.ids() == ["springfield", "shelbyville", "ogdenville"]  # file order
    assert [d.id for d in registry.enabled()] == ["springfield", "shelbyville"]
    # defaults merged; a district's own value wins; nested sections merge key by key
    springfield = registry.get("springfield")
    assert springfield.page_size == 20000 and springfield.timezone == "America/Chicago"
    assert springfield.rollover.mode == "pause" and springfield.rollover.first_day == "08-20"
    shelbyville = registry.get("shelbyville")
    assert shelbyville.thresholds.max_deleted_pct == 10
    assert shelbyville.thresholds.for_resource("enrollments").max_updated_pct == 90
    assert shelbyville.thresholds.for_resource("users").max_updated_pct == 75


def test_env_var_selects_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "districts.yaml"
    path.write_text(yaml.safe_dump({"districts": [district(id="capital_city")]}))
    monkeypatch.setenv("ROSTER_DISTRICTS_FILE", str(path))
    assert load_registry().ids() == ["capital_city"]


def test_get_unknown_district_lists_known_ids() -> None:
    registry = parse_registry({"districts": [district(), district(id="ogdenville")]})
    with pytest.raises(KeyError, match="known: springfield, ogdenville"):
        registry.get("shelbyville")


def test_infinite_campus_derives_urls_from_host_and_app() -> None:
    d = parse_registry({"districts": [district()]}).get("springfield")
    assert (
        d.token_url_resolved
        == "https://springfield.infinitecampus.org/campus/oauth2/token?appName=springfield"
    )
    assert d.base_url_resolved == (
        "https://springfield.infinitecampus.org/campus/api/oneroster/v1p1/springfield/ims/oneroster/v1p1"
    )


def test_api_host_may_be_a_full_origin_for_the_simulator() -> None:
    d = parse_registry({"districts": [district(api_host="http://127.0.0.1:8765/")]}).get("springfield")
    assert d.token_url_resolved == "http://127.0.0.1:8765/campus/oauth2/token?appName=springfield"
    assert d.base_url_resolved.startswith("http://127.0.0.1:8765/campus/api/oneroster/v1p1/springfield/")


def test_explicit_urls_win() -> None:
    d = parse_registry(
        {
            "districts": [
                district(token_url="https://auth.example.org/token", base_url="https://api.example.org/v1p1/")
            ]
        }
    ).get("springfield")
    assert d.token_url_resolved == "https://auth.example.org/token"
    assert d.base_url_resolved == "https://api.example.org/v1p1"


def test_non_ic_vendor_needs_explicit_urls() -> None:
    message = error_for(sis="classlink")
    assert "district 'springfield'" in message and "classlink" in message and "token_url" in message


def test_ic_without_app_name_or_urls_is_rejected() -> None:
    assert "app_name" in error_for(app_name=None)


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"timezone": "America/Chicgo"}, "timezone", "unknown timezone 'America/Chicgo'"),
        ({"page_size": 0}, "page_size", "greater than or equal to 1"),
        ({"page_size": 50_001}, "page_size", "less than or equal to 50000"),
        ({"max_concurrency": 11}, "max_concurrency", "less than or equal to 10"),
        ({"sis": "banner"}, "sis", "'banner'"),
        ({"token_auth": "digest"}, "token_auth", "'basic' or 'form'"),
        ({"student_devices": "ipads"}, "student_devices", "chromebooks_only"),
        ({"admin_emails": ["ok@example.org", "not-an-email"]}, "admin_emails", "'not-an-email'"),
        ({"schedule": {"time": "25:00"}}, "schedule.time", "HH:MM"),
        ({"schedule": {"frequency": "weekly"}}, "schedule", "needs 'day'"),
        ({"schedule": {"frequency": "hourly"}}, "schedule.frequency", "'daily'"),
        ({"thresholds": {"max_deleted_pct": 120}}, "thresholds.max_deleted_pct", "100"),
        ({"thresholds": {"resources": {"teachers": {}}}}, "thresholds.resources", "unknown resource"),
        ({"rollover": {"date": "02-30"}}, "rollover.date", "MM-DD"),
        ({"rollover": {"mode": "freeze"}}, "rollover.mode", "'pause'"),
        ({"id": "Spring Field"}, "id", "lowercase"),
        ({"pagesize": 10}, "pagesize", "unknown field"),
        ({"name": None}, "name", "required field is missing"),
        ({"school_year": 27}, "school_year", "2000"),
    ],
)
def test_every_field_error_names_district_and_field(
    fields: dict[str, Any], field: str, fragment: str
) -> None:
    message = error_for(**fields)
    district_id = "Spring Field" if field == "id" else "springfield"
    assert f"district {district_id!r}: field {field!r}:" in message
    assert fragment in message


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(RegistryError) as info:
        parse_registry(
            {"districts": [district(timezone="Mars/Olympus"), district(id="ogdenville", page_size=-1)]}
        )
    assert "district 'springfield': field 'timezone'" in str(info.value)
    assert "district 'ogdenville': field 'page_size'" in str(info.value)


def test_duplicate_ids_rejected() -> None:
    with pytest.raises(RegistryError, match="district 'springfield': duplicate id"):
        parse_registry({"districts": [district(), district(name="Again")]})


def test_defaults_merge_under_every_district() -> None:
    registry = parse_registry(
        {
            "defaults": {
                "timezone": "America/Denver",
                "thresholds": {"max_deleted_pct": 5},
                "admin_emails": ["a@x.org"],
            },
            "districts": [
                district(),
                district(id="ogdenville", thresholds={"min_changes": 3}, admin_emails=["b@y.org"]),
            ],
        }
    )
    springfield, ogdenville = registry.get("springfield"), registry.get("ogdenville")
    assert springfield.timezone == ogdenville.timezone == "America/Denver"
    assert springfield.thresholds.max_deleted_pct == 5 and springfield.thresholds.min_changes == 25
    assert ogdenville.thresholds.max_deleted_pct == 5 and ogdenville.thresholds.min_changes == 3
    assert ogdenville.admin_emails == ["b@y.org"]  # lists are replaced, not concatenated


def test_defaults_errors_still_name_the_district() -> None:
    with pytest.raises(RegistryError, match="district 'springfield': field 'timezone'"):
        parse_registry({"defaults": {"timezone": "Nowhere/City"}, "districts": [district()]})


def test_unknown_top_level_key_and_bad_shapes() -> None:
    with pytest.raises(RegistryError, match="unknown top-level key"):
        parse_registry({"district": []})
    with pytest.raises(RegistryError, match="'districts' must be a list"):
        parse_registry({"districts": {"springfield": {}}})


def test_unreadable_or_invalid_yaml_file(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("districts: [\n")
    with pytest.raises(RegistryError, match="not valid YAML"):
        load_registry(bad)


def test_credentials_read_at_run_time_for_that_district_only() -> None:
    registry = parse_registry(
        {
            "districts": [
                district(),
                district(id="ogdenville", client_id_env="OGD_ID", client_secret_env="OGD_SECRET"),
            ]
        }
    )
    environ = {"SPRINGFIELD_ID": "key-1", "SPRINGFIELD_SECRET": SECRET}
    assert registry.get("springfield").credentials(environ) == ("key-1", SECRET)
    with pytest.raises(MissingSecretError) as info:
        registry.get("ogdenville").credentials(environ)
    assert info.value.district_id == "ogdenville" and info.value.env_var == "OGD_ID"
    assert "'ogdenville'" in str(info.value) and "'OGD_ID'" in str(info.value)


def test_empty_secret_is_missing_and_its_neighbours_value_never_shown() -> None:
    d = parse_registry({"districts": [district()]}).get("springfield")
    with pytest.raises(MissingSecretError) as info:
        d.credentials({"SPRINGFIELD_ID": SECRET, "SPRINGFIELD_SECRET": "  "})
    assert info.value.env_var == "SPRINGFIELD_SECRET"
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


def test_credentials_default_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    d = parse_registry({"districts": [district()]}).get("springfield")
    monkeypatch.setenv("SPRINGFIELD_ID", "id-from-env")
    monkeypatch.setenv("SPRINGFIELD_SECRET", SECRET)
    assert d.credentials() == ("id-from-env", SECRET)
    monkeypatch.delenv("SPRINGFIELD_SECRET")
    with pytest.raises(MissingSecretError, match="SPRINGFIELD_SECRET"):
        d.credentials()


@pytest.mark.parametrize("field", ["client_id_env", "client_secret_env"])
@pytest.mark.parametrize("pasted", [SECRET, "a1b2c3d4e5f6a7b8c9d0", "A1B2C3D4E5F6A7B8C9D0E1F2"])
def test_a_pasted_secret_is_rejected_without_echoing_it(field: str, pasted: str) -> None:
    message = error_for(**{field: pasted})
    assert f"district 'springfield': field {field!r}:" in message
    assert "NAME of an environment variable" in message
    assert pasted not in message


def test_secret_values_never_in_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPRINGFIELD_ID", SECRET)
    monkeypatch.setenv("SPRINGFIELD_SECRET", SECRET)
    registry = parse_registry({"districts": [district()]})
    d = registry.get("springfield")
    d.credentials()
    for text in (repr(registry), repr(d), str(d), d.model_dump_json()):
        assert SECRET not in text


def test_schedule_sync_plan() -> None:
    d = parse_registry({"districts": [district()]}).get("springfield")
    assert d.schedule.sync_mode_on(date(2026, 11, 29)) == "full"  # a Sunday
    assert d.schedule.sync_mode_on(date(2026, 11, 30)) == "delta"


def test_rollover_relaxed_thresholds_layer_over_resource_overrides() -> None:
    d = parse_registry(
        {
            "districts": [
                district(
                    thresholds={"resources": {"enrollments": {"max_deleted_pct": 15}}},
                    rollover={"mode": "additions_only", "relaxed_thresholds": {"max_updated_pct": 99}},
                )
            ]
        }
    ).get("springfield")
    effective = d.thresholds.for_resource("enrollments", d.rollover.relaxed_thresholds)
    assert (effective.max_deleted_pct, effective.max_updated_pct, effective.min_changes) == (15, 99, 25)
