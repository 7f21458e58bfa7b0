"""Property-based tests of the registry loader.

Generated valid registries load and survive a YAML round trip unchanged. Generated invalid ones — one
corruption at a time, or arbitrary junk values — always raise RegistryError naming the district and the
field, never any other exception, and never show a credential that was pasted where a variable NAME
belongs.
"""

from __future__ import annotations

import string
import zoneinfo
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from roster_pipeline.registry.districts import WEEKDAYS, District, RegistryError, parse_registry
from roster_pipeline.registry.sis_profiles import INFINITE_CAMPUS

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TIMEZONES = sorted(zoneinfo.available_timezones())  # scans the tz database: once, not per example
TIMEZONE_SET = frozenset(TIMEZONES)

LOWER_DIGITS = string.ascii_lowercase + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits


def _joined(*parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map("".join)


# (st.from_regex would do, but is several times slower to draw from; these stay well under a second.)
ids = _joined(st.sampled_from(LOWER_DIGITS), st.text(LOWER_DIGITS + "_-", max_size=30))
env_names = _joined(
    st.sampled_from(string.ascii_uppercase),
    st.text(UPPER_DIGITS, max_size=10),
    st.just("_"),
    st.text(UPPER_DIGITS + "_", min_size=1, max_size=20),
)
labels = _joined(st.sampled_from(string.ascii_lowercase), st.text(LOWER_DIGITS, max_size=10))
hosts = st.lists(labels, min_size=2, max_size=3).map(".".join)
hhmm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
month_days = st.dates().map(lambda d: d.strftime("%m-%d"))
pcts = st.floats(0, 100, allow_nan=False)
emails = st.builds(lambda user, host: f"{user}@{host}", labels, hosts)


@st.composite
def schedules(draw: st.DrawFn) -> dict[str, Any]:
    frequency = draw(st.sampled_from(["daily", "twice_daily", "weekly", "manual"]))
    schedule: dict[str, Any] = {"frequency": frequency, "time": draw(hhmm)}
    if frequency == "weekly":
        schedule["day"] = draw(st.sampled_from(WEEKDAYS))
    if frequency == "twice_daily" and draw(st.booleans()):
        schedule["second_time"] = draw(hhmm)
    schedule["sync_plan"] = draw(st.sampled_from(["delta_with_weekly_full", "full_always", "delta_always"]))
    schedule["delta_overlap_minutes"] = draw(st.integers(0, 7 * 24 * 60))
    return schedule


@st.composite
def urls(draw: st.DrawFn) -> dict[str, Any]:
    """Either api_host (+ app_name) or explicit https / loopback-http URLs."""
    kind = draw(st.sampled_from(["host", "https", "loopback"]))
    if kind == "host":
        return {"api_host": draw(hosts)}
    if kind == "https":
        host = draw(hosts)
        return {"token_url": f"https://{host}/oauth2/token", "base_url": f"https://{host}/ims/oneroster/v1p1"}
    origin = draw(
        st.sampled_from(["http://127.0.0.1", "http://localhost", "http://[::1]", "http://127.9.8.7"])
    )
    port = draw(st.integers(1, 65535))
    return {"api_host": f"{origin}:{port}"}


@st.composite
def districts(draw: st.DrawFn, district_id: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": district_id or draw(ids),
        "name": draw(st.text(string.ascii_letters + " -'", min_size=1, max_size=30).filter(str.strip)),
        "app_name": draw(labels),
        "client_id_env": draw(env_names),
        "client_secret_env": draw(env_names),
        **draw(urls()),
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "token_auth": st.sampled_from(["basic", "form"]),
        "page_size": st.integers(1, 50_000),
        # generated districts are Infinite Campus ones: Campus asks for at most 5 concurrent requests
        "max_concurrency": st.integers(1, INFINITE_CAMPUS.max_concurrency),
        "timeout_seconds": st.floats(0.1, 3600),
        "timezone": st.sampled_from(TIMEZONES),
        "schedule": schedules(),
        "admin_emails": st.lists(emails, max_size=3),
        "student_devices": st.sampled_from(["chromebooks_only", "no_chromebooks", "mixed"]),
        "thresholds": st.fixed_dictionaries(
            {},
            optional={
                "max_deleted_pct": pcts,
                "max_updated_pct": pcts,
                "max_rejected_pct": pcts,
                "max_added_pct": st.floats(0, 1000),
                "min_changes": st.integers(0, 10_000),
                "per_school": st.fixed_dictionaries(
                    {}, optional={"max_user_drop_pct": pcts, "min_drop": st.integers(0, 99)}
                ),
                "resources": st.dictionaries(
                    st.sampled_from(["users", "enrollments"]),
                    st.fixed_dictionaries({}, optional={"max_deleted_pct": pcts}),
                    max_size=2,
                ),
            },
        ),
        "rollover": st.fixed_dictionaries(
            {},
            optional={
                "date": month_days,
                "first_day": month_days,
                "mode": st.sampled_from(["pause", "additions_only", "none"]),
            },
        ),
        "enabled": st.booleans(),
        "school_year": st.integers(2000, 2100),
        "pii": st.fixed_dictionaries({}, optional={"demographics": st.booleans()}),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            entry[key] = draw(strategy)
    return entry


@st.composite
def registries(draw: st.DrawFn) -> dict[str, Any]:
    chosen = draw(st.lists(ids, min_size=1, max_size=3, unique=True))
    return {"districts": [draw(districts(district_id)) for district_id in chosen]}


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it: same result, faster
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def yaml_round_trip(data: Any) -> Any:
    """Through YAML text and back, as an operator's registry file is read."""
    return yaml.load(yaml.dump(data, Dumper=_DUMPER), Loader=_LOADER)  # safe: a SafeLoader


@SETTINGS
@given(registries())
def test_generated_valid_registries_load_and_round_trip(data: dict[str, Any]) -> None:
    registry = parse_registry(yaml_round_trip(data))
    assert registry.ids() == [entry["id"] for entry in data["districts"]]
    dumped = {"districts": [d.model_dump(mode="json") for d in registry]}
    again = parse_registry(yaml_round_trip(dumped))
    assert list(again) == list(registry)
    for district in again:
        assert district.token_url_resolved.startswith(
            ("https://", "http://127.", "http://localhost", "http://[::1]")
        )


# --- invalid registries ----------------------------------------------------------------------------------

SECRET_ALPHABET = string.ascii_letters + string.digits + "-_.~+/="
# What a pasted key or secret looks like: long, and not an UPPER_SNAKE_CASE name.
pasted_secrets = st.text(SECRET_ALPHABET, min_size=16, max_size=48).filter(
    lambda s: any(c.islower() or c in "-.~+/=" for c in s)
)
unknown_keys = st.text(string.ascii_lowercase + "_", min_size=1, max_size=20).filter(
    lambda k: k not in District.model_fields
)
not_hhmm = st.text(max_size=12).filter(
    lambda t: (
        not (
            len(t) == 5
            and t[2] == ":"
            and t[:2].isdigit()
            and t[3:].isdigit()
            and int(t[:2]) < 24
            and int(t[3:]) < 60
        )
    )
)
not_timezones = st.text(max_size=400).filter(lambda t: t not in TIMEZONE_SET and t != "UTC")
network_hosts = hosts.filter(lambda h: not h.startswith("localhost"))


def corruptions() -> st.SearchStrategy[tuple[str, Any]]:
    """(field path, value) pairs that must each be refused."""
    return st.one_of(
        st.tuples(st.just("id"), st.text(max_size=70).filter(lambda t: not _valid_id(t))),
        st.tuples(unknown_keys, st.integers()),
        st.tuples(st.just("schedule.time"), not_hhmm),
        st.tuples(st.just("timezone"), not_timezones),
        st.tuples(
            st.just("thresholds.max_deleted_pct"),
            st.one_of(st.floats(max_value=-0.001), st.floats(min_value=100.001), st.just(float("nan"))),
        ),
        st.tuples(st.just("thresholds.min_changes"), st.integers(max_value=-1)),
        st.tuples(
            st.just("thresholds.per_school.max_user_drop_pct"),
            st.floats(min_value=100.5, allow_infinity=False),
        ),
        st.tuples(st.just("page_size"), st.one_of(st.integers(max_value=0), st.integers(min_value=50_001))),
        st.tuples(st.just("api_host"), network_hosts.map(lambda h: f"http://{h}")),
        st.tuples(st.just("client_id_env"), pasted_secrets),
        st.tuples(st.just("client_secret_env"), pasted_secrets),
        st.tuples(st.just("rollover.date"), st.text(max_size=12).filter(lambda t: not _valid_month_day(t))),
    )


def _valid_id(text: str) -> bool:
    import re

    return re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", text) is not None


def _valid_month_day(text: str) -> bool:
    from roster_pipeline.registry.districts import _month_day_or_date

    try:
        _month_day_or_date(text)
    except ValueError:
        return False
    return True


def set_path(entry: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = entry
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


@SETTINGS
@given(districts(), corruptions())
@example(
    {
        "id": "springfield",
        "name": "S",
        "app_name": "s",
        "client_id_env": "A_B",
        "client_secret_env": "C_D",
        "api_host": "sis.example.org",
    },
    ("timezone", "a" * 300),  # the OS refuses the file name as too long: OSError, not a registry error
)
def test_every_invalid_field_raises_a_registry_error_naming_district_and_field(
    entry: dict[str, Any], corruption: tuple[str, Any]
) -> None:
    path, value = corruption
    entry = dict(entry)
    if path == "api_host":
        entry.pop("token_url", None)
        entry.pop("base_url", None)
    if path.startswith("schedule."):
        entry["schedule"] = {}
    set_path(entry, path, value)
    try:
        parse_registry({"districts": [entry]})
    except RegistryError as error:
        message = f"{error}\n{error!r}"
    else:
        raise AssertionError(f"{path}={value!r} was accepted")
    district_id = str(entry["id"])
    assert f"district {district_id!r}: field {path!r}:" in message
    if path in ("client_id_env", "client_secret_env"):
        assert value not in message


@SETTINGS
@given(
    districts(),
    st.dictionaries(
        st.sampled_from([*District.model_fields, "extra_field"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
            ),
            max_leaves=6,
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_junk_values_anywhere_give_a_registry_error_or_a_district_never_anything_else(
    entry: dict[str, Any], junk: dict[str, Any]
) -> None:
    try:
        parse_registry({"districts": [{**entry, **junk}]})
    except RegistryError as error:
        assert "district " in str(error)


@SETTINGS
@given(districts(), pasted_secrets, pasted_secrets)
def test_pasted_credentials_are_never_echoed_even_among_other_errors(
    entry: dict[str, Any], client_id: str, client_secret: str
) -> None:
    bad = {
        **entry,
        "client_id_env": client_id,
        "client_secret_env": client_secret,
        "page_size": 0,
        "timezone": "Mars/Base",
    }
    bad.pop("max_concurrency", None)  # comes from the defaults, so their errors name the district too
    try:
        parse_registry({"defaults": {"max_concurrency": 99}, "districts": [bad]})
    except RegistryError as error:
        message = f"{error}\n{error!r}"
    else:
        raise AssertionError("accepted")
    for field in ("client_id_env", "client_secret_env", "page_size", "timezone", "max_concurrency"):
        assert f"field {field!r}" in message, (field, message)
    assert client_id not in message and client_secret not in message
